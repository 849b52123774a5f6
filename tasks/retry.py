"""Retry policy shared by the I/O tasks: retry what may pass, fail fast on bad input."""

from __future__ import annotations

from typing import Any

from digitflow.errors import TransientError

RETRY_DELAYS: list[float] = [2, 5, 15]


def only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task run only when its error may pass on a second try."""
    return isinstance(state.data, TransientError)


# For tasks around storage and network I/O (never training): @task(..., **STORAGE_RETRIES).
STORAGE_RETRIES: dict[str, Any] = {
    "retries": len(RETRY_DELAYS),
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_condition_fn": only_transient,
}
