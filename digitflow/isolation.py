"""Run a function in a fresh process and stream its progress events back.

Training runs this way so that each model has its own backend runtime: its own thread
pools, its own pinned GPU, and GPU memory that is returned when the process exits
(TensorFlow frees it at no other time).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import traceback
from collections.abc import Callable
from typing import Any

from digitflow.errors import TrainingError

POLL_S = 0.5


def _child(
    fn: Callable[..., Any], kwargs: dict[str, Any], env: dict[str, str], events: Any
) -> None:
    os.environ.update(env)  # before the backend is imported: it reads its devices once
    try:
        result = fn(**kwargs, on_event=lambda event: events.put(("event", event)))
        events.put(("result", result))
    except BaseException as exc:  # everything must reach the parent, whatever it was
        events.put(("error", (type(exc).__name__, str(exc), traceback.format_exc())))


def run_in_process(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    name: str,
    env: dict[str, str] | None = None,
    on_event: Callable[[Any], None] = lambda event: None,
) -> Any:
    """Call ``fn(**kwargs, on_event=...)`` in a spawned process; return its result.

    Events the child passes to ``on_event`` are delivered to the parent's ``on_event``
    in order, in the calling thread. A child exception or crash raises TrainingError.
    """
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, kwargs, env or {}, events), name=name)
    proc.start()
    try:
        while True:
            try:
                kind, payload = events.get(timeout=POLL_S)
            except queue.Empty:
                if not proc.is_alive():
                    raise TrainingError(
                        f"{name}: process exited with code {proc.exitcode} before finishing "
                        "(killed for memory?)"
                    ) from None
                continue
            if kind == "event":
                on_event(payload)
            elif kind == "result":
                return payload
            else:
                exc_type, message, trace = payload
                error = TrainingError(f"{name}: {exc_type}: {message}")
                error.child_traceback = trace
                raise error
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
