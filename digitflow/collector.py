"""The garbage collector paused while a command loads, and resumed before it works.

A command that runs a flow imports Prefect, pyarrow, ONNX Runtime and its flow before it
reads anything: about 2 s on 2 cores, making hundreds of thousands of objects that live as
long as the process, and few cycles, over which the collector passes again and again.
Prefect's temporary server loads its app the same way (``digitflow.api_server``). What
this and the rest of a command's lighter start saved is in docs/record/speed.md ("A lighter start").
"""

from __future__ import annotations

import gc

_paused = [False]  # paused here (a collector that was off already stays off)


def pause() -> None:
    """Stop collecting until ``resume``."""
    if gc.isenabled():
        gc.disable()
        _paused[0] = True


def resume() -> None:
    """Collect again, leaving what was loaded meanwhile out of the collector's sight
    (``gc.freeze``): it lives as long as the process."""
    if _paused[0]:
        _paused[0] = False
        gc.freeze()
        gc.enable()
