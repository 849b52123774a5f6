"""The line reader as a second role in one registry: trained by the train flow beside the
classifiers, gated on its own strings, promoted, listed, shown and rolled back on its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitflow import registry
from digitflow.cli import app
from digitflow.errors import TrainingError
from digitflow.fitting import load_images
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.promotion import GateConfig, ReaderGateConfig
from digitflow.reader.assessment import assess_reader_run
from digitflow.reader.candidate import READS, stored_reads, validation_seed, validation_strings
from digitflow.recipes import WARM_AVERAGE
from digitflow.storage import LocalStore
from flows.promote import PromoteParams, promote_flow
from flows.train import TrainParams, train_flow
from tests.conftest import STRINGS, clone_store

pytestmark = pytest.mark.slow
LENIENT = GateConfig(max_error=0.9)


@pytest.fixture(scope="module")
def trained(
    mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """A store with one run of a classifier and a (barely trained) line reader."""
    uri = clone_store(mnist_store[0], tmp_path_factory.mktemp("role") / "store")
    summary = train_flow(
        TrainParams(
            models=["baseline_mlp", "line_reader"], epochs=1, limit=600, strings=STRINGS, store=uri
        )
    )
    assert summary.failures == {}
    return uri, summary.training_run


def _cli(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*args, "--json"])
    last = result.stdout.strip().splitlines()[-1] if result.exit_code == 0 else "{}"
    return result.exit_code, json.loads(last)


def test_the_reader_trains_beside_the_classifier_into_its_own_layout(
    trained: tuple[str, str],
) -> None:
    uri, run = trained
    store = LocalStore(uri)
    card = registry.read_card(store, run, "line_reader", READER)
    assert card.role == "reader"
    assert card.model_key.startswith("models/reader/candidates/")
    assert store.exists(card.model_key)
    assert card.validation.size == card.test.size == STRINGS  # strings, not digits
    assert 0.0 <= card.scores["validation_digit_accuracy"] <= 1.0
    assert not store.exists(f"models/candidates/{run}/line_reader/card.json")
    assert registry.read_card(store, run, "baseline_mlp").role == "classifier"


def test_each_role_has_its_own_gate_champion_history_and_rollback(
    trained: tuple[str, str], tmp_path: Path
) -> None:
    uri = clone_store(trained[0], tmp_path / "store")
    run = trained[1]
    store = LocalStore(uri)
    first = promote_flow(PromoteParams(training_run=run, store=uri, gate=LENIENT))
    assert first.classifier is not None and first.classifier.promoted
    # A reader trained for a few steps reads (almost) no string exactly: the floor refuses it.
    assert first.reader is not None and not first.reader.promoted
    assert "floor" in first.reader.reason
    assert registry.current_champion(store, READER)[0] is None
    assert [r.action for r in registry.history(store, READER)] == ["refuse"]

    lenient = ReaderGateConfig(max_error=1.0)
    second = promote_flow(PromoteParams(training_run=run, store=uri, gate=LENIENT,
                                        reader_gate=lenient))  # fmt: skip
    assert second.reader is not None and second.reader.promoted
    assert second.classifier is not None and not second.classifier.promoted  # already champion
    reader, _ = registry.current_champion(store, READER)
    classifier, _ = registry.current_champion(store)
    assert reader is not None and reader.id == f"{run}/line_reader"
    assert classifier is not None and classifier.id == f"{run}/baseline_mlp"

    code, listing = _cli("models", "list", "--store", uri)
    assert code == 0
    assert listing["champion"] == classifier.id and listing["reader_champion"] == reader.id
    roles = {row["model"]: row["role"] for row in listing["candidates"]}
    assert roles == {classifier.id: "classifier", reader.id: "reader"}

    code, shown = _cli("models", "show", reader.id, "--store", uri)
    assert code == 0 and shown["role"] == "reader" and shown["champion"] is True
    assert [r["action"] for r in shown["history"]] == ["refuse", "promote"]

    code, _ = _cli("models", "rollback", "--role", "reader", "--store", uri)
    assert code == 1  # the first reader champion has none before it
    assert registry.current_champion(store, READER)[0] is not None
    assert registry.current_champion(store)[0] == classifier


def test_promote_can_gate_one_role_alone(trained: tuple[str, str], tmp_path: Path) -> None:
    uri = clone_store(trained[0], tmp_path / "store")
    result = promote_flow(
        PromoteParams(training_run=trained[1], store=uri, gate=LENIENT, role="classifier")
    )
    assert result.classifier is not None and result.reader is None
    assert registry.history(LocalStore(uri), READER) == []


def test_the_gate_takes_what_a_reader_read_when_it_was_stored_and_nothing_else(
    trained: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate needs every validation string's reading. It takes the one stored beside
    the reader when it was trained, for that model file, those strings and this way of
    reading lines only, and reads the strings again where that record is missing, damaged,
    another model's or read otherwise."""
    uri = clone_store(trained[0], tmp_path / "store")
    run = trained[1]
    store = LocalStore(uri)
    card = registry.read_card(store, run, "line_reader", READER)
    key = READER.candidate(run, "line_reader", READS)
    stored = json.loads(store.read_bytes(key))
    assert stored["sha256"] == card.sha256
    assert len(stored["validation"]["read"]) == len(stored["test"]["read"]) == STRINGS

    def assessed() -> tuple[float, float, str]:
        (reader,) = assess_reader_run(store, run).candidates
        return reader.validation_error, reader.test_error, reader.evaluation.correct_bits

    kept = assessed()
    assert kept[:2] == (card.validation.error, card.test.error)
    store.delete(key)
    assert assessed() == kept  # read again: the same readings

    images = load_images(store, card.dataset_version, None, 1)
    strings = validation_strings(images, validation_seed(store, card.dataset_version), STRINGS)
    right = {**stored, "validation": {**stored["validation"], "read": strings.strings.texts}}
    store.write_bytes(key, json.dumps(right).encode())
    assert stored_reads(store, card, "validation", strings) == strings.strings.texts
    assert assessed()[0] == 0.0  # what was stored is what the gate takes

    for damaged in (
        {**right, "sha256": "0" * 64},  # another model file's
        {**right, "validation": {**right["validation"], "digest": "0" * 16}},  # other strings
        {**right, "reading": "padding read as paper"},  # read otherwise
        {k: v for k, v in right.items() if k != "reading"},  # recorded before there was a way
        {**right, "validation": {**right["validation"], "read": strings.strings.texts[:-1]}},
        {**right, "validation": {**right["validation"], "read": ["1a"] * STRINGS}},
        {"sha256": card.sha256},
    ):
        store.write_bytes(key, json.dumps(damaged).encode())
        assert stored_reads(store, card, "validation", strings) is None, damaged.keys()
    # A record without the part asked for is read again, and is no damage to warn of.
    caplog.clear()
    store.write_bytes(key, json.dumps(right).encode())
    assert stored_reads(store, card, "guard", strings) is None
    assert "ignoring" not in caplog.text
    store.write_bytes(key, b'{"sha256": "')
    assert stored_reads(store, card, "validation", strings) is None
    assert f"ignoring {key}" in caplog.text


