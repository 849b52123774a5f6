"""Line readers assessed for the gate: a training run's reader candidates and the reader
champion, each reading the same validation strings, as many as the candidates were
measured on (exact strings select; the test strings are reported only), with a gallery of
what each misread."""

from __future__ import annotations

import logging

import numpy as np

from digitflow import reports
from digitflow.assessment import Assessment, HeldoutAssessment, RunAssessment
from digitflow.candidates import Card, RegistryError, run_candidates
from digitflow.evaluation import CandidateEval
from digitflow.fitting import load_images
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.pointer import Champion, current_champion
from digitflow.reader.candidate import (
    StringSet,
    guard_strings,
    read_texts,
    stored_reads,
    test_strings,
    validation_seed,
    validation_strings,
)
from digitflow.reader.infer import score_strings
from digitflow.registry import GateRound
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)


def _read(
    store: ObjectStore, reader: Card | Champion, model: object, part: str, strings: StringSet
) -> list[str]:
    """What ``reader`` reads of ``strings``: as it was stored with it, or read now."""
    stored = stored_reads(store, reader, part, strings)
    if stored is not None:
        return stored
    return read_texts(model, strings)


def assess_reader(
    store: ObjectStore, card: Card | Champion, model: object, validation: StringSet,
    test: StringSet, dataset_version: str, role: str, report_prefix: str,
) -> Assessment:  # fmt: skip
    """One stored reader (``model``, loaded) on the validation and test strings: what it
    read of them when it was stored, or, where that was not kept, what it reads now."""
    read = _read(store, card, model, "validation", validation)
    truth = validation.strings.texts
    scores = score_strings(truth, read)
    test_scores = score_strings(test.strings.texts, _read(store, card, model, "test", test))
    wrong = np.flatnonzero(~scores.correct)
    gallery_key = f"{report_prefix}/misread.png"
    store.write_bytes(gallery_key, reports.misread_strings_png(
        [validation.strings.fields[k].pixels for k in wrong],
        [truth[k] for k in wrong], [read[k] for k in wrong],
    ))  # fmt: skip
    return Assessment(
        id=f"{card.training_run}/{card.model_name}", role=role,
        validation_error=1.0 - scores.exact_rate, validation_log_loss=None,
        validation_ece=None, test_error=1.0 - test_scores.exact_rate, recall=[],
        evaluation=CandidateEval.from_mask(
            card.training_run, card.model_name, scores.correct, dataset_version,
            validation.digest,
        ),
        confusion_key=None, gallery_key=gallery_key,
    )  # fmt: skip


def assess_reader_run(store: ObjectStore, training_run: str) -> RunAssessment:
    """Evaluate a training run's readable reader candidates and the reader champion."""
    champion, etag = current_champion(store, READER)
    gate_round = GateRound.begin(etag)
    listing = run_candidates(store, training_run, READER)
    if not listing.cards:
        raise RegistryError(
            f"training run {training_run!r} has no readable reader candidate in {store.uri}: "
            + "; ".join(u.error for u in listing.unreadable)
        )
    version = sorted({c.dataset_version for c in listing.cards})[0]
    images = load_images(store, version, None, 1)
    seed = validation_seed(store, version)
    # Every reader reads as many strings as the run's candidates were measured on.
    count = max(c.validation.size for c in listing.cards)
    validation = validation_strings(images, seed, count)
    test = test_strings(images, seed, max(c.test.size for c in listing.cards))

    # Each reader is loaded (and its checksum verified) once, for every set it reads.
    readers: list[Card | Champion] = [*listing.cards, *([champion] if champion else [])]
    models = {c.model_key: load_model(store, c.model_key, c.sha256) for c in readers}

    def assess(card: Card | Champion, role: str, name: str) -> Assessment:
        prefix = READER.report(training_run, name)
        model = models[card.model_key]
        return assess_reader(store, card, model, validation, test, version, role, prefix)

    adapted = sorted({c.corrections_version for c in listing.cards if c.corrections_version})
    heldout = None
    if adapted and champion is not None:
        guard = guard_strings(images, seed, count)
        heldout = assess_heldout(store, listing.cards, champion, models, adapted[-1], guard,
                                 version)  # fmt: skip
    return RunAssessment(
        training_run=training_run, gate_round=gate_round,
        candidates=[assess(c, "candidate", c.model_name) for c in listing.cards],
        champion=assess(champion, "champion", "champion") if champion else None,
        unreadable=listing.unreadable, heldout=heldout,
    )  # fmt: skip


def assess_heldout(
    store: ObjectStore, cards: list[Card], champion: Champion, models: dict[str, object],
    corrections_version: str, guard: StringSet, dataset_version: str,
) -> HeldoutAssessment:  # fmt: skip
    """Each candidate and the champion (``models``, loaded, by model key) reading the
    held-out corrections of a version (what each reads exactly, and how likely it finds
    each line's answer), and MNIST's guard strings."""
    from digitflow.corrections.dataset import read_part
    from digitflow.reader.decode import log_likelihoods
    from digitflow.reader.infer import read_inputs

    labelled = read_part(store, corrections_version, "heldout").labelled()

    def on_heldout(card: Card | Champion) -> CandidateEval:
        read = read_inputs(models[card.model_key], [f.pixels for f in labelled.fields])
        correct = score_strings(labelled.texts, [line.text for line in read]).correct
        steps = [line.steps for line in read if line.steps is not None]
        assert len(steps) == len(read)  # every line is read at its own width too
        likely = log_likelihoods(steps, labelled.texts)
        return CandidateEval.from_mask(card.training_run, card.model_name, correct,
                                       corrections_version, corrections_version,
                                       log_likelihoods=likely)  # fmt: skip

    def on_guard(card: Card | Champion) -> CandidateEval:
        read = _read(store, card, models[card.model_key], "guard", guard)
        correct = score_strings(guard.strings.texts, read).correct
        return CandidateEval.from_mask(card.training_run, card.model_name, correct,
                                       dataset_version, guard.digest)  # fmt: skip

    return HeldoutAssessment(
        corrections_version=corrections_version,
        candidates=[on_heldout(c) for c in cards], champion=on_heldout(champion),
        guard_candidates=[on_guard(c) for c in cards], guard_champion=on_guard(champion),
    )  # fmt: skip
