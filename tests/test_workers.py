"""`workers` mode: each training is a run of the train-model deployment on the gpu pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digitflow.storage import LocalStore
from tests.conftest import REPO, STRINGS, clone_store
from tests.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    server = PrefectServer(home, home)
    server.start()
    yield server
    server.stop()


def test_every_training_runs_on_gpu_pool_workers(
    server: PrefectServer, mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    from flows.train import TrainParams, train_flow, train_model_flow

    server.cli("work-pool", "create", "gpu", "--type", "process", "--overwrite")
    with server.client_settings():
        train_model_flow.from_source(
            source=str(REPO), entrypoint="flows/train.py:train_model_flow"
        ).deploy(name="train-model", work_pool_name="gpu", print_next_steps=False)
        worker = server.start_worker("gpu")
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
