"""Corrections fixtures: a real scoring batch of generated fields, read by a briefly
trained line reader, with its review items and the digits each field really holds."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitflow.reader import synth
from digitflow.samples import load_mnist
from digitflow.storage import open_store
from tests.conftest import clone_store

FIELDS = 16
# Names anyone may give a scan: a spreadsheet would run the first two as formulas.
NAMES = {0: "=1+2 field_00.jpg", 1: "@field_01.jpg", 2: "'field_02.jpg"}


@dataclass(frozen=True)
class ReviewBatch:
    """A scored batch: its store (a local directory), id, input folder and truth."""

    store: str
    batch_id: str
    folder: Path
    truth: dict[str, str]  # file -> the digits it holds


def write_fields(mnist_dir: Path, folder: Path, count: int, seed: int) -> dict[str, str]:
    """``count`` generated check-amount fields as JPEG files; the digits of each."""
    folder.mkdir(parents=True, exist_ok=True)
    mnist = load_mnist(mnist_dir)
    digits = synth.Digits(mnist.images, mnist.labels)
    rng = np.random.default_rng(seed)
    truth = {}
    for k in range(count):
        grey, text = synth.make_field(digits, digits.by_label(), rng)
        name = NAMES.get(k, f"field_{k:02d}.jpg")
        cv2.imwrite(str(folder / name), grey)
        truth[name] = text
    return truth


@pytest.fixture(scope="session")
def scored_fields(
    reader_store: str, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> ReviewBatch:
    """Sixteen generated fields scored once with the line reader (read-only: clone it)."""
    from flows.score import ScoreParams, score_flow

    root = tmp_path_factory.mktemp("review")
    store = clone_store(reader_store, root / "store")
    # The models only: batches other tests scored in the shared store stay out of this one.
    shutil.rmtree(Path(store) / "scoring", ignore_errors=True)
    truth = write_fields(mnist_dir, root / "fields", FIELDS, seed=11)
    summary = score_flow(ScoreParams(input=str(root / "fields"), store=store, batch_id="fields"))
    assert summary.files == summary.scored == FIELDS
    # Every line the reader doubts has its crop, a line read as nothing too (no digit row).
    crops = open_store(store).list("scoring/fields/review/")
    assert summary.review_crops == len(crops) > 0 and summary.needs_review <= summary.digits
    return ReviewBatch(store, "fields", root / "fields", truth)


@pytest.fixture
def review_batch(scored_fields: ReviewBatch, tmp_path: Path) -> ReviewBatch:
    """The scored fields in a store of this test's own."""
    store = tmp_path / "store"
    shutil.copytree(scored_fields.store, store)
    return ReviewBatch(str(store), scored_fields.batch_id, scored_fields.folder,
                       scored_fields.truth)  # fmt: skip
