"""Functions run in child processes by the isolation tests (must be importable)."""

from __future__ import annotations

import os
from collections.abc import Callable


def count_to(n: int, on_event: Callable[[int], None]) -> str:
    for i in range(n):
        on_event(i)
    return f"counted to {n} with CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}"


def fail(on_event: Callable[[int], None]) -> None:
    on_event(1)
    raise ValueError("bad hyper-parameter: learning_rate=-1")


def crash(on_event: Callable[[int], None]) -> None:
    os._exit(9)
