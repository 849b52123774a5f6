"""Fit one model from a dataset version and write it to the store as a candidate.

A candidate's files (``model.keras``, ``history.json``, then ``card.json`` last) lie
where its role's layout puts them (``digitflow.layout``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from digitflow import models, recipes, runtime
from digitflow.candidates import Card, CardDraft, Split, refuse_taken, save_candidate
from digitflow.data import dataset
from digitflow.errors import TrainingError
from digitflow.exported import export
from digitflow.layout import CLASSIFIER, MODEL, ONNX, Layout, layout_of
from digitflow.recipes import TrainConfig
from digitflow.storage import ObjectStore, open_store

logger = logging.getLogger(__name__)

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


def _fit(
    config: TrainConfig, data: Data, on_epoch: Callable[[EpochMetrics], None]
) -> tuple[Any, dict[str, list[float]]]:
    """The fitted model (without the augmentation wrapper, if any) and its history.

    The clean epochs, if any, follow on the model alone at the schedule's final rate. An
    augmented run leaves the weights, and the batch-norm statistics above all, tuned to
    warped digits; a few epochs on the digits as they are settle both for the real ones.
    """
    from digitflow import augment

    model = models.build(config.model)
    trainee = augment.with_augmentation(model, config.seed) if config.augment else model
    rate = recipes.learning_rate(config, len(data.y_train))
    history = _fit_epochs(trainee, rate, config, data, on_epoch, 0, config.epochs)
    if config.clean_epochs:
        rate = recipes.final_rate(config)
        clean = _fit_epochs(model, rate, config, data, on_epoch, config.epochs, config.total_epochs)
        history = {k: v + clean[k] for k, v in history.items()}
    return model, history


def _fit_epochs(
    model: Any,
    rate: Any,
    config: TrainConfig,
    data: Data,
    on_epoch: Callable[[EpochMetrics], None],
    first: int,
    last: int,
) -> dict[str, list[float]]:
    """Fit epochs [first, last) of the run with a fresh Adam at ``rate``; their history."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        data.x_train,
        keras.utils.to_categorical(data.y_train, 10),
        validation_data=(data.x_val, keras.utils.to_categorical(data.y_val, 10)),
        initial_epoch=first,
        epochs=last,
        batch_size=config.batch_size,
        verbose=0,
        callbacks=[
            divergence_guard(config.model, config.learning_rate),
            _epoch_reporter(config, on_epoch),
        ],
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def error_rate(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Share of examples whose most probable class is not the label."""
    probs = model.predict(x, batch_size=2000, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) != y))


def measure(model: Any, data: Data) -> tuple[Split, Split]:
    """A fitted model's error on the validation slice and on the test split."""
    return (
        Split(size=len(data.y_val), error=error_rate(model, data.x_val, data.y_val)),
        Split(size=len(data.y_test), error=error_rate(model, data.x_test, data.y_test)),
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


def train_model(
    store: ObjectStore,
    dataset_version: str,
    config: TrainConfig,
    training_run: str,
    on_epoch: Callable[[EpochMetrics], None] = lambda m: None,
    layout: Layout = CLASSIFIER,
) -> Card:
    """Fit ``config.model`` on a dataset version and store it as a candidate of its role."""
    refuse_taken(store, training_run, config.model, layout_of(models.role_of(config.model)))
    if models.role_of(config.model) == "reader":
        from digitflow.reader.candidate import train_reader

        return train_reader(store, dataset_version, config, training_run, on_epoch)
    start = time.perf_counter()
    device = runtime.configure(config.threads)
    runtime.set_seeds(config.seed)
    data = load_data(store, dataset_version, config.limit, config.seed)
    logger.info("training %s on %d examples (%s)", config.model, len(data.y_train), device)
    model, history = _fit(config, data, on_epoch)
    history_key = layout.candidate(training_run, config.model, "history.json")
    store.write_bytes(history_key, json.dumps(history).encode())
    validation, test = measure(model, data)
    draft = CardDraft(
        training_run=training_run, model_name=config.model, dataset_version=dataset_version,
        validation=validation, test=test, parameter_count=int(model.count_params()),
        wall_s=time.perf_counter() - start, device=device, input=INPUT,
        params=config.model_dump(), train_examples=len(data.y_train), history_key=history_key,
    )  # fmt: skip
    return save_model(store, model, draft, layout)


def train_from_uri(
    store_uri: str,
    dataset_version: str,
    config: TrainConfig,
    training_run: str,
    on_event: Callable[[EpochMetrics], None],
) -> Card:
    """``train_model`` on the store a URI names (picklable arguments, for a child process)."""
    return train_model(open_store(store_uri), dataset_version, config, training_run, on_event)


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


def _epoch_reporter(config: TrainConfig, on_epoch: Callable[[EpochMetrics], None]) -> Any:
    """A Keras callback that turns each epoch's logs into EpochMetrics for ``on_epoch``."""
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            on_epoch(
                EpochMetrics(
                    model=config.model,
                    epoch=epoch + 1,
                    epochs=config.total_epochs,
                    loss=float(logs.get("loss", np.nan)),
                    accuracy=float(logs.get("accuracy", np.nan)),
                    val_loss=float(logs.get("val_loss", np.nan)),
                    val_accuracy=float(logs.get("val_accuracy", np.nan)),
                    seconds=time.perf_counter() - self.started,
                )
            )

    return EpochReporter()
