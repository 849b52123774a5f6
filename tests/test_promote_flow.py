"""Evaluation, the gate and the registry through the real Prefect engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from digitflow import registry
from digitflow.data.ingest import ingest
from digitflow.errors import ModelError, NotFoundError, StoreError
from digitflow.promotion import GateConfig
from digitflow.storage import LocalStore, ObjectStore, open_store
from digitflow.training import TrainConfig, train_model
from flows.promote import PromoteParams, promote_flow
from flows.retrain import RetrainParams, retrain_flow
from tests.conftest import clone_store
from tests.idx_files import NAMES, idx_bytes, write_gz
from tests.prefect_api import latest_artifact
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
LENIENT = GateConfig(max_error=0.5)
# Retrains pick the better of two small models: two are as many as picking needs, and the
# flow's parallel training of all of them is tests/test_train_flow.py's.
TWO = ["baseline_mlp", "simple_cnn"]


@pytest.fixture(scope="module")
def trained(mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two training runs: 'weak' (the three, little data), 'strong' (one CNN)."""
    uri = clone_store(mnist_store[0], tmp_path_factory.mktemp("trained") / "store")
    store = LocalStore(uri)
    for name in ("baseline_mlp", "simple_cnn", "larger_cnn"):
        train_model(store, mnist_store[1], TrainConfig(model=name, epochs=1, limit=1500), "weak")
    config = TrainConfig(model="simple_cnn", epochs=2, limit=8000)
    train_model(store, mnist_store[1], config, "strong")
    return uri


def _copy(uri: str, target: ObjectStore) -> None:
    source = LocalStore(uri)
    for key in source.list():
        target.write_bytes(key, source.read_bytes(key))


def _actions(store: ObjectStore) -> list[str]:
    return [h.key.rsplit("-", 1)[-1].removesuffix(".json") for h in registry.history(store)]


def test_retrain_promotes_refuses_identical_and_rolls_back(mnist_dir: Path, store_uri: str) -> None:
    uri = store_uri
    store = open_store(uri)

    def retrain(**train: object) -> object:
        params = RetrainParams.model_validate({
            "ingest": {"source": str(mnist_dir)}, "store": uri,
            "train": {"models": TWO, "limit": 1500, "epochs": 1, **train},
            "promote": {"gate": LENIENT},
        })  # fmt: skip
        return retrain_flow(params)

    first = retrain()
    assert first.promotion.classifier.promoted
    best = min(first.training.candidates, key=lambda c: c.val_error)
    assert first.promotion.classifier.champion == f"{best.training_run}/{best.model_name}"

    second = retrain()
    assert not second.promotion.classifier.promoted
    assert "champion" in second.promotion.classifier.reason
    assert registry.current_champion(store)[0].id == first.promotion.classifier.champion

    third = retrain(models=["simple_cnn"], limit=8000, epochs=2)
    assert third.promotion.classifier.promoted, third.promotion.classifier.reason
    assert third.promotion.classifier.decision.rows[0].p_value < 0.05
    assert _actions(store) == ["promote", "refuse", "promote"]

    restored = registry.rollback(store)
    assert restored.id == first.promotion.classifier.champion
    assert registry.current_champion(store)[0].id == first.promotion.classifier.champion
    assert _actions(store)[-1] == "rollback"

    table = json.loads(latest_artifact("promotion-candidates").data)
    assert {r["role"] for r in table} == {"candidate", "champion"}
    markdown = latest_artifact("promotion-decision").data
    assert "data:image/png;base64," in markdown and "McNemar" in markdown


def test_floor_not_met_is_a_refusal_and_an_unknown_run_an_error(
    trained: str, tmp_path: Path
) -> None:
    uri = clone_store(trained, tmp_path / "store")
    strict = promote_flow(
        PromoteParams(training_run="weak", store=uri, gate=GateConfig(max_error=0.001))
    )
    assert not strict.classifier.promoted and "floor" in strict.classifier.reason
    with pytest.raises(NotFoundError, match="training run 'no-such-run' has no candidates"):
        promote_flow(PromoteParams(training_run="no-such-run", store=uri))
    assert registry.current_champion(LocalStore(uri))[0] is None
    assert _actions(LocalStore(uri)) == ["refuse"]


