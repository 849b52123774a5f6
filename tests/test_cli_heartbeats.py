"""Flow heartbeats from the CLI: off on Prefect's temporary server, on against a real one."""

from __future__ import annotations

from prefect import flow
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from digitflow.cli import _no_heartbeats_on_temporary_server


@flow
def _heartbeat_setting() -> int | None:
    """What the flow engine reads to decide whether (and how often) to send heartbeats."""
    return get_current_settings().flows.heartbeat_frequency


def test_flow_runs_on_the_temporary_server_send_no_heartbeats() -> None:
    assert _heartbeat_setting() is not None  # Prefect's default: heartbeats on
    with _no_heartbeats_on_temporary_server():
        assert _heartbeat_setting() is None
    assert _heartbeat_setting() is not None  # only for the CLI's own flow runs


def test_heartbeats_stay_on_when_a_server_is_set() -> None:
    server = temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"})
    with server, _no_heartbeats_on_temporary_server():
        assert get_current_settings().flows.heartbeat_frequency is not None
