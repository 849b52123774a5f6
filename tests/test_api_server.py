"""The temporary API server a command starts: a full start on a new database, and a
quicker one (no migrations, no block registration) once that database has had one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from digitflow import api_server
from digitflow.errors import DigitflowError


def block_types(server: api_server.TemporaryServer) -> list[str]:
    request = urllib.request.Request(
        f"{server.api_url}/block_types/filter", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return [block["slug"] for block in json.loads(answer.read())]


def start(expect_settled: bool) -> api_server.TemporaryServer:
    """A server started and ready, having checked whether it skips block registration."""
    server = api_server.TemporaryServer()
    assert server.settled is expect_settled
    server.wait_ready()
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    assert (b"PREFECT_API_BLOCKS_REGISTER_ON_START=false" in environ) is expect_settled
    assert (b"PREFECT_API_DATABASE_MIGRATE_ON_START=false" in environ) is expect_settled
    command = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"digitflow.api_server:create_app" in command  # Prefect's app, built by ours
    return server


def test_a_settled_database_starts_without_registering_blocks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    server = start(expect_settled=False)  # a new database: migrations and block types
    registered = block_types(server)
    server.stop()
    assert "local-file-system" in registered
    assert json.loads((tmp_path / api_server.SETTLED).read_text())["inode"] > 0

    server = start(expect_settled=True)
    try:
        assert block_types(server) == registered  # the database keeps them
    finally:
        server.stop()

    (tmp_path / api_server.SETTLED).write_text("{not json")  # a damaged record: in full
    start(expect_settled=False).stop()
    assert api_server._settled()  # and recorded again

    # A new database in its place (made before the old one goes, so its inode cannot be
    # the old one's) is not settled: its server starts in full, as the first one did.
    (tmp_path / "new.db").touch()
    (tmp_path / "new.db").replace(tmp_path / "prefect.db")
    for name in ("prefect.db-wal", "prefect.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert not api_server._settled()
    start(expect_settled=False).stop()
    # Emptied in place (its inode kept, as a backup copied over it keeps it): not settled.
    inode = (tmp_path / "prefect.db").stat().st_ino
    with (tmp_path / "prefect.db").open("r+b") as database:
        database.truncate(0)
    for name in ("prefect.db-wal", "prefect.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert (tmp_path / "prefect.db").stat().st_ino == inode and not api_server._settled()


def test_a_database_of_the_users_choosing_always_starts_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    (tmp_path / "prefect.db").touch()
    api_server._record_settled()  # Prefect's default database is settled
    assert api_server._settled()
    database = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    # Set in Prefect's profile (`prefect config set`), not in the environment: never skipped.
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[profiles.local]\nPREFECT_API_DATABASE_CONNECTION_URL = "{database}"\n')
    assert not api_server._settled()
    profiles.unlink()
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", database)
    server = start(expect_settled=False)
    try:
        assert "local-file-system" in block_types(server)
    finally:
        server.stop()


def test_a_server_that_cannot_start_is_not_started_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn exits 3 whenever it cannot start: on a Prefect home under a file as on a port
    taken. Only a port taken is tried again (on another); otherwise the start fails at
    once with the server's exit code, not after minutes of relaunches."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "file" / "home"))
    server = api_server.TemporaryServer()
    try:
        with pytest.raises(DigitflowError, match="did not start \\(exit code 3"):
            server.wait_ready(timeout_s=170)
    finally:
        server.stop()


def test_a_port_taken_meanwhile_is_left_for_another_and_the_api_url_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.context import refresh_global_settings_context

    from digitflow.cli import server as cli_server

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    refresh_global_settings_context()  # no API URL left by a command run in this process
    monkeypatch.setattr(api_server, "_started", [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        free = api_server._free_port
        monkeypatch.setattr(api_server, "_free_port", lambda: next(ports, None) or free())
        cli_server.start_beside()
        server = api_server.started()
        try:
            assert server.port != taken.getsockname()[1]
            assert os.environ["PREFECT_API_URL"] == server.api_url
        finally:
            server.stop()
            os.environ.pop("PREFECT_API_URL", None)
            refresh_global_settings_context()  # and none to this server left for later tests


@pytest.mark.parametrize(("setting", "waited"), [("3", "3"), ("1", "2")])
def test_prefects_own_start_up_timeout_is_waited_where_it_is_longer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, waited: str
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # a new database: far longer to start
    monkeypatch.setattr(api_server, "FIRST_START_TIMEOUT_S", 2.0)
    monkeypatch.setenv(api_server.TIMEOUT_SETTING, setting)
    server = api_server.TemporaryServer()
    try:
        with pytest.raises(DigitflowError, match=f"did not answer within {waited} s"):
            server.wait_ready()
    finally:
        server.stop()


def test_a_command_killed_as_it_starts_leaves_no_server_behind(tmp_path: Path) -> None:
    """Killed before its lifeline watches (here: it never starts one), the command's server
    is ended by the kernel, told at its start to end it with the command."""
    script = (
        "import time\n"
        "from digitflow import api_server\n"
        "print(api_server.TemporaryServer().process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    environ = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    command = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True, env=environ)  # fmt: skip
    assert command.stdout is not None
    pid = int(command.stdout.readline())
    command.kill()
    command.wait(timeout=30)
    for _ in range(300):
        if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the server outlived the command that started it")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_commands_started_at_once_on_a_new_database_all_start(tmp_path: Path) -> None:
    """Three first starts at once on one new Prefect home: one migrates the database while
    the others wait, then find it settled; none fails on a column added twice."""
    script = (
        "from digitflow import api_server\n"
        "server = api_server.TemporaryServer()\n"
        "server.wait_ready()\n"
        "print('ready', server.settled, flush=True)\n"
        "server.stop()\n"
    )
    environ = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    commands = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=environ)
                for _ in range(3)]  # fmt: skip
    answers = [command.communicate(timeout=600) for command in commands]
    assert [out for out, _ in answers] == ["ready True\n"] * 3, [err[-2000:] for _, err in answers]
