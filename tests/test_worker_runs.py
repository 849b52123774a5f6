"""Cancelling the worker runs a stopped flow waits on, when the server cannot be reached."""

from __future__ import annotations

import logging
import uuid

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import worker_runs
from tests.conftest import free_port


def test_a_run_the_server_cannot_cancel_is_named_in_the_log_and_let_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_id = uuid.uuid4()
    nobody = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with (
        temporary_settings(updates={PREFECT_API_URL: nobody}),
        worker_runs.waited_on(run_id) as cancelled,
        caplog.at_level(logging.ERROR),
    ):
        worker_runs.cancel_all()
        assert cancelled.is_set()  # its waiter goes: the stop does not wait on the server
    assert f"could not cancel worker runs {run_id}" in caplog.text
    assert "cancel them in the UI" in caplog.text
