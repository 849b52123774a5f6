"""Running a command's work with progress bars, and printing what it made."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from digitflow import collector
from digitflow.api_server import send_pending
from digitflow.cli.server import configure_logging, start_beside, without_heartbeats
from digitflow.console import flow_progress, print_summary

Render = Callable[[Console, dict[str, Any]], None]


def show(
    title: str, action: Callable[[], BaseModel], as_json: bool, render: Render | None = None
) -> None:
    """Run ``action`` with progress bars, then print its summary (one JSON line: --json)."""
    configure_logging()
    with flow_progress(Console(stderr=True), title), without_heartbeats():
        try:
            result = action().model_dump(mode="json")
        finally:  # so that the run's last words come before its result (or its error)
            send_pending()
    if as_json:
        print(json.dumps(result))
    elif render is not None:
        render(Console(), result)
    else:
        print_summary(Console(), title.rstrip("…. "), result)


def run_flow(
    title: str,
    flow: Callable[[], BaseModel],
    as_json: bool,
    render: Render | None = None,
    beside: tuple[str, ...] = (),
    prepare: Callable[[], None] | None = None,
) -> None:
    """``show`` a flow's run, with Prefect's temporary server started beside ``beside``'s
    imports and ``prepare`` when no Prefect API is set."""
    # A flow encodes its parameters with FastAPI's encoder on its first call.
    start_beside("fastapi.encoders", *beside, prepare=prepare)
    collector.resume()  # paused while the command loaded (digitflow.__main__)
    show(title, flow, as_json, render)
