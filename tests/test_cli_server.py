"""A command's flow runs send no heartbeats, unless the user set their frequency; the
rest of Prefect's settings stay as they were."""

from __future__ import annotations

from prefect.settings import get_current_settings, temporary_settings

from digitflow.cli.server import without_heartbeats


def test_a_commands_flow_runs_send_no_heartbeats_and_keep_the_other_settings() -> None:
    with temporary_settings(updates={"api.url": "http://127.0.0.1:4200/api"}):
        before = get_current_settings()
        assert before.flows.heartbeat_frequency is not None  # Prefect's default
        with without_heartbeats():
            during = get_current_settings()
            assert during.flows.heartbeat_frequency is None
            assert during.api.url == "http://127.0.0.1:4200/api"
            assert during.model_dump(exclude={"flows"}) == before.model_dump(exclude={"flows"})
        assert get_current_settings().flows.heartbeat_frequency == before.flows.heartbeat_frequency


def test_a_heartbeat_frequency_the_user_set_is_kept() -> None:
    with temporary_settings(updates={"flows.heartbeat_frequency": 60}), without_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency == 60
