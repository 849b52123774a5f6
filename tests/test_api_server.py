"""The temporary API server a command starts: a full start on a new database, and a
quicker one (no migrations, no block registration) once that database has had one."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from digitflow import api_server


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


def test_a_database_of_the_users_choosing_always_starts_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    (tmp_path / "prefect.db").touch()
    api_server._record_settled()  # Prefect's default database is settled
    assert api_server._settled()
    database = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", database)
    server = start(expect_settled=False)
    try:
        assert "local-file-system" in block_types(server)
    finally:
        server.stop()
