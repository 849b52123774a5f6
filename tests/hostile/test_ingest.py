"""`digitflow ingest` against hostile sources: a server that trickles, a gzip bomb, the
published files in each other's places, a password in the source URL."""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import http.server
import json
import os
import shutil
import signal
import struct
import threading
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from digitflow.data.sources import FILES
from digitflow.storage import LocalStore
from tests.hostile.conftest import finish, prefect_database_holds, start, summary
from tests.idx_files import NAMES, write_set

pytestmark = pytest.mark.slow

TRICKLE_S = 30.0  # how long the trickling server keeps a connection before it gives up


def _ingest(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ingest", *args])
    return result.exit_code, result.output


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Sends one byte every 0.2 s: of the headers under /headers/, else of the body. Every
    read succeeds, so no per-read timeout fires; it stops by itself after TRICKLE_S."""

    def do_GET(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
        slow = head if self.path.startswith("/headers/") else b"\0" * 1_000_000
        if slow is not head:
            self.wfile.write(head)
        end = time.monotonic() + TRICKLE_S
        try:
            for byte in slow:
                if time.monotonic() > end:
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up: what a deadline does

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def trickle() -> Iterator[str]:
    yield from _serve(_Trickle)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_server_cannot_hold_ingest_past_its_deadline(
    where: str, trickle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    restore_environ: None,
) -> None:  # fmt: skip
    monkeypatch.setenv("DIGITFLOW_DOWNLOAD_DEADLINE_S", "2")
    code, output = _ingest("--source", f"{trickle}/{where}/", "--store", str(tmp_path / "s"))
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: {trickle}/{where}/")
    assert ".gz: the download did not finish within 2 s (DIGITFLOW_DOWNLOAD_DEADLINE_S;" in last
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_ingest_stopped_mid_download_ends_at_once_and_writes_nothing(
    tmp_path: Path, restore_environ: None
) -> None:
    asked = threading.Event()

    class Endless(http.server.BaseHTTPRequestHandler):
        """Sends its body a byte every 0.2 s for as long as the client reads it."""

        def do_GET(self) -> None:
            asked.set()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            with contextlib.suppress(OSError):  # the client hung up
                while True:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)

        def log_message(self, *args: object) -> None:
            pass

    serving = _serve(Endless)
    url = next(serving)
    try:
        proc = start("ingest", "--source", f"{url}/mnist/", "--store", str(tmp_path / "s"))
        assert asked.wait(120), "no download started"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C
        # Before, the command waited for its downloads: until their deadline (600 s).
        status, _, err = finish(proc)
        assert status == 130, err[-3000:]
        assert not (tmp_path / "s").exists()  # nothing half-written
    finally:
        next(serving, None)


def _bomb(header: bytes, size: int) -> bytes:
    """A gzip file of ``header`` then ``size`` zero bytes (whole MiB), a thousand times
    smaller: one deflate stream whose every MiB compresses to the same flushed block."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    mib = bytes(1 << 20)
    start = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    crc = zlib.crc32(header)
    for _ in range(size >> 20):
        crc = zlib.crc32(mib, crc)
    trailer = struct.pack("<II", crc, (len(header) + size) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\0\0\0\0\0\x02\xff" + start + block * (size >> 20) + end + trailer


def test_a_gzip_bomb_is_refused_before_it_takes_memory(
    tmp_path: Path, restore_environ: None
) -> None:
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 30, 28, 28)  # 30 images: 23,536 bytes
    assert gzip.decompress(_bomb(header, 4 << 20)) == header + bytes(4 << 20)  # a real gzip
    bomb = _bomb(header, 2 << 30)
    assert len(bomb) < 3_000_000  # 2 MB that expand to 2 GiB
    source = write_set(tmp_path / "src")
    (source / NAMES["train", "images"]).write_bytes(bomb)
    tracemalloc.start()
    try:
        code, output = _ingest("--source", str(source), "--accept-custom",
                               "--store", str(tmp_path / "s"))  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert f"{source}/train-images-idx3-ubyte.gz: decompresses to more than the 23,536" in last
    assert "a decompression bomb" in last
    assert peak < 256 << 20, f"{peak / 2**20:.0f} MiB allocated while refusing a bomb"
    assert not (tmp_path / "s").exists()


def test_published_files_in_each_others_places_are_refused_even_as_custom(
    mnist_dir: Path, tmp_path: Path, restore_environ: None
) -> None:
    source = tmp_path / "swapped"
    source.mkdir()
    swap = {"train-images-idx3-ubyte.gz": "t10k-images-idx3-ubyte.gz",
            "t10k-images-idx3-ubyte.gz": "train-images-idx3-ubyte.gz"}  # fmt: skip
    for name in FILES:
        shutil.copyfile(mnist_dir / swap.get(name, name), source / name)
    code, output = _ingest("--source", str(source), "--accept-custom",
                           "--store", str(tmp_path / "s"))  # fmt: skip
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert f"{source}/train-images-idx3-ubyte.gz: this is the published t10k-images" in last
    assert "given as train-images-idx3-ubyte.gz" in last
    assert not (tmp_path / "s").exists()


class _Guarded(http.server.SimpleHTTPRequestHandler):
    """Serves a folder to one user and password (Basic auth); 401 to anyone else."""

    authorization = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.authorization:
            self.send_error(401, "Unauthorized")
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def guarded(mnist_dir: Path) -> Iterator[tuple[str, str]]:
    """(base URL, password) of a server that serves the MNIST files to 'reader' only."""
    password = f"pw-{uuid.uuid4().hex}"
    token = base64.b64encode(f"reader:{password}".encode()).decode()
    handler = type("Handler", (_Guarded,), {"authorization": f"Basic {token}"})
    for url in _serve(functools.partial(handler, directory=str(mnist_dir))):  # type: ignore[arg-type]
        yield url, password


def test_a_password_in_the_source_is_refused_before_a_run_stores_it(
    guarded: tuple[str, str], tmp_path: Path, restore_environ: None
) -> None:
    url, password = guarded
    with_password = url.replace("://", f"://reader:{password}@")
    for command in ("ingest", "retrain"):
        result = CliRunner().invoke(app, [command, "--source", with_password])
        assert result.exit_code == 2
        assert "source: " in result.output and "~/.netrc" in result.output
        assert password not in result.output
    assert not prefect_database_holds(password)


def test_credentials_come_from_netrc_or_the_environment_and_are_shown_nowhere(
    guarded: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    restore_environ: None,
) -> None:  # fmt: skip
    url, password = guarded
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    code, output = _ingest("--source", url, "--store", str(tmp_path / "s1"))
    assert code == 1 and "HTTP 401" in output and "~/.netrc" in output

    # In the environment (never a flow parameter), the URL may carry them.
    monkeypatch.setenv("DIGITFLOW_MNIST_SOURCE", url.replace("://", f"://reader:{password}@"))
    code, from_env = _ingest("--store", str(tmp_path / "s1"), "--json")
    assert code == 0, from_env
    store = LocalStore(tmp_path / "s1")
    manifest = json.loads(store.read_bytes(store.list("datasets/")[0]))
    assert manifest["source"] == url.replace("://", "://***@")

    # Or netrc holds them, for the URL as it is.
    monkeypatch.delenv("DIGITFLOW_MNIST_SOURCE")
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login reader password {password}\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    code, from_netrc = _ingest("--source", url, "--store", str(tmp_path / "s2"), "--json")
    assert code == 0, from_netrc
    assert summary(from_netrc)["version"] == summary(from_env)["version"]

    everything = from_env + from_netrc
    for root in (tmp_path / "s1", tmp_path / "s2"):
        everything += "".join(p.read_bytes().decode("latin-1") for p in root.rglob("*.json"))
    assert password not in everything
    assert prefect_database_holds("***@127.0.0.1")  # the run's logs are in that database
    assert not prefect_database_holds(password)
