"""`workers` mode: each training is a run of the train-model deployment on the gpu pool."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitflow.storage import LocalStore
from tests.conftest import REPO, STRINGS, clone_store, in_the_foreground
from tests.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    server = PrefectServer(home, home)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(server: PrefectServer) -> subprocess.Popen:
    """The train-model deployment on the gpu pool, and a process worker polling it."""
    from flows.train import train_model_flow

    server.cli("work-pool", "create", "gpu", "--type", "process", "--overwrite")
    with server.client_settings():
        train_model_flow.from_source(
            source=str(REPO), entrypoint="flows/train.py:train_model_flow"
        ).deploy(name="train-model", work_pool_name="gpu", print_next_steps=False)
    return server.start_worker("gpu")


def test_every_training_runs_on_gpu_pool_workers(
    server: PrefectServer, worker: subprocess.Popen, mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    from flows.train import TrainParams, train_flow

    with server.client_settings():
        uri = clone_store(mnist_store[0], tmp_path / "store")
        # A model of each role: the classifiers' trainings all take the same path.
        summary = train_flow(TrainParams(mode="workers", models=["simple_cnn", "line_reader"],
                                         limit=600, epochs=1, strings=STRINGS,
                                         store=uri))  # fmt: skip
    assert worker.poll() is None, "the worker died"
    assert summary.failures == {}
    # The classifier and the line reader, each a run on the gpu pool.
    assert sorted(c.model_name for c in summary.candidates) == ["line_reader", "simple_cnn"]
    store = LocalStore(uri)
    for candidate in summary.candidates:
        assert store.exists(candidate.card_key)
    assert next(c for c in summary.candidates if c.role == "reader").card_key.startswith(
        "models/reader/candidates/"
    )
    runs = server.cli("flow-run", "ls", "--flow-name", "train-model", "--state", "COMPLETED")
    assert runs.count("train-") >= 2


def _train_model_runs(server: PrefectServer, state: str) -> list:
    """The runs of the train-model flow in ``state`` (a state type's name)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with server.client_settings(), get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["train-model"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(state)]))
            ),
        )


@pytest.mark.parametrize(
    ("signum", "group", "status"),
    [
        (signal.SIGTERM, False, -signal.SIGTERM),  # `kill PID`
        (signal.SIGINT, True, 130),  # Ctrl+C: the command's group; the worker is not in it
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_workers_training_stopped_cancels_its_runs_on_the_workers(
    server: PrefectServer,
    worker: subprocess.Popen,
    mnist_store: tuple[str, str],
    tmp_path: Path,
    signum: int,
    group: bool,
    status: int,
) -> None:
    store = clone_store(mnist_store[0], tmp_path / "store")
    # Far more training than the waits below allow: only the cancel can end it in time.
    command = [sys.executable, "-m", "digitflow", "train", "--mode", "workers",
               "--models", "baseline_mlp", "--epochs", "200", "--store", store]  # fmt: skip
    proc = subprocess.Popen(command, env=server.env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=in_the_foreground)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        running: list = []
        while not running:
            assert proc.poll() is None, "the command ended before its worker run started"
            assert time.monotonic() < deadline, "no train-model run running within 300 s"
            running = _train_model_runs(server, "RUNNING")
            time.sleep(1)
        (os.killpg if group else os.kill)(proc.pid, signum)
        # Before, the command went on waiting for the worker run to end.
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == status, stderr[-3000:]
        assert "baseline_mlp: stopped, as the command was; worker run" in stderr
        # The worker ends the run at its next poll; with the whole suite beside it on 2 cores
        # that once took over 120 s.
        deadline = time.monotonic() + 300
        while running[0].id not in {r.id for r in _train_model_runs(server, "CANCELLED")}:
            assert time.monotonic() < deadline, "the worker run was not cancelled in 300 s"
            time.sleep(1)
        assert worker.poll() is None, "the worker died"
        assert not (Path(store) / "models" / "candidates").exists()  # nothing half-written
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
