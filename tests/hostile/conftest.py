"""The hostile-input suite's fixtures: a small champion, scans, the CLI as a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitflow.storage import ObjectStore, open_store
from tests.conftest import clone_store, in_the_foreground

DIGITFLOW = str(Path(sys.executable).with_name("digitflow"))  # the console script


@pytest.fixture(scope="session")
def champion(mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local store whose champion is a small MLP (one epoch on 2,000 examples): these
    tests need a champion, not a good one."""
    from digitflow import registry
    from digitflow.training import TrainConfig, train_model

    uri, version = mnist_store
    store = open_store(clone_store(uri, tmp_path_factory.mktemp("hostile") / "store"))
    train_model(store, version, TrainConfig(model="baseline_mlp", epochs=1, limit=2000), "h")
    registry.promote(store, registry.read_card(store, "h", "baseline_mlp"), {}, None)
    return store.uri


@pytest.fixture
def store(champion: str, tmp_path: Path) -> ObjectStore:
    """A copy of the champion's store for one test."""
    return open_store(clone_store(champion, tmp_path / "store"))


@pytest.fixture(scope="session")
def forms(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated form pages and four single digits (scans only: no truth file)."""
    from digitflow.samples import make_sample_folder

    root = tmp_path_factory.mktemp("forms")
    return make_sample_folder(mnist_dir, root / "scans", 6, seed=3, truth_csv=root / "truth.csv")


def copies(forms: Path, folder: Path, times: int) -> list[str]:
    """``times`` copies of every scan of ``forms`` in ``folder``; their names, sorted."""
    folder.mkdir(parents=True)
    for k in range(times):
        for scan in forms.iterdir():
            shutil.copyfile(scan, folder / f"{k:02d}-{scan.name}")
    return sorted(p.name for p in folder.iterdir())


def start(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """``digitflow ARGS`` as a process of its own (its own process group, to kill it whole)."""
    return subprocess.Popen(
        [*prefix, DIGITFLOW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=in_the_foreground,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str, str]:
    """Wait for a process started by ``start``; (exit status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"digitflow did not finish within {timeout_s} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def summary(out: str) -> dict:
    """The JSON summary a command printed last."""
    return dict(json.loads(out.strip().splitlines()[-1]))


def wait_for_objects(store: ObjectStore, prefix: str, proc: subprocess.Popen[str]) -> int:
    """Wait until the store holds an object under ``prefix`` (or the process ends)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = len(store.list(prefix))
        if found or proc.poll() is not None:
            return found
        time.sleep(0.01)
    return 0


def without_file_permission_override() -> tuple[str, ...]:
    """A command prefix that runs a process without root's right to read any file, so that
    a folder with mode 000 is unreadable to it as it is to anyone else ('()' if not root)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no folder can be made unreadable")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--")


def prefect_database_holds(text: str) -> bool:
    """Whether Prefect's database (flow run parameters, logs, events) holds ``text``."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    EventsWorker.drain_all()
    home = Path(os.environ["PREFECT_HOME"])
    files = [p for p in home.rglob("*") if p.is_file() and ".db" in p.name]
    assert files, f"no Prefect database under {home}"
    return any(text.encode() in p.read_bytes() for p in files)


@pytest.fixture
def restore_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIGITFLOW_STORE put back as it was after the test: the CLI, run in this process, sets
    it. (Only that: fixtures the test starts meanwhile, such as the S3 server, set others.)"""
    monkeypatch.setenv("DIGITFLOW_STORE", os.environ.get("DIGITFLOW_STORE", ".digitflow/store"))
