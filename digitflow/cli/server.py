"""Prefect's temporary API server for a command: started early, tied to the command's life.

With no Prefect API set, a flow starts that server on its first call and waits for it
(3.5 s on 2 cores, in the server's own process). Started here, it boots while this
process imports what the flow needs (TensorFlow: 2.5 s), and the flow finds it running:
`digitflow score` on 4 pages took 8.7 s instead of 11.0 (medians of 7 runs). The
command's lifeline (``digitflow.lifeline``) ends the server if the command is killed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import threading

from digitflow import lifeline
from digitflow.console import KnownErrorsWithoutTraceback


@functools.cache  # once per process: the server's start logs through it too
def configure_logging() -> None:
    """Keep flow and task logs, drop Prefect's own chatter (server start/stop) and
    tracebacks of known errors, so that the reason of a failure is the last line."""
    logging.getLogger("prefect").setLevel(logging.WARNING)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.INFO)
    quiet = KnownErrorsWithoutTraceback()
    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        for handler in logger.handlers:
            handler.addFilter(quiet)


def start_beside(*modules: str) -> None:
    """Import ``modules`` while Prefect's temporary server starts, if the flow needs one;
    return once it answers. A failure to start is left to the flow, which reports it."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # Prefect's own knob
    configure_logging()  # before the server's start says it starts
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        for module in modules:  # a server is up (or none may be started)
            importlib.import_module(module)
        return
    lifeline.start()  # before the server, which it must see start
    # The import takes seconds of this process's time: here, not in the thread, where it
    # would only compete with the imports below for the interpreter.
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        with contextlib.suppress(Exception):
            SubprocessASGIServer().start()

    thread = threading.Thread(target=start, name="start-prefect-server", daemon=True)
    thread.start()
    for module in modules:
        importlib.import_module(module)
    thread.join()  # the flow must not find it half-started
