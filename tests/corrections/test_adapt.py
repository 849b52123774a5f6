"""The reader champion tuned on corrections: a candidate that names what it learned from,
gated on the held-out corrections and on MNIST's guard strings together."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from digitflow.candidates import read_card
from digitflow.console import print_retrain
from digitflow.corrections import dataset, exchange
from digitflow.errors import TrainingError
from digitflow.fitting import load_images
from digitflow.history import history
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.pointer import current_champion
from digitflow.promotion import ReaderGateConfig
from digitflow.reader.assessment import assess_reader_run
from digitflow.reader.candidate import (
    guard_strings,
    read_texts,
    stored_reads,
    validation_seed,
    validation_strings,
)
from digitflow.reader.infer import score_strings
from digitflow.recipes import ADAPT_DISTIL
from digitflow.scoring import commits
from digitflow.storage import open_store
from flows.adapt import AdaptParams, adapt_flow
from tests.conftest import STRINGS
from tests.corrections.conftest import ReviewBatch

pytestmark = pytest.mark.slow


def test_without_corrections_nothing_is_tuned(review_batch: ReviewBatch) -> None:
    summary = adapt_flow(AdaptParams(store=review_batch.store, when_ready=True))
    assert summary.corrections is None and summary.training_run is None
    assert not open_store(review_batch.store).list("datasets/corrections/")


def test_the_reader_tuned_on_corrections_is_gated_on_them_and_on_mnist(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    ledger = commits.read_ledger(store, review_batch.batch_id).to_pylist()
    path = tmp_path / "truth.csv"
    with path.open("w", newline="") as f:
        rows = [[r["file"], ln["page"], ln["line"], review_batch.truth[r["file"]]]
                for r in ledger for ln in r["lines"]]  # fmt: skip
        csv.writer(f).writerows([exchange.COLUMNS, *rows])
    exchange.import_csv(store, review_batch.batch_id, path, by="test")
    before, _ = current_champion(store, READER)
    assert before is not None
    # Any improvement on the held-out corrections counts here: they are only a handful.
    gate = ReaderGateConfig(min_margin=0.0, alpha=1.0, mnist_margin=0.05)
    summary = adapt_flow(AdaptParams(store=review_batch.store, epochs=1, steps=20,
                                     strings=STRINGS, reader_gate=gate))  # fmt: skip
    corrections, promotion = summary.corrections, summary.promotion
    assert corrections is not None and promotion is not None and summary.training_run
    assert corrections.train + corrections.heldout == len(rows)
    card = read_card(store, summary.training_run, "line_reader", READER)
    assert (card.corrections_version, card.adapted_from) == (corrections.version, before.id)
    assert card.train_examples == corrections.train
    assert card.params["distil"] == ADAPT_DISTIL  # held to the champion's reading
    decision = promotion.decision
    assert decision.corrections_version == corrections.version
    assert set(decision.mnist_errors) == {before.id, f"{summary.training_run}/line_reader"}
    assert "held-out corrections" in decision.reason
    # The MNIST side is the guard strings, which no gate selects on, read by each reader
    # (the candidate's reading of them stored with it).
    images = load_images(store, card.dataset_version, None, 1)
    seed = validation_seed(store, card.dataset_version)
    guard = guard_strings(images, seed, STRINGS)
    validation = validation_strings(images, seed, STRINGS)
    assert guard.digest != validation.digest
    stored = stored_reads(store, card, "guard", guard)
    assert stored is not None
    held = assess_reader_run(store, summary.training_run).heldout
    assert held is not None
    # On the held-out corrections the gate weighs how likely each reader finds each answer.
    assert decision.test == "Wilcoxon"
    for on_held in (*held.candidates, held.champion):
        assert on_held.n == corrections.heldout and on_held.log_likelihoods is not None
        assert len(on_held.log_likelihoods) == on_held.n
        assert all(x <= 0.0 for x in on_held.log_likelihoods)
    champion_model = load_model(store, before.model_key, before.sha256)
    for reader, on_guard, read in (
        (card, held.guard_candidates[0], stored),
        (before, held.guard_champion, read_texts(champion_model, guard)),
    ):
        assert on_guard.validation_digest == guard.digest
        correct = score_strings(guard.strings.texts, read).correct
        np.testing.assert_array_equal(on_guard.correct, correct)
        assert decision.mnist_errors[reader.id] == pytest.approx(on_guard.error)
    after, _ = current_champion(store, READER)
    assert after is not None
    assert after.id == (card.id if promotion.promoted else before.id)
    [newest] = history(store, READER)[-1:]
    assert newest.decision is not None
    assert newest.decision["corrections_version"] == corrections.version


def test_retrain_adapt_without_corrections_stops_with_why_and_trains_nothing(
    review_batch: ReviewBatch,
) -> None:
    from typer.testing import CliRunner

    from digitflow.cli import app

    store = open_store(review_batch.store)
    runs = set(store.list(READER.candidates + "/"))
    result = CliRunner().invoke(app, ["retrain", "--adapt", "--store", review_batch.store])
    assert result.exit_code == 1, result.output  # asked for, as too few corrections are
    assert "no corrections in the store: nothing to tune the line reader on" in result.output
    assert set(store.list(READER.candidates + "/")) == runs


def _import(review_batch: ReviewBatch, tmp_path: Path, keep: Callable[[tuple], bool]) -> int:
    """The truth of the batch's lines that ``keep`` (file, page, line) imported; how many."""
    store = open_store(review_batch.store)
    ledger = commits.read_ledger(store, review_batch.batch_id).to_pylist()
    places = [(r["file"], ln["page"], ln["line"]) for r in ledger for ln in r["lines"]]
    rows = [[*place, review_batch.truth[place[0]]] for place in places if keep(place)]
    path = tmp_path / "some.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([exchange.COLUMNS, *rows])
    exchange.import_csv(store, review_batch.batch_id, path)
    return len(rows)


def test_too_few_corrections_stop_an_asked_for_tuning_and_the_schedule_passes_them_over(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    assert _import(review_batch, tmp_path, lambda place: place[0].startswith("field_0")) < 10
    runs = set(store.list(READER.candidates + "/"))
    with pytest.raises(TrainingError, match="lines to learn from; adapting needs at least 10"):
        adapt_flow(AdaptParams(store=review_batch.store))
    # The scheduled retraining goes on: the reason in its log and its summary.
    summary = adapt_flow(AdaptParams(store=review_batch.store, when_ready=True))
    assert summary.corrections is not None and summary.training_run is None
    assert summary.skipped is not None and "adapting needs at least 10" in summary.skipped
    console = Console(record=True, width=400)
    print_retrain(console, {"adaptation": summary.model_dump(mode="json")})
    assert "No reader was tuned on them: corrections" in console.export_text()
    assert set(store.list(READER.candidates + "/")) == runs  # nothing was tuned


def test_corrections_with_none_held_out_are_not_tuned_on(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    # A tuned reader could not be gated: its gate reads the held-out lines.
    learnt = _import(review_batch, tmp_path, lambda place: dataset.part_of(*place) == "train")
    assert learnt >= 10
    runs = set(open_store(review_batch.store).list(READER.candidates + "/"))
    with pytest.raises(TrainingError, match="hold no held-out line"):
        adapt_flow(AdaptParams(store=review_batch.store))
    assert set(open_store(review_batch.store).list(READER.candidates + "/")) == runs
