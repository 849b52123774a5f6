"""What fitting any model shares: a dataset version's examples, an epoch's numbers, a guard
against a loss that diverges, and the fitted model saved as a candidate with its card."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from digitflow.candidates import Card, CardDraft, save_candidate
from digitflow.data import dataset
from digitflow.errors import TrainingError
from digitflow.exported import export
from digitflow.layout import MODEL, ONNX, Layout
from digitflow.storage import ObjectStore

# What every classifier candidate takes, as its card says.
INPUT = "float32 (28, 28, 1) in [0, 1], ink bright on black"


class EpochMetrics(BaseModel):
    """One epoch's numbers, streamed while training."""

    model: str
    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass(frozen=True)
class Images:
    """A dataset version's digits as stored (uint8 (n, 28, 28), ink bright): the examples
    to fit on, the validation slice, and the test split."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    val_indices: np.ndarray


@dataclass(frozen=True)
class Data:
    """Training inputs in the model's format: float32 (n, 28, 28, 1) in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    val_indices: np.ndarray


def to_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) images → float32 (n, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def load_images(store: ObjectStore, version: str, limit: int | None, seed: int) -> Images:
    """The splits of a version; validation is the manifest's stratified slice, and
    ``limit`` draws that many of the other training examples (seeded)."""
    manifest = dataset.read_manifest(store, version)
    train = dataset.read_split(store, version, "train")
    test = dataset.read_split(store, version, "test")
    validation = manifest["validation"]
    val_idx = dataset.validation_indices(train.labels, validation["size"], validation["seed"])
    fit_idx = np.setdiff1d(np.arange(len(train)), val_idx, assume_unique=True)
    if limit is not None and limit < len(fit_idx):
        fit_idx = np.sort(np.random.default_rng(seed).choice(fit_idx, limit, replace=False))
    return Images(
        train=train.images[fit_idx], train_labels=train.labels[fit_idx].astype(np.int64),
        val=train.images[val_idx], val_labels=train.labels[val_idx].astype(np.int64),
        test=test.images, test_labels=test.labels.astype(np.int64), val_indices=val_idx,
    )  # fmt: skip


def load_data(store: ObjectStore, version: str, limit: int | None, seed: int) -> Data:
    """Train/validation/test arrays; validation is the manifest's stratified slice."""
    images = load_images(store, version, limit, seed)
    return Data(
        x_train=to_inputs(images.train),
        y_train=images.train_labels,
        x_val=to_inputs(images.val),
        y_val=images.val_labels,
        x_test=to_inputs(images.test),
        y_test=images.test_labels,
        val_indices=images.val_indices,
    )


def save_model(
    store: ObjectStore, model: Any, draft: CardDraft, layout: Layout,
    refine: Callable[[Path], dict[str, float]] | None = None,
    exporter: Callable[[Any, Path], bool] = export,
) -> Card:  # fmt: skip
    """Save a fitted Keras model (and its ONNX export, by ``exporter``) as a candidate
    with its card.

    ``refine`` may rewrite the export in place before it is stored (the line reader's in
    8 bits); what it returns joins the card's scores."""
    with tempfile.TemporaryDirectory(prefix="digitflow-candidate-") as tmp:
        path, onnx = Path(tmp) / MODEL, Path(tmp) / ONNX
        model.save(path)
        exported = exporter(model, onnx)
        if exported and refine is not None:
            draft = draft.model_copy(update={"scores": {**draft.scores, **refine(onnx)}})
        return save_candidate(store, path, draft, layout, onnx if exported else None)


def divergence_guard(model_name: str, learning_rate: float) -> Any:
    """A Keras callback that stops a run whose loss is no longer finite, with TrainingError."""
    import keras

    class DivergenceGuard(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if not np.isfinite(loss):
                raise TrainingError(
                    f"{model_name} diverged: loss is {loss} in epoch {self.epoch + 1}, "
                    f"batch {batch + 1}; lower the learning rate ({learning_rate:g})"
                )

    return DivergenceGuard()
