"""Runs of a deployment that this process waits on, cancelled when it is stopped.

A flow that waits on runs of another deployment (the train flow in ``workers`` mode) and
is stopped (a SIGTERM, Ctrl+C) would otherwise go on waiting until those runs end on
their workers: hours of GPU time nobody wants any more. ``cancel_all`` asks the server to
cancel them (their workers then end them) and lets their waiters go at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.logging import get_logger
from prefect.states import Cancelling

from digitflow.errors import TrainingError

POLL_S = 2.0

_waiting: dict[UUID, threading.Event] = {}  # run id → set once the run is cancelled
_lock = threading.Lock()


class RunCancelled(TrainingError):
    """The run was cancelled because the flow waiting on it was stopped."""


@contextmanager
def waited_on(run_id: UUID) -> Iterator[threading.Event]:
    """While inside, ``cancel_all`` cancels the run ``run_id`` and sets the event given."""
    cancelled = threading.Event()
    with _lock:
        _waiting[run_id] = cancelled
    try:
        yield cancelled
    finally:
        with _lock:
            del _waiting[run_id]


def run_and_wait(deployment: str, parameters: dict[str, Any], name: str) -> FlowRun:
    """Start a run of ``deployment`` and wait for it to end, as ``run_deployment`` does;
    raise ``RunCancelled`` as soon as ``cancel_all`` cancels it."""
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        deployment, parameters=parameters, flow_run_name=name, timeout=0
    )
    with waited_on(flow_run.id) as cancelled, get_client(sync_client=True) as client:
        while not cancelled.wait(POLL_S):
            flow_run = client.read_flow_run(flow_run.id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
    raise RunCancelled(f"worker run {name} cancelled")


def cancel_all() -> None:
    """Cancel every run waited on (``waited_on``), in any thread, and let its waiter go.
    A run the server cannot be reached to cancel is logged, with its id, and let go all
    the same: the flow is stopping."""
    with _lock:
        runs = [(run_id, done) for run_id, done in _waiting.items() if not done.is_set()]
    asked = 0
    try:
        if runs:
            with get_client(sync_client=True) as client:
                for run_id, _ in runs:
                    client.set_flow_run_state(
                        run_id, Cancelling(message="the flow that started it was stopped")
                    )
                    asked += 1
    except Exception as exc:  # a stop must not wait on the server
        get_logger(__name__).error(
            "could not cancel worker runs %s: %s; cancel them in the UI",
            ", ".join(str(run_id) for run_id, _ in runs[asked:]),
            exc,
        )
    finally:
        for _, done in runs:
            done.set()
