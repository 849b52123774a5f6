"""One contract, two stores: the local directory and a real S3 endpoint over HTTP."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from digitflow.errors import NotFoundError, PreconditionFailed, StoreError, StoreUnavailable
from digitflow.storage import MULTIPART_THRESHOLD, LocalStore, ObjectStore, S3Store, open_store
from tests.conftest import REPO


@pytest.fixture
def store(store_uri: str) -> ObjectStore:
    return open_store(store_uri)


def test_write_then_read_round_trips(store: ObjectStore) -> None:
    store.write_bytes("a/b/c.bin", b"\x00\x01payload")
    assert store.read_bytes("a/b/c.bin") == b"\x00\x01payload"
    assert store.exists("a/b/c.bin")
    assert not store.exists("a/b")


def test_missing_key_raises_not_found_naming_it(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match="nope.json"):
        store.read_bytes("nope.json")
    assert not store.exists("nope.json")


def test_list_is_sorted_prefix_match_and_hides_staging(store: ObjectStore) -> None:
    for key in ["x/2", "x/1", "xy/3", "z"]:
        store.write_bytes(key, b"1")
    assert store.list("x/") == ["x/1", "x/2"]
    assert store.list("x") == ["x/1", "x/2", "xy/3"]
    assert store.list() == ["x/1", "x/2", "xy/3", "z"]


def test_list_under_nested_prefixes_matches_key_prefixes(store: ObjectStore) -> None:
    for key in ["a/b/c1", "a/b/c2/d", "a/bc/e", "a/b2", "f"]:
        store.write_bytes(key, b"1")
    assert store.list("a/b/") == store.list("a/b/c") == ["a/b/c1", "a/b/c2/d"]
    assert store.list("a/b") == ["a/b/c1", "a/b/c2/d", "a/b2", "a/bc/e"]
    assert store.list("a/b/c2/") == ["a/b/c2/d"]
    assert store.list("a/b/c1") == ["a/b/c1"]
    assert store.list("a/zz/") == store.list("q") == store.list("f/") == []
    assert store.list("../") == store.list("a/../a/") == []


def test_local_list_hides_staging_under_any_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("k", b"1")
    (tmp_path / ".tmp" / "half-written").write_bytes(b"0")
    assert store.list() == store.list("k") == ["k"]
    assert store.list(".tmp/") == store.list(".") == []


def test_overwrite_replaces_whole_object(store: ObjectStore) -> None:
    store.write_bytes("k", b"long old content")
    store.write_bytes("k", b"new")
    assert store.read_bytes("k") == b"new"


def test_if_absent_refuses_existing_object(store: ObjectStore) -> None:
    store.write_bytes("pointer.json", b"first", if_absent=True)
    with pytest.raises(PreconditionFailed, match="already exists"):
        store.write_bytes("pointer.json", b"second", if_absent=True)
    assert store.read_bytes("pointer.json") == b"first"


def test_if_match_detects_a_concurrent_change(store: ObjectStore) -> None:
    store.write_bytes("pointer.json", b"v1")
    _, etag = store.read_with_etag("pointer.json")
    new_etag = store.write_bytes("pointer.json", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.write_bytes("pointer.json", b"v3", if_match=etag)  # stale ETag: someone else won
    assert store.read_bytes("pointer.json") == b"v2"
    assert store.read_with_etag("pointer.json")[1] == new_etag


def test_racing_conditional_writers_exactly_one_wins(store: ObjectStore) -> None:
    store.write_bytes("pointer.json", b"start")
    _, etag = store.read_with_etag("pointer.json")
    outcomes: list[str] = []

    def writer(i: int) -> None:
        try:
            store.write_bytes("pointer.json", f"writer {i}".encode(), if_match=etag)
            outcomes.append(f"won {i}")
        except PreconditionFailed:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1, outcomes
    assert store.read_bytes("pointer.json").decode() == winners[0].replace("won", "writer")


def test_large_file_round_trips_through_put_and_get(store: ObjectStore, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * ((MULTIPART_THRESHOLD + 1024 * 1024) // 256)
    big.write_bytes(payload)
    store.put_file("models/big.bin", big)
    out = tmp_path / "out.bin"
    store.get_file("models/big.bin", out)
    assert out.read_bytes() == payload
    store.write_bytes("models/big2.bin", payload)
    assert store.read_bytes("models/big2.bin") == payload


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.write_bytes("gone", b"1")
    store.delete("gone")
    store.delete("gone")
    assert not store.exists("gone")


def test_a_conditional_delete_removes_only_the_object_as_it_was_read(store: ObjectStore) -> None:
    store.write_bytes("commit", b"quarantined")
    _, read = store.read_with_etag("commit")
    store.write_bytes("commit", b"read again by another run", if_match=read)
    with pytest.raises(PreconditionFailed):
        store.delete("commit", if_match=read)
    assert store.read_bytes("commit") == b"read again by another run"
    _, now = store.read_with_etag("commit")
    store.delete("commit", if_match=now)
    assert not store.exists("commit")
    store.delete("commit", if_match=now)  # gone already: nothing to do


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a"])
def test_unsafe_keys_are_refused(store: ObjectStore, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid object key"):
        store.write_bytes(bad, b"1")


def test_local_store_not_writable_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalStore(blocker / "store")
    with pytest.raises(StoreError, match="not writable"):
        store.write_bytes("k", b"1")


def test_a_folder_of_the_store_on_another_file_system_takes_every_write(
    tmp_path: Path,
) -> None:
    """A store whose scoring/ is a link to another disk (here /dev/shm, a tmpfs): objects
    are staged beside their place there, as a rename across file systems cannot be."""
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    away = Path(tempfile.mkdtemp(dir=other, prefix="digitflow-test-"))
    try:
        store = LocalStore(tmp_path / "store")
        (tmp_path / "store").mkdir()
        (tmp_path / "store" / "scoring").symlink_to(away)
        store.write_bytes("scoring/b/a.bin", b"plain")
        etag = store.write_bytes("scoring/b/batch.json", b"{}", if_absent=True)
        with pytest.raises(PreconditionFailed):
            store.write_bytes("scoring/b/batch.json", b"{}", if_absent=True)
        store.write_bytes("scoring/b/batch.json", b"{1}", if_match=etag)
        source = tmp_path / "big.bin"
        source.write_bytes(b"x" * 1000)
        store.put_file("scoring/b/big.bin", source)
        assert store.read_bytes("scoring/b/batch.json") == b"{1}"
        assert store.list("scoring/") == ["scoring/b/a.bin", "scoring/b/batch.json",
                                          "scoring/b/big.bin"]  # fmt: skip
        assert sorted(p.name for p in (away / "b").iterdir()) == ["a.bin", "batch.json", "big.bin"]
    finally:
        shutil.rmtree(away)


def test_local_write_leaves_no_partial_object_on_failure(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "k").mkdir()  # a directory where the object should go: the rename fails
    with pytest.raises(StoreError, match="cannot write"):
        store.write_bytes("k", b"payload")
    assert store.list() == []


def test_s3_missing_bucket_is_a_clear_store_error(s3_server: object) -> None:
    store = open_store("s3://no-such-bucket-here/prefix")
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        store.write_bytes("k", b"1")


def test_open_store_dispatches_on_uri(tmp_path: Path, s3_server: object) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    s3 = open_store("s3://bucket/a/b/")
    assert isinstance(s3, S3Store) and s3.uri == "s3://bucket/a/b"
    with pytest.raises(StoreError, match="unsupported store"):
        open_store("gs://bucket")


def test_a_create_where_a_file_blocks_the_folder_is_an_error_not_a_conflict(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("models/history", b"a file where a folder goes")
    with pytest.raises(StoreError, match="cannot write") as error:
        store.write_bytes("models/history/x.json", b"{}", if_absent=True)
    assert not isinstance(error.value, PreconditionFailed)


class _Busy(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request as S3 does when it is overloaded."""

    def _busy(self) -> None:
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>")  # fmt: skip
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _busy

    def log_message(self, *args: object) -> None:
        pass


