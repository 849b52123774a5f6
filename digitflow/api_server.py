"""Prefect's temporary API server, started by a command before it imports anything else.

With no Prefect API set, a flow starts a temporary server on its first call and waits for
it: about 4 s on 2 cores, in a process of its own, after this process has imported Prefect
and the flow (1.5 s) and Prefect's server module (1.5 s more) only to start it. A command
that runs a flow starts that same server (Prefect's own command line and environment) as
its first step, without importing Prefect, and adopts it once Prefect is imported if
Prefect has no API of its own to use (``digitflow.cli.server``); otherwise it stops it
unused. The server boots while the command imports and prepares. Once a server has
started in full on Prefect's database (its migrations run, its block types registered),
later ones skip registering block types (about half a second of loading Prefect's
collections, measured on 2 cores) until the database or the installed packages change.
The command's lifeline (``digitflow.lifeline``) ends the server if the command is killed;
otherwise the server lives until the process exits, as Prefect's would, so that every
flow of the process can use it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from digitflow import collector, lifeline
from digitflow.errors import DigitflowError

# The commands that run a flow, and so need an API.
FLOW_COMMANDS = frozenset({"ingest", "train", "promote", "retrain", "pipeline", "score"})
START_TIMEOUT_S = 60.0  # Prefect's own PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS is 20
# A new database's first start migrates it and registers every block type: most of a
# minute on 2 busy cores, so it is given longer.
FIRST_START_TIMEOUT_S = 180.0
# Prefect's own setting of how long to wait, which, where it says longer, is waited.
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
START_FAILED = 3  # uvicorn's exit code when it could not start (its port taken, or any other)
DRAIN_TIMEOUT_S = 10.0  # the longest wait for the last logs and events to be sent


def _ends_with(parent: int) -> Callable[[], None] | None:
    """What the server's process runs before Prefect's server loads, so that it ends with the
    command (``parent``) even when the command is killed before its lifeline watches: the
    kernel sends it SIGTERM when the thread that started it ends (Linux). Only the main
    thread's servers: one started by another thread would end with that thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = getattr(ctypes.CDLL(None), "prctl", None)
    if prctl is None:  # no Linux: the lifeline alone ends it
        return None

    def end_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it ended before the kernel was told
            os._exit(1)

    return end_with_parent


_PR_SET_PDEATHSIG = 1


def _home() -> Path:
    """Prefect's home folder, as Prefect finds it."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _first_start() -> IO[str] | None:
    """Wait for other commands' first starts on this Prefect home to end, and hold its lock
    until this one's ends (None where the home cannot hold one: its server says why)."""
    home = _home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        lock = open(home / ".digitflow-first-start.lock", "a")  # noqa: SIM115 - held on
    except OSError:
        return None
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _taken(port: int) -> bool:
    """Whether another process listens on ``port`` now (a server that could not start for
    another reason is not started again on another port)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _timeout() -> float:
    """Prefect's own start-up timeout where it is set (0 where it is not): a longer wait
    than digitflow's is waited, a shorter one not (Prefect's own default is 20 s, a third of
    what a start may take on 2 busy cores)."""
    try:
        return max(float(os.environ.get(TIMEOUT_SETTING, "")), 0.0)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Written beside Prefect's database once a server has started on it in full.
SETTLED = "digitflow-temporary-server.json"
# A settled database's server skips these (unless the environment says otherwise): its
# migrations have run with these packages, and its block types are registered.
_SETTLED_ENV = {
    "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",  # it loads every collection to decide
}


def _app_dir() -> Path:
    """The directory that holds the installed ``prefect`` package."""
    return next(Path(p) for p in sys.path if (Path(p) / "prefect").is_dir())


def _database_state() -> tuple[Path, dict[str, object]] | None:
    """Where a full start is recorded, and what it records: Prefect's default database
    (none: nothing to record) and the installed packages, by their directory's change time
    (any install, upgrade or removal changes it)."""
    home = _home()
    if _chosen_database(home):
        return None  # a database of the user's choosing: its server starts in full
    database = home / "prefect.db"
    try:
        inode = database.stat().st_ino
        packages = _app_dir().stat().st_mtime_ns
    except OSError:
        return None
    record = {"database": str(database), "inode": inode, "packages": packages,
              "schema": _schema(database)}  # fmt: skip
    return home / SETTLED, record


def _chosen_database(home: Path) -> bool:
    """Whether a database other than Prefect's default may be set: in the environment, or
    in a file Prefect reads its settings from (its profiles, and ``prefect.toml``, ``.env``
    or ``pyproject.toml`` in the working folder), read as text, without Prefect."""
    if any(name.endswith("DATABASE_CONNECTION_URL") for name in os.environ):
        return True
    files = [home / "profiles.toml", Path("prefect.toml"), Path(".env"), Path("pyproject.toml")]
    for path in files:
        try:
            text = path.read_text(errors="replace").upper()
        except OSError:
            continue
        if path.name == "pyproject.toml" and "TOOL.PREFECT" not in text:
            continue  # Prefect reads only its own table there
        if "CONNECTION_URL" in text and "DATABASE" in text:  # as a name, or as a table's
            return True
    return False


def _schema(database: Path) -> str | None:
    """The version of Prefect's tables in the database (None: it has none), read without
    Prefect: a database emptied or restored from a backup in place keeps its inode, not
    its tables."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _settled() -> bool:
    """True when a server has started in full on this database with these packages."""
    state = _database_state()
    if state is None:
        return False
    try:
        return bool(json.loads(state[0].read_text()) == state[1])
    except (OSError, ValueError):
        return False


