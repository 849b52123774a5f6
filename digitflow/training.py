"""Fit one model from a dataset version and write it to the store as a candidate.

A candidate's files (``model.keras``, ``history.json``, then ``card.json`` last) lie
where its role's layout puts them (``digitflow.layout``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from digitflow import models, recipes, runtime
from digitflow.candidates import Card, CardDraft, Split, refuse_taken
from digitflow.fitting import (
    INPUT,
    Data,
    EpochMetrics,
    divergence_guard,
    load_data,
    save_model,
)
from digitflow.layout import CLASSIFIER, Layout, layout_of
from digitflow.recipes import TrainConfig
from digitflow.storage import ObjectStore, open_store

logger = logging.getLogger(__name__)


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