def test_a_warm_start_goes_on_from_the_reader_champion_on_new_strings(
    trained: tuple[str, str], tmp_path: Path
) -> None:
    uri = clone_store(trained[0], tmp_path / "store")
    store = LocalStore(uri)
    with pytest.raises(TrainingError, match="warm start needs a reader champion"):
        train_flow(TrainParams(models=["line_reader"], epochs=1, limit=600, store=uri,
                               strings=STRINGS, warm_start=True))  # fmt: skip

    promote_flow(PromoteParams(training_run=trained[1], store=uri, role="reader",
                               reader_gate=ReaderGateConfig(max_error=1.0)))  # fmt: skip
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None
    # A rate too small to move a weight: the weights trained are the champion's own.
    summary = train_flow(TrainParams(models=["line_reader"], epochs=1, limit=600, store=uri,
                                     strings=STRINGS, warm_start=True,
                                     learning_rate=1e-12))  # fmt: skip
    assert summary.failures == {}
    card = registry.read_card(store, summary.training_run, "line_reader", READER)
    assert card.params["started_from"] == champion.id
    assert card.params["first_epoch"] == 1  # the champion learnt from epoch 0's strings
    assert card.params["weight_average"] == WARM_AVERAGE  # it ends on its weights' average
    cold = registry.read_card(store, trained[1], "line_reader", READER)
    assert cold.params["weight_average"] is None
    went_on = load_model(store, card.model_key, card.sha256)
    started = load_model(store, champion.model_key, champion.sha256)
    for a, b in zip(went_on.trainable_weights, started.trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_a_reader_from_new_weights_goes_on_after_its_epochs_on_new_strings(
    trained: tuple[str, str], tmp_path: Path
) -> None:
    """Its restart runs after its epochs, counted with them, and ends on the average of its
    weights; a warm start from it goes on from the strings after the restart's."""
    uri = clone_store(trained[0], tmp_path / "store")
    store = LocalStore(uri)
    summary = train_flow(TrainParams(models=["line_reader"], epochs=2, restart_share=0.5,
                                     limit=600, strings=STRINGS, store=uri))  # fmt: skip
    assert summary.failures == {}
    card = registry.read_card(store, summary.training_run, "line_reader", READER)
    assert card.params["restart_epochs"] == 1
    assert card.params["weight_average"] == WARM_AVERAGE
    assert card.history_key is not None
    history = json.loads(store.read_bytes(card.history_key))
    assert [(e["epoch"], e["epochs"]) for e in history] == [(1, 3), (2, 3), (3, 3)]
    promote_flow(PromoteParams(training_run=summary.training_run, store=uri, role="reader",
                               reader_gate=ReaderGateConfig(max_error=1.0)))  # fmt: skip
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None and champion.training_run == summary.training_run
    went_on = train_flow(TrainParams(models=["line_reader"], epochs=2, restart_share=0.5,
                                     limit=600, strings=STRINGS, store=uri, warm_start=True,
                                     learning_rate=1e-12))  # fmt: skip
    warm = registry.read_card(store, went_on.training_run, "line_reader", READER)
    assert warm.params["first_epoch"] == 3  # the strings of epochs 0-2 were learnt from
    assert warm.params["restart_epochs"] == 0  # a warm start has no restart
