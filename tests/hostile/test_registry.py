"""The registry under hostile conditions, through the real CLI and flows, on both stores.

A history write that fails after the pointer moved, two promotions of one run at once,
an unknown training run, a corrupt card, a corrupt history record, a store that is not
writable: each ends either done and recorded, or in a one-line ``error:`` with nothing
half-done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from digitflow import registry
from digitflow.cli import app
from digitflow.storage import LocalStore, ObjectStore, open_store
from digitflow.training import TrainConfig, train_model
from flows.promote import PromoteParams, promote_flow
from flows.train import TrainParams
from tests.conftest import REPO, clone_store
from tests.hostile.conftest import DIGITFLOW, start
from tests.prefect_server import PrefectServer
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
GATE = ["--max-error", "0.5"]


@pytest.fixture(scope="module")
def trained(mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local store with training run ``r1``: two small models, one epoch each."""
    uri = clone_store(mnist_store[0], tmp_path_factory.mktemp("hostile-registry") / "store")
    for name in ("baseline_mlp", "simple_cnn"):
        config = TrainConfig(model=name, epochs=1, limit=1000)
        train_model(LocalStore(uri), mnist_store[1], config, "r1")
    return uri


def copy_store(source_uri: str, target: ObjectStore) -> ObjectStore:
    """Every object of a local store, written into ``target``."""
    source = LocalStore(source_uri)
    for key in source.list():
        target.write_bytes(key, source.read_bytes(key))
    return target


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, trained: str, tmp_path: Path) -> ObjectStore:
    """A copy of the trained store: a local directory, then a prefix on the S3 server."""
    if request.param == "local":
        return LocalStore(clone_store(trained, tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return copy_store(trained, open_store(f"s3://{bucket}/registry"))


def cli(*args: str) -> Any:
    """Run ``digitflow`` in this process; an unexpected exception fails the test."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def one_line_error(stderr: str) -> str:
    """The ``error:`` line that ends ``stderr``, after checking that no traceback came."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert lines and lines[-1].startswith("error: "), stderr
    return lines[-1]


def summary(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def actions(store: ObjectStore) -> list[str]:
    return [record.action for record in registry.history(store)]


def promoted_events(since: datetime) -> list[Any]:
    """The model-promoted events since ``since``, once the API has stored all sent so far."""
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    marker = f"digitflow.test.marker-{uuid.uuid4().hex}"
    emit_event(event=marker, resource={"prefect.resource.id": "digitflow.test"})

    def read(name: str) -> list[Any]:
        wanted = EventFilter(
            event=EventNameFilter(name=[name]), occurred=EventOccurredFilter(since=since)
        )
        with get_client(sync_client=True) as client:
            return list(client.read_events(filter=wanted, limit=50).events)

    deadline = time.monotonic() + 60
    while not read(marker):  # events are stored in the order they were sent
        assert time.monotonic() < deadline, "the API stored no event within 60 s"
        time.sleep(0.5)
    return read("digitflow.model.promoted")


def test_history_write_that_fails_after_the_pointer_moved_is_completed_next_time(
    trained: str, tmp_path: Path
) -> None:
    store = LocalStore(clone_store(trained, tmp_path / "store"))
    blocked = Path(store.root) / "models/history"
    blocked.write_text("a file where the history folder goes: nothing can be written in it")
    failed = cli("promote", "--training-run", "r1", *GATE, "--store", store.uri, "--json")
    assert failed.exit_code == 1
    line = one_line_error(failed.stderr)
    champion = registry.current_champion(store)[0]
    assert champion is not None and champion.id in line and "models/history" in line

    blocked.unlink()
    since = datetime.now(UTC)
    second = summary(cli("promote", "--training-run", "r1", *GATE, "--store", store.uri,
                         "--json"))["classifier"]  # fmt: skip
    assert second["completed"] == champion.id and not second["promoted"]
    assert "already the champion" in second["reason"]
    [record] = [r for r in registry.history(store) if r.action == "promote"]
    assert record.champion is not None and record.champion.id == champion.id
    assert record.decision is not None and record.decision["winner"] == champion.id
    [event] = promoted_events(since)
    assert event.resource.id == "digitflow.model." + champion.id.replace("/", ".")
    assert registry.current_champion(store)[0] == champion  # nothing moved a second time


def test_a_promotion_stopped_before_its_event_is_announced_by_the_next_round(
    trained: str, tmp_path: Path
) -> None:
    store = LocalStore(clone_store(trained, tmp_path / "store"))
    since = datetime.now(UTC)
    first = start("promote", "--training-run", "r1", *GATE, "--store", store.uri, "--json")
    # Killed as soon as the promotion's history record is there, the champion moved: the
    # gate's report and artifacts come after it, and then the task that sends the event.
    history = Path(store.root) / "models/history"
    deadline = time.monotonic() + 300
    while not list(history.glob("*-promote.json")):
        assert first.poll() is None and time.monotonic() < deadline, "no promotion recorded"
        time.sleep(0.001)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    champion = registry.current_champion(store)[0]
    assert champion is not None and champion.record_key is not None
    assert promoted_events(since) == [], "the promotion was not stopped before its event"
    waiting = registry.announcement_key(champion.record_key)
    assert store.exists(waiting)
    second = summary(cli("promote", "--training-run", "r1", *GATE, "--store", store.uri,
                         "--json"))["classifier"]  # fmt: skip
    assert not second["promoted"] and "already the champion" in second["reason"]
    [event] = promoted_events(since)
    assert event.resource.id == "digitflow.model." + champion.id.replace("/", ".")
    assert not store.exists(waiting)  # announced: a third round sends nothing more
    assert registry.current_champion(store)[0] == champion


EVENT_STREAM = re.compile(rb"GET /api/events/in[ ?]")


class RefuseEventStream(TcpProxy):
    """In front of a Prefect server: its API goes through, its event stream (the websocket
    events are sent on) does not, as through a proxy that lets no websocket pass."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.tails: dict[socket.socket, bytes] = {}
        self.refused = 0

    def arriving(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        if sink.getpeername()[1] != self.target_port:
            return
        seen = self.tails.get(source, b"") + data
        self.tails[source] = seen[-512:]
        if EVENT_STREAM.search(seen):
            self.refused += 1
            raise ConnectionAbortedError("no websocket through this proxy")


def stored_event(server: PrefectServer, event_id: uuid.UUID, since: datetime) -> Any:
    """The event of ``event_id`` as the server stored it (waiting for its event store)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.filters import EventFilter, EventIDFilter, EventOccurredFilter

    wanted = EventFilter(id=EventIDFilter(id=[event_id]), occurred=EventOccurredFilter(since=since))
    deadline = time.monotonic() + 60
    with SyncPrefectClient(server.api_url) as client:
        while not (found := client.read_events(filter=wanted, limit=5).events):
            assert time.monotonic() < deadline, "the server stored no such event within 60 s"
            time.sleep(0.5)
    [event] = found
    return event


def test_a_promotion_whose_event_cannot_be_sent_is_announced_by_the_next_round(
    trained: str, tmp_path: Path
) -> None:
    server = PrefectServer(tmp_path / "prefect", tmp_path)
    server.start()
    try:
        proxy = RefuseEventStream(server.port)
        proxy.up()
        store = LocalStore(clone_store(trained, tmp_path / "store"))
        since = datetime.now(UTC)
        args = [DIGITFLOW, "promote", "--training-run", "r1", *GATE, "--store", store.uri]
        through = {**server.env, "PREFECT_API_URL": f"{proxy.endpoint}/api"}
        first = subprocess.run(args, env=through, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        assert proxy.refused > 0, "the promotion sent no event"
        champion = registry.current_champion(store)[0]
        assert champion is not None and champion.record_key is not None
        assert "could not be sent" in first.stdout + first.stderr
        waiting = registry.announcement_key(champion.record_key)
        assert store.exists(waiting)  # before, it was removed: the event was lost for good
        second_at = datetime.now(UTC)
        second = subprocess.run(args, env=server.env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already the champion" in second.stdout + second.stderr
        change = store.uri_of(champion.record_key)
        event = stored_event(server, uuid.uuid5(uuid.NAMESPACE_URL, change), since)
        assert event.event == "digitflow.model.promoted"
        assert event.resource.id == "digitflow.model." + champion.id.replace("/", ".")
        assert event.received > second_at  # sent by the second round: none went before
        # Tied to the flow run that sent it, as Prefect's own events are.
        assert "flow-run" in {r.role for r in event.related}
        assert not store.exists(waiting)
    finally:
        server.stop()


POINTER_WRITE = re.compile(rb"PUT /[^ \r\n]*/models/champion\.json ")
FINAL_ANSWER = re.compile(rb"HTTP/1\.[01] [2-5]\d\d ")


class CutAfterPointer(TcpProxy):
    """A proxy that cuts the network as the champion pointer's write is answered: the
    answer goes through, nothing after it does, until ``outage_s`` later."""

    def __init__(self, target_port: int, outage_s: float) -> None:
        super().__init__(target_port)
        self.outage_s = outage_s
        self.armed: set[socket.socket] = set()  # server ends of the pointer's writes
        self.tails: dict[socket.socket, bytes] = {}  # the last bytes each client sent
        self.cut = threading.Event()  # the outage began (once)
        self.outage = threading.Event()  # the network is down now

    def arriving(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        if sink.getpeername()[1] == self.target_port:  # a request
            if self.outage.is_set():  # on the pointer's connection, once its answer went
                raise ConnectionAbortedError("the network is down")
            # A request line may come in two reads: look at it with the end of the one before.
            seen = self.tails.get(source, b"") + data
            self.tails[source] = seen[-512:]
            if POINTER_WRITE.search(seen):
                self.armed.add(sink)
            return
        # The final answer, though a "100 Continue" may come in the same read before it.
        # The outage starts before it goes through: the client's next request, sent as
        # soon as the answer reaches it, cannot overtake the cut.
        answered = FINAL_ANSWER.search(data) is not None
        if answered and source in self.armed and not self.cut.is_set():
            self.cut.set()
            self.outage.set()
            self.down(keep=(source, sink))
            threading.Thread(target=self._restore, daemon=True).start()

    def passed(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        if self.outage.is_set() and source in self.armed:  # the answer went: cut it too
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _restore(self) -> None:
        time.sleep(self.outage_s)
        self.outage.clear()
        self.up()


def test_network_cut_after_the_pointer_moved_is_completed_by_the_retry(
    trained: str, s3_bucket: str, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CutAfterPointer(int(s3_server.endpoint.rsplit(":", 1)[1]), outage_s=3.0)
    proxy.up()
    store = copy_store(trained, open_store(f"s3://{s3_bucket}/cut"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    since = datetime.now(UTC)
    params = PromoteParams(training_run="r1", store=store.uri, gate={"max_error": 0.5})
    result = promote_flow(params).classifier
    assert result is not None
    assert proxy.cut.is_set()  # the history write met the outage
    assert result.promoted and result.champion is not None
    assert actions(open_store(store.uri)) == ["promote"]
    [event] = promoted_events(since)
    assert event.resource.id == "digitflow.model." + result.champion.replace("/", ".")
    proxy.down()


def test_two_promotions_of_one_run_at_once_promote_it_once(store: ObjectStore) -> None:
    since = datetime.now(UTC)
    params = PromoteParams(training_run="r1", store=store.uri, gate={"max_error": 0.5})
    start = threading.Barrier(2)
    results: list[Any] = []

    def promote() -> None:
        start.wait()
        results.append(promote_flow(params).classifier)

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.promoted for r in results) == [False, True]
    winner = next(r for r in results if r.promoted)
    other = next(r for r in results if not r.promoted)
    assert other.champion == winner.champion and "already the champion" in other.reason
    assert actions(store).count("promote") == 1
    assert len(promoted_events(since)) == 1


HISTORY_WRITE = re.compile(rb"PUT /[^ \r\n]*/models/history/[^ \r\n]+ ")


class HoldHistoryWrite(TcpProxy):
    """A proxy that holds back the first history write (a slow network, one request):
    the pointer has moved, its record is not there yet, until ``release`` is set."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.holding = threading.Event()
        self.release = threading.Event()

    def arriving(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        if sink.getpeername()[1] != self.target_port or self.holding.is_set():
            return
        if HISTORY_WRITE.search(data):
            self.holding.set()
            self.release.wait(timeout=50)


def test_a_promotion_whose_record_is_on_its_way_is_announced_once(
    trained: str, s3_bucket: str, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second round sees the new pointer before its record: it writes the record (as
    for a crash) and announces; the first round's own write then finds it there. Both
    announce the one change, and Prefect keeps one event."""
    proxy = HoldHistoryWrite(int(s3_server.endpoint.rsplit(":", 1)[1]))
    proxy.up()
    store = copy_store(trained, open_store(f"s3://{s3_bucket}/held"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    since = datetime.now(UTC)
    params = PromoteParams(training_run="r1", store=store.uri, gate={"max_error": 0.5})
    first: list[Any] = []
    slow = threading.Thread(target=lambda: first.append(promote_flow(params).classifier))
    slow.start()
    try:
        assert proxy.holding.wait(timeout=120), "the first round wrote no history record"
        second = promote_flow(params).classifier
    finally:
        proxy.release.set()
        slow.join()
    [winner] = first
    assert winner.promoted and winner.champion is not None
    assert not second.promoted and second.completed == winner.champion
    assert "already the champion" in second.reason
    # The second round decided with a champion in place: it records its refusal.
    assert actions(open_store(store.uri)) == ["promote", "refuse"]
    [event] = promoted_events(since)
    assert event.resource.id == "digitflow.model." + winner.champion.replace("/", ".")
    proxy.down()


def test_an_unknown_training_run_is_an_error_and_nothing_is_recorded(store: ObjectStore) -> None:
    result = cli("promote", "--training-run", "no-such-run", "--store", store.uri, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    line = one_line_error(result.stderr)
    assert "no-such-run" in line and "digitflow models list" in line
    assert registry.current_champion(store) == (None, None)
    assert not store.list("models/history/")


def test_a_corrupt_card_hides_only_its_own_candidate(store: ObjectStore) -> None:
    store.write_bytes("models/candidates/r1/simple_cnn/card.json", b'{"training_run": "r1", ')
    listing = summary(cli("models", "list", "--store", store.uri, "--json"))
    assert [c["model"] for c in listing["candidates"]] == ["r1/baseline_mlp"]
    [broken] = listing["unreadable"]
    assert broken["model"] == "r1/simple_cnn" and "card.json" in broken["key"]
    assert "not a valid card" in broken["error"]

    result = summary(cli("promote", "--training-run", "r1", *GATE, "--store", store.uri,
                         "--json"))["classifier"]  # fmt: skip
    assert result["promoted"] and result["champion"] == "r1/baseline_mlp"
    assert [row["id"] for row in result["decision"]["rows"]] == ["r1/baseline_mlp"]
    assert [u["model"] for u in result["unreadable"]] == ["r1/simple_cnn"]


def test_a_corrupt_history_record_is_a_one_line_error_naming_it(store: ObjectStore) -> None:
    key = "models/history/20250101T000000.000000Z-promote.json"
    store.write_bytes(key, b'{"action": "promote", "at": ')
    proc = subprocess.run(
        [sys.executable, "-m", "digitflow", "models", "show", "r1/baseline_mlp",
         "--store", store.uri],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    line = one_line_error(proc.stderr)
    assert store.uri_of(key) in line and "history record" in line


def _two_promotions(store: ObjectStore) -> None:
    """Promote r1's two candidates one after the other, so that a rollback is possible."""
    first = registry.read_card(store, "r1", "baseline_mlp")
    registry.promote(store, first, {"reason": "first"}, None)
    _, etag = registry.current_champion(store)
    registry.promote(store, registry.read_card(store, "r1", "simple_cnn"), {"reason": "2"}, etag)


def test_a_store_that_is_not_writable_is_a_one_line_error(trained: str, tmp_path: Path) -> None:
    store = LocalStore(clone_store(trained, tmp_path / "store"))
    _two_promotions(store)
    pointer_before = store.read_bytes("models/champion.json")
    command = [sys.executable, "-m", "digitflow", "models", "rollback", "--store", store.uri]
    if os.geteuid() == 0:  # root writes anywhere, unless it gives up that capability
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and setpriv is missing to drop root's rights")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    subprocess.run(["chmod", "-R", "a-w", store.uri], check=True)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    finally:
        subprocess.run(["chmod", "-R", "u+w", store.uri], check=True)
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert store.uri in line and "not writable" in line
    assert store.read_bytes("models/champion.json") == pointer_before


def test_a_training_run_id_taken_or_no_single_name_is_refused_before_any_training(
    trained: str, mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    store = LocalStore(clone_store(trained, tmp_path / "store"))
    before = {key: store.read_bytes(key) for key in store.list("models/")}
    config = TrainConfig(model="baseline_mlp", epochs=1, limit=1000)
    with pytest.raises(registry.RegistryError, match=r"'r1' already has a baseline_mlp candidate"):
        train_model(store, mnist_store[1], config, "r1")
    # Nothing written: a training refused only at its upload would have replaced its history.
    assert {key: store.read_bytes(key) for key in store.list("models/")} == before
    for bad in ("2026/12/01", "..", "r1/../r2", "-r", "a" * 81):
        with pytest.raises(ValueError, match="training_run"):
            TrainParams(training_run=bad)