def test_an_s3_endpoint_that_is_overloaded_is_a_store_to_try_again_not_a_bad_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # boto's own retries, here none
        for name, value in (("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
            monkeypatch.setenv(name, value)
        store = open_store("s3://bucket/prefix")
        with pytest.raises(
            StoreUnavailable, match="cannot read s3://bucket/prefix/a now: SlowDown"
        ):
            store.read_bytes("a")
        with pytest.raises(StoreUnavailable, match="cannot write s3://bucket/prefix/a now"):
            store.write_bytes("a", b"1")
    finally:
        server.shutdown()


def test_a_password_in_the_s3_endpoint_is_never_in_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:  # a port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:s3cr3t@127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name, value in (("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreUnavailable) as caught:
        open_store("s3://bucket/prefix").read_bytes("a")
    assert "127.0.0.1" in str(caught.value) and "***@" in str(caught.value), caught.value
    assert "s3cr3t" not in str(caught.value)


def test_credentials_in_an_s3_uri_or_an_endpoint_that_is_no_url_are_never_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(StoreError, match=r"s3://\*\*\*@bucket-one/p holds credentials") as caught:
        open_store("s3://AKIAEXAMPLE:wJalrSECRET@bucket-one/p")
    assert "wJalrSECRET" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "user:s3cr3t@127.0.0.1:9000")  # no scheme
    with pytest.raises(StoreError, match="S3 endpoint configured .* is not a URL") as caught:
        open_store("s3://bucket/prefix")
    assert "s3cr3t" not in str(caught.value)


_ON_READ_ONLY = """
import pathlib, sys
from digitflow.storage import LocalStore
store = LocalStore(sys.argv[1])
for name, write in (
    ("write", lambda: store.write_bytes("k", b"new")),
    ("create", lambda: store.write_bytes("new", b"new", if_absent=True)),
    ("put_file", lambda: store.put_file("k", pathlib.Path(sys.argv[0]))),
    ("delete", lambda: store.delete("k")),
):
    try:
        write()
        print(name, "written")
    except Exception as exc:
        print(name, type(exc).__name__, exc)
"""


def test_a_local_store_on_a_read_only_file_system_says_so_on_every_write(tmp_path: Path) -> None:
    """Where the file system refuses every write, the staging file's cleanup fails too, and
    must not put its own error in place of the reason."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("no mount namespace to make a read-only file system in (unshare -m)")
    mounted = tmp_path / "mnt"
    mounted.mkdir()
    (tmp_path / "script.py").write_text(_ON_READ_ONLY)
    store = f"{mounted}/store"
    script = (
        f'mount -t tmpfs none {mounted} && {sys.executable} -c "from digitflow.storage import '
        f"LocalStore; LocalStore('{store}').write_bytes('k', b'old')\" && "
        f"mount -o remount,ro {mounted} && {sys.executable} {tmp_path}/script.py {store}"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert set(said) == {"write", "create", "put_file", "delete"}, proc.stdout
    for name, line in said.items():
        assert line.startswith("StoreError ") and "Read-only file system" in line, (name, line)
        assert store in line, line