def _record_settled() -> None:
    """Record that a server has started in full on the database (replaced whole)."""
    state = _database_state()
    if state is None:
        return
    path, record = state
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        staged.write_text(json.dumps(record))
        staged.replace(path)
    except OSError:  # a record not written costs a full start, no more
        with contextlib.suppress(OSError):
            staged.unlink(missing_ok=True)


class TemporaryServer:
    """Prefect's temporary API server in a process of its own, as Prefect runs it."""

    def __init__(self) -> None:
        self.settled = _settled()  # a full start has been made on this database
        # A first start migrates the database: one at a time, as two that migrate it at once
        # fail (a column added twice). Those that waited find it settled.
        self._first = None if self.settled else _first_start()
        if self._first is not None:
            self.settled = _settled()
        self.process = self._launch()
        atexit.register(self.stop)  # before Prefect's own exit handlers: it runs after them

    def _launch(self) -> subprocess.Popen[bytes]:
        self.port = _free_port()
        # Prefect's SubprocessASGIServer command line, without importing its module here;
        # its app is Prefect's own, built by ``create_app`` below.
        args = [sys.executable, "-m", "uvicorn", "--app-dir", str(_app_dir()), "--factory",
                f"{__name__}:create_app", "--host", "127.0.0.1",
                "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
        env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               **(_SETTLED_ENV if self.settled else {}), **os.environ,
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}  # fmt: skip
        # In a session of its own, so that Ctrl+C (or a SIGTERM to the command's process
        # group) stops the command, not the server it reports to while it stops: with the
        # server gone, the flow's last states wait on a minute of retries. The command's
        # exit, or its lifeline if it is killed, ends the server.
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_ends_with(os.getpid()))  # fmt: skip

    @property
    def api_url(self) -> str:
        """The server's API URL."""
        return f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Return once the server answers its health check; DigitflowError if it cannot
        (within ``timeout_s``; None: ``START_TIMEOUT_S``, or longer on a new database)."""
        if timeout_s is None:
            timeout_s = max(_timeout(), START_TIMEOUT_S if self.settled else FIRST_START_TIMEOUT_S)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code == START_FAILED and _taken(self.port):  # another process took the port
                self.process = self._launch()
            elif code is not None:
                break
            health = f"{self.api_url}/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=1) as answer:
                if answer.status == 200:
                    if not self.settled:  # its migrations and block types are done
                        _record_settled()
                        self.settled = True
                    self._first_done()
                    return
            time.sleep(0.05)
        self._first_done()
        code = self.process.poll()
        why = f"it did not answer within {timeout_s:g} s: is the machine very busy?"
        if code is not None:
            why = f"exit code {code}, its error is printed above"
        raise DigitflowError(
            f"Prefect's temporary API server did not start ({why}): start one with `prefect "
            "server start` (or `make up`) and set PREFECT_API_URL"
        )

    def _first_done(self) -> None:
        """Let the next first start go (it finds the database settled, or starts it in full)."""
        if self._first is not None:
            self._first.close()  # and its lock with it
            self._first = None

    def stop(self) -> None:
        """Send the flows' last logs and events, then end the server."""
        self._first_done()
        send_pending()  # Prefect sends them at exit too, but after this: to a dead server
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def create_app() -> object:
    """Prefect's server app, built in the server's process with the garbage collector paused.

    Loading Prefect's server is most of the server's start (3-4 s on 2 cores), and the
    collector's passes over what it makes were a sixth of that (``digitflow.collector``).
    """
    collector.pause()
    try:
        from prefect.server.api.server import create_app as prefect_app

        return prefect_app()
    finally:
        collector.resume()


_started: list[TemporaryServer] = []  # the one this process started, if any


def start_early(command: str | None) -> None:
    """Start the temporary server now if ``command`` runs a flow and no API URL is set in
    the environment (Prefect's profile may still set one: then ``stop_unused``)."""
    if command not in FLOW_COMMANDS or "--help" in sys.argv or _started:
        return
    if os.environ.get("PREFECT_API_URL"):
        return
    started()


def started() -> TemporaryServer:
    """The server this process started, started now if it has none."""
    if not _started:
        lifeline.start()  # before the server, which it must see start
        _started.append(TemporaryServer())
    return _started[0]


def started_url() -> str | None:
    """The API URL of the server this process started, if any."""
    return _started[0].api_url if _started else None


def stop_unused() -> None:
    """Stop the server this process started: Prefect has an API of its own to use."""
    while _started:
        _started.pop().stop()


def send_pending() -> None:
    """Send the flows' queued logs and events to the API now, and wait until they are sent."""
    if "prefect.logging.handlers" not in sys.modules:  # no flow ran
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        # Waiting for them is this step's purpose: no notice that items remain.
        notices = logging.getLogger(worker.__name__)
        level = notices.level
        notices.setLevel(logging.ERROR)
        try:
            worker.drain_all(timeout=DRAIN_TIMEOUT_S)
        finally:
            notices.setLevel(level)
