"""Training in the library: data slices, candidates in the store, process isolation."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from digitflow import isolation
from digitflow.errors import TrainingError
from digitflow.fitting import EpochMetrics, load_data
from digitflow.isolation import run_in_process
from digitflow.storage import LocalStore
from digitflow.training import TrainConfig, train_model
from tests import isolation_targets
from tests.conftest import REPO


def test_validation_slice_is_held_out_and_limit_applies(mnist_store: tuple[str, str]) -> None:
    uri, version = mnist_store
    data = load_data(LocalStore(uri), version, limit=1000, seed=1)
    assert len(data.y_train) == 1000 and len(data.y_val) == 5000 and len(data.y_test) == 10_000
    assert data.x_train.dtype == np.float32 and data.x_train.shape[1:] == (28, 28, 1)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    full = load_data(LocalStore(uri), version, limit=None, seed=1)
    assert len(full.y_train) == 55_000  # 60,000 minus the validation slice
    counts = np.bincount(full.y_val, minlength=10)
    assert counts.min() > 400  # stratified: every class present in proportion


@pytest.mark.slow
def test_train_model_writes_a_complete_verifiable_candidate(
    mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    uri, version = mnist_store
    store = LocalStore(tmp_path / "store")
    for key in LocalStore(uri).list():
        store.write_bytes(key, LocalStore(uri).read_bytes(key))
    epochs: list[EpochMetrics] = []
    record = train_model(
        store,
        version,
        TrainConfig(model="baseline_mlp", epochs=2, limit=2000),
        "run-a",
        on_epoch=epochs.append,
    )
    assert [m.epoch for m in epochs] == [1, 2] and epochs[1].loss < epochs[0].loss
    assert record.val_error < 0.2  # 2,000 examples are enough to read most digits
    model_bytes = store.read_bytes(record.model_key)
    assert hashlib.sha256(model_bytes).hexdigest() == record.sha256
    card = json.loads(store.read_bytes(record.card_key))
    assert card["dataset_version"] == version and card["params"]["epochs"] == 2
    assert card["validation"]["size"] == 5000 and card["train_examples"] == 2000
    assert card["code_version"] and card["device"].startswith(("CPU", "GPU"))
    history = json.loads(store.read_bytes(card["history_key"]))
    assert len(history["val_accuracy"]) == 2


@pytest.mark.slow
def test_divergence_is_a_clear_training_error(mnist_store: tuple[str, str], tmp_path: Path) -> None:
    uri, version = mnist_store
    config = TrainConfig(model="simple_cnn", epochs=1, limit=600, learning_rate=1e30)
    with pytest.raises(TrainingError, match=r"simple_cnn diverged: loss is nan .* lower the"):
        train_model(LocalStore(uri), version, config, "run-diverge")
    assert LocalStore(uri).list("models/candidates/run-diverge") == []


def test_child_events_arrive_in_order_with_pinned_environment() -> None:
    seen: list[int] = []
    result = run_in_process(
        isolation_targets.count_to,
        {"n": 5},
        name="counter",
        env={"CUDA_VISIBLE_DEVICES": "1"},
        on_event=seen.append,
    )
    assert seen == [0, 1, 2, 3, 4]
    assert result == "counted to 5 with CUDA_VISIBLE_DEVICES=1"


def test_child_exception_reaches_the_parent_with_its_traceback() -> None:
    with pytest.raises(TrainingError, match="model-x: ValueError: bad hyper-parameter") as info:
        run_in_process(isolation_targets.fail, {}, name="model-x")
    assert "isolation_targets.py" in info.value.child_traceback


def test_end_all_stops_children_waited_on_in_other_threads() -> None:
    errors: list[BaseException] = []
    ticks: list[int] = []

    def wait() -> None:
        try:
            run_in_process(isolation_targets.tick_forever, {}, name="ticker", on_event=ticks.append)
        except TrainingError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not ticks:  # the child runs
        time.sleep(0.05)
    isolation.end_all()
    waiter.join(timeout=60)
    assert not waiter.is_alive(), "the thread still waits on an ended child"
    assert [str(e) for e in errors] == ["ticker: stopped, as the command was"]


def test_an_error_in_the_parent_ends_the_child_at_once(tmp_path: Path) -> None:
    def interrupt(tick: int) -> None:
        raise KeyboardInterrupt  # as Ctrl+C raises it in the waiting thread

    ended = tmp_path / "ended"
    with pytest.raises(KeyboardInterrupt):
        run_in_process(isolation_targets.tick_forever, {"ended": str(ended)}, name="ticker",
                       on_event=interrupt)  # fmt: skip
    # Ended by a SIGTERM, not waited on until the SIGKILL that a child slow to exit gets.
    assert ended.read_text() == "SIGTERM"


def _stopped_in_a_script(target: str, stop: str) -> subprocess.CompletedProcess[str]:
    """Run ``isolation_targets.<target>`` as a training, waited on in a thread, in a Python
    process of its own; once it has reported, run the lines ``stop``. The output starts
    with the error its wait ended with."""
    script = (
        "import threading, time\n"
        "from digitflow import isolation\n"
        "from tests import isolation_targets\n"
        "ticks = []\n"
        "def wait():\n"
        "    try:\n"
        f"        isolation.run_in_process(isolation_targets.{target}, {{}}, name='{target}',\n"
        "                                 on_event=ticks.append)\n"
        "    except Exception as exc:\n"
        "        print(exc)\n"
        "waiter = threading.Thread(target=wait)\n"
        "waiter.start()\n"
        "while not ticks:\n"
        "    time.sleep(0.05)\n"
    ) + stop
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_a_child_ended_lets_go_of_what_it_holds() -> None:
    # The line reader's training holds a process pool: its queues' named semaphores are
    # removed as the child ends, ended again and again as a stopped flow ends its
    # trainings until their tasks end. Before, a child ended where it stood left them to
    # multiprocessing's tracker, which warned of them as the command exited.
    done = _stopped_in_a_script(
        "tick_with_a_pool",
        "while waiter.is_alive():\n    isolation.end_all()\n    waiter.join(isolation.POLL_S)\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tick_with_a_pool: stopped, as the command was"
    assert "leaked semaphore" not in done.stderr, done.stderr


def test_a_child_in_native_code_ends_at_once_and_lets_go_of_what_it_holds() -> None:
    # A Python signal handler waits for the main thread to come back to Python: a child
    # whose training waits in its backend for a batch held the stop until the batch came,
    # for ever if none did (its one SIGTERM, and no more).
    done = _stopped_in_a_script(
        "wait_in_native_code",
        "time.sleep(0.5)  # inside the native call\n"
        "isolation.end_all()\n"
        "waiter.join(120)\n"
        "print('waiting' if waiter.is_alive() else 'ended')\n"
        "import os; os._exit(0)\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        "wait_in_native_code: stopped, as the command was", "ended"], done  # fmt: skip
    # Ended by its own clean-up, not killed: the pool's semaphores are gone with it.
    assert "leaked semaphore" not in done.stderr, done.stderr


def test_a_child_deaf_to_the_stop_is_killed() -> None:
    errors: list[BaseException] = []
    ticks: list[int] = []

    def wait() -> None:
        try:
            run_in_process(isolation_targets.ignore_the_stop, {}, name="deaf",
                           on_event=ticks.append)  # fmt: skip
        except TrainingError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not ticks:
        time.sleep(0.05)
    started = time.monotonic()
    while waiter.is_alive() and time.monotonic() - started < 120:
        isolation.end_all()  # as a stopped flow does until its tasks end
        waiter.join(isolation.POLL_S)
    assert not waiter.is_alive(), "a child deaf to SIGTERM outlived the stop"
    assert [str(e) for e in errors] == ["deaf: stopped, as the command was"]


def test_a_child_dead_in_the_middle_of_a_message_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="exited with code 3 before finishing"):
        run_in_process(isolation_targets.die_mid_message, {}, name="model-x")


def test_a_child_ended_from_outside_says_how() -> None:
    ticks: list[int] = []

    def end_it(signum: int) -> Callable[[int], None]:
        def tick(pid: int) -> None:
            if not ticks:
                ticks.append(pid)
                os.kill(pid, signum)

        return tick

    for signum, said in [(signal.SIGTERM, "was ended by SIGTERM before finishing"),
                         (signal.SIGKILL, "was killed (SIGKILL) before finishing")]:  # fmt: skip
        ticks.clear()
        with pytest.raises(TrainingError, match=re.escape(f"ticker: process {said}")):
            run_in_process(isolation_targets.tick_its_pid, {}, name="ticker",
                           on_event=end_it(signum))  # fmt: skip


def test_a_process_the_child_forks_and_ends_does_not_end_the_child() -> None:
    result = run_in_process(isolation_targets.end_a_forked_helper, {}, name="model-x")
    assert result == "the helper ended, and this goes on"


def test_a_child_does_not_outlive_its_parent_killed(tmp_path: Path) -> None:
    started = tmp_path / "started"
    script = (
        "from digitflow.isolation import run_in_process\n"
        "from tests import isolation_targets\n"
        f"run_in_process(isolation_targets.tick_forever, {{'started': {str(started)!r}}}, "
        "name='ticker')\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() or not started.read_text():
            assert parent.poll() is None and time.monotonic() < deadline, "no child started"
            time.sleep(0.05)
    finally:
        parent.kill()  # SIGKILL, the moment the child runs: no handler, no atexit
        parent.wait()
    stat = Path(f"/proc/{started.read_text()}/stat")

    def running() -> bool:  # an ended child not reaped yet (a zombie) has ended
        with contextlib.suppress(FileNotFoundError):
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        return False

    deadline = time.monotonic() + 60
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(), "the child ran on after its parent was killed"


def test_child_crash_is_reported_not_hung() -> None:
    with pytest.raises(TrainingError, match="model-y: process exited with code 9"):
        run_in_process(isolation_targets.crash, {}, name="model-y")
