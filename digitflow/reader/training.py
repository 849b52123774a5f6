"""Fit the line reader on generated strings, with CTC loss.

Batches are made while the reader trains (threads beside the backend's own), each a
function of (seed, epoch, index), so no string set has to fit in memory and a run can be
repeated. After each epoch the reader reads the fixed validation strings; that exact-
string accuracy is what the epoch reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from digitflow.reader.infer import read_inputs, score_strings
from digitflow.reader.strings import LabelledFields
from digitflow.training import divergence_guard

logger = logging.getLogger(__name__)

# Gradients are clipped to this norm: CTC's early gradients can be large.
CLIP_NORM = 5.0


class Batches(Protocol):
    """Training batches a function of (epoch, index): generated strings, or mixed ones."""

    @property
    def max_width(self) -> int:
        """No batch is wider than this (input columns)."""
        ...

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (n, 32, W, 1) and CTC labels (n, 12) of batch ``index`` of ``epoch``."""
        ...


@dataclass(frozen=True)
class ReaderEpoch:
    """One epoch of the reader's training."""

    epoch: int
    epochs: int
    loss: float
    val_exact: float
    val_digit_accuracy: float
    seconds: float


def _keras_batches(source: Batches, steps: int, workers: int) -> Any:
    """``source`` as a Keras PyDataset of ``steps`` batches per epoch, made in threads."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
            self.epoch = 0

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            x, y = source.batch(self.epoch, index)
            if index == 0:
                # Keras takes the input spec from the first two batches: make their widths
                # differ (no other batch is wider than the source's widest), so that it
                # leaves the width free. Every epoch: with one batch an epoch, Keras sees
                # only this one, and each epoch's must then be as wide.
                wider = source.max_width + 16 - x.shape[2]
                x = np.pad(x, ((0, 0), (0, 0), (0, wider), (0, 0)))
            return x, y

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Batches()


def evaluate(model: Any, strings: LabelledFields) -> tuple[float, float, np.ndarray]:
    """(exact-string rate, digit accuracy, correct per string) of a reader on a set."""
    read = read_inputs(model, [f.pixels for f in strings.fields])
    scores = score_strings(strings.texts, [line.text for line in read])
    return scores.exact_rate, scores.digit_accuracy, scores.correct


def fit_reader(
    model: Any,
    source: Batches,
    validation: LabelledFields,
    *,
    epochs: int,
    steps_per_epoch: int,
    rate: Any,
    learning_rate: float,
    on_epoch: Callable[[ReaderEpoch], None] = lambda e: None,
    workers: int = 1,
) -> list[ReaderEpoch]:
    """Train ``model`` in place at learning rate ``rate`` (a number or a Keras schedule
    peaking at ``learning_rate``); the per-epoch record. A loss that is not finite stops it
    with TrainingError."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(rate, clipnorm=CLIP_NORM), loss=keras.losses.CTC()
    )
    history: list[ReaderEpoch] = []

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            exact, digit_accuracy, _ = evaluate(self.model, validation)
            record = ReaderEpoch(
                epoch=epoch + 1, epochs=epochs, loss=float((logs or {}).get("loss", np.nan)),
                val_exact=exact, val_digit_accuracy=digit_accuracy,
                seconds=time.perf_counter() - self.started,
            )  # fmt: skip
            history.append(record)
            on_epoch(record)

    model.fit(
        _keras_batches(source, steps_per_epoch, workers),
        epochs=epochs,
        verbose=0,
        callbacks=[divergence_guard(model.name, learning_rate), Report()],
    )
    return history
