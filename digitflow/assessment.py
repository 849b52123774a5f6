"""Candidates and the champion evaluated on the same validation examples, with reports.

Validation decides; the test set is measured and reported, never selected on. A champion
trained on another dataset version is re-evaluated on this version's validation slice,
so the comparison is always paired.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import BaseModel

from digitflow import reports
from digitflow.candidates import Card, RegistryError, Unreadable, run_candidates
from digitflow.evaluation import CandidateEval, evaluate
from digitflow.fitting import Data, load_data
from digitflow.layout import CLASSIFIER, Layout
from digitflow.model_files import load_model
from digitflow.pointer import Champion, current_champion
from digitflow.registry import GateRound
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)


class Assessment(BaseModel):
    """One model's numbers on validation (selects) and test (reported only)."""

    id: str
    role: str  # "candidate" or "champion"
    validation_error: float
    validation_log_loss: float | None  # a classifier's; None for a line reader
    validation_ece: float | None
    test_error: float
    recall: list[float]  # per digit (a classifier's); empty for a line reader
    evaluation: CandidateEval
    confusion_key: str | None  # a classifier's confusion matrix
    gallery_key: str  # what it got wrong


def _probabilities(model: object, x: np.ndarray) -> np.ndarray:
    import keras

    out = [
        keras.ops.convert_to_numpy(model(x[i : i + 2000], training=False))  # type: ignore[operator]
        for i in range(0, len(x), 2000)
    ]
    return np.concatenate(out)


def _write_reports(
    store: ObjectStore,
    report_prefix: str,
    data: Data,
    probs: np.ndarray,
    confusion: list[list[int]],
) -> tuple[str, str]:
    wrong = np.flatnonzero(probs.argmax(axis=1) != data.y_val)
    images = np.rint(data.x_val[wrong, :, :, 0] * 255).astype(np.uint8)
    confusion_key = f"{report_prefix}/confusion.png"
    gallery_key = f"{report_prefix}/misclassified.png"
    store.write_bytes(confusion_key, reports.confusion_matrix_png(np.array(confusion)))
    store.write_bytes(
        gallery_key,
        reports.misclassified_gallery_png(
            images, data.y_val[wrong], probs[wrong].argmax(axis=1), probs[wrong].max(axis=1)
        ),
    )
    return confusion_key, gallery_key


def assess_model(
    store: ObjectStore,
    card: Card | Champion,
    data: Data,
    dataset_version: str,
    role: str,
    report_prefix: str,
) -> Assessment:
    """Evaluate one stored model (checksum-verified) on validation and test."""
    model = load_model(store, card.model_key, card.sha256)
    val_probs = _probabilities(model, data.x_val)
    test_probs = _probabilities(model, data.x_test)
    val = evaluate(val_probs, data.y_val)
    test = evaluate(test_probs, data.y_test)
    correct = val_probs.argmax(axis=1) == data.y_val
    confusion_key, gallery_key = _write_reports(
        store, report_prefix, data, val_probs, val.confusion
    )
    return Assessment(
        id=f"{card.training_run}/{card.model_name}",
        role=role,
        validation_error=val.error_rate,
        validation_log_loss=val.log_loss,
        validation_ece=val.ece,
        test_error=test.error_rate,
        recall=val.recall,
        evaluation=CandidateEval.from_correct(
            card.training_run, card.model_name, correct, dataset_version, data.val_indices
        ),
        confusion_key=confusion_key,
        gallery_key=gallery_key,
    )


class HeldoutAssessment(BaseModel):
    """Readers tuned on corrections, and the champion, on the corrections held out."""

    corrections_version: str
    candidates: list[CandidateEval]
    champion: CandidateEval
    # The same readers on MNIST's guard strings (``digitflow.reader.candidate.guard_strings``)
    guard_candidates: list[CandidateEval]
    guard_champion: CandidateEval


class RunAssessment(BaseModel):
    """A training run's candidates and the champion, evaluated on the same examples."""

    training_run: str
    gate_round: GateRound
    candidates: list[Assessment]
    champion: Assessment | None
    unreadable: list[Unreadable]
    heldout: HeldoutAssessment | None = None  # a run of readers tuned on corrections


def assess_run(store: ObjectStore, training_run: str, layout: Layout = CLASSIFIER) -> RunAssessment:
    """Evaluate a training run's readable candidates and the champion on the same examples.

    NotFoundError if the run has no candidates; RegistryError if none can be read.
    """
    champion, etag = current_champion(store, layout)
    gate_round = GateRound.begin(etag)
    listing = run_candidates(store, training_run, layout)
    cards = listing.cards
    if not cards:
        raise RegistryError(
            f"training run {training_run!r} has no readable candidate in {store.uri}: "
            + "; ".join(u.error for u in listing.unreadable)
        )
    versions = {c.dataset_version for c in cards}
    version = sorted(versions)[0]
    if len(versions) > 1:
        logger.warning("candidates span dataset versions %s; evaluating on %s", versions, version)
    data = load_data(store, version, limit=None, seed=1)

    def assess(card: Card | Champion, role: str, name: str) -> Assessment:
        return assess_model(store, card, data, version, role, layout.report(training_run, name))

    return RunAssessment(
        training_run=training_run,
        gate_round=gate_round,
        candidates=[assess(c, "candidate", c.model_name) for c in cards],
        champion=assess(champion, "champion", "champion") if champion else None,
        unreadable=listing.unreadable,
    )