def test_corrupted_candidate_is_refused_and_champion_kept(trained: str, tmp_path: Path) -> None:
    uri = clone_store(trained, tmp_path / "store")
    store = LocalStore(uri)
    first = promote_flow(PromoteParams(training_run="weak", store=uri, gate=LENIENT))
    assert first.classifier.promoted and not first.classifier.unannounced  # its own, not before
    key = "models/candidates/strong/simple_cnn/model.keras"
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(key, bytes(data))
    with pytest.raises(ModelError, match=r"strong/simple_cnn/model\.keras: sha256"):
        promote_flow(PromoteParams(training_run="strong", store=uri, gate=LENIENT))
    assert registry.current_champion(store)[0].id == first.classifier.champion


def test_champion_from_another_dataset_version_is_reevaluated_on_the_new_slice(
    trained: str, mnist_dir: Path, tmp_path: Path
) -> None:
    import gzip

    uri = clone_store(trained, tmp_path / "store")
    store = LocalStore(uri)
    promote_flow(PromoteParams(training_run="weak", store=uri, gate=LENIENT))
    # Version 2: the first 20,000 training images only (a custom dataset).
    custom = tmp_path / "custom"
    custom.mkdir()
    for (split, kind), name in NAMES.items():
        raw = gzip.decompress((mnist_dir / name).read_bytes())
        array = np.frombuffer(raw, np.uint8, offset=16 if kind == "images" else 8)
        array = array.reshape(-1, 28, 28) if kind == "images" else array
        write_gz(custom / name, idx_bytes(array[:20_000] if split == "train" else array))
    v2 = ingest(store, str(custom), accept_custom=True).version
    train_model(store, v2, TrainConfig(model="simple_cnn", epochs=2, limit=8000), "on-v2")
    result = promote_flow(PromoteParams(training_run="on-v2", store=uri, gate=LENIENT))
    rows = {r.id: r for r in result.classifier.decision.rows}
    assert "on-v2/simple_cnn" in rows
    table = json.loads(latest_artifact("promotion-candidates").data)
    assert [r["role"] for r in table] == ["candidate", "champion"]
    champion_history = registry.history(store)[-1].decision
    assert champion_history is not None and champion_history["champion"] is not None


def test_s3_outage_during_promotion(
    trained: str, s3_bucket: str, s3_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = TcpProxy(int(s3_server.endpoint.rsplit(":", 1)[1]))  # type: ignore[attr-defined]
    proxy.up()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    uri = f"s3://{s3_bucket}/through-proxy"
    store = open_store(uri)
    _copy(trained, store)
    first = promote_flow(PromoteParams(training_run="weak", store=uri, gate=LENIENT))
    history_before = registry.history(store)

    proxy.down()  # the endpoint is gone for the whole attempt: the run fails clearly
    with pytest.raises(StoreError, match=r"cannot (read|list|stat|write) s3://"):
        promote_flow(PromoteParams(training_run="strong", store=uri, gate=LENIENT))
    proxy.up()
    assert registry.current_champion(store)[0].id == first.classifier.champion
    assert registry.history(store) == history_before

    proxy.down()  # back within the task's retries: the run succeeds
    threading.Timer(3.0, proxy.up).start()
    second = promote_flow(PromoteParams(training_run="strong", store=uri, gate=LENIENT))
    assert second.classifier.promoted
    assert registry.current_champion(store)[0].id == "strong/simple_cnn"
    proxy.down()


def test_a_role_gated_alone_takes_the_newest_run_that_trained_that_role(
    reader_store: str, mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    uri = clone_store(reader_store, tmp_path / "store")
    config = TrainConfig(model="baseline_mlp", epochs=1, limit=500)
    train_model(LocalStore(uri), mnist_store[1], config, "z-classifier-only")  # newer by name
    result = promote_flow(PromoteParams(store=uri, role="reader"))
    assert result.training_run == "reader-run" and result.reader is not None
    assert result.classifier is None
    assert promote_flow(PromoteParams(store=uri, gate=LENIENT)).training_run == "z-classifier-only"
    # A run named otherwise than by its time is as new as its candidates: "a-named-run"
    # sorts first by name, and is trained last.
    train_model(LocalStore(uri), mnist_store[1], config, "a-named-run")
    assert promote_flow(PromoteParams(store=uri, gate=LENIENT)).training_run == "a-named-run"
