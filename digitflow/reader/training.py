"""Fit the line reader on generated strings, with CTC loss.

Each batch is a function of (seed, epoch, index), so a run can be repeated, and no more
than an epoch's strings are ever held. An epoch's batches are written together, in
processes, one per core, when its first batch is asked for (Keras reads a batch or two
ahead, so during the last steps of the epoch before), not one by one beside each training
step, whose threads need the cores. Keras is given one endless dataset for the whole fit,
so that it never stops to make a new iterator (``benchmarks/reader_steps.py``). After
each epoch the reader reads the fixed validation strings; that exact-string accuracy is
what the epoch reports.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Protocol

import numpy as np

from digitflow import lifeline
from digitflow.fitting import divergence_guard
from digitflow.reader.infer import read_inputs, score_strings
from digitflow.reader.strings import GROUP, LabelledFields

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


_SOURCE: Batches | None = None  # in a writer process: the batches it writes


def _adopt(source: Batches) -> None:
    """A writer process's start: keep its source, and end when its parent has ended (a
    killed training leaves no writers behind: they hold the write end of their own queue,
    so they would wait for work forever)."""
    global _SOURCE
    _SOURCE = source
    lifeline.follow_parent()


def _write(epoch: int, indices: range) -> list[tuple[np.ndarray, np.ndarray]]:
    assert _SOURCE is not None
    return [_SOURCE.batch(epoch, index) for index in indices]


class EpochWriter:
    """Writes an epoch's batches of ``source`` at once: in ``processes`` processes (in
    this one if 1, or if this one may not start any), a group of batches to each in turn."""

    def __init__(self, source: Batches, steps: int, processes: int) -> None:
        self.source = source
        self.steps = steps
        self.pool: ProcessPoolExecutor | None = None
        if processes > 1 and steps > GROUP and not mp.current_process().daemon:
            self.pool = ProcessPoolExecutor(
                processes, mp_context=mp.get_context("spawn"), initializer=_adopt,
                initargs=(source,),
            )  # fmt: skip

    def epoch(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Batches 0 to ``steps - 1`` of ``epoch``."""
        if self.pool is None:
            return [self.source.batch(epoch, index) for index in range(self.steps)]
        parts = [range(s, min(s + GROUP, self.steps)) for s in range(0, self.steps, GROUP)]
        return [b for part in self.pool.map(_write, repeat(epoch), parts) for b in part]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _keras_batches(writer: EpochWriter, epochs: int) -> Any:
    """An ``EpochWriter``'s batches for ``epochs`` epochs as one endless Keras PyDataset:
    batch ``k`` is batch ``k % steps`` of epoch ``k // steps``, each epoch written when its
    first batch is asked for.

    One dataset for the whole fit (``steps_per_epoch`` given to ``fit``), so that Keras
    makes one iterator over it. With a dataset of an epoch's length, Keras made a new one
    at each epoch's end, and about every other epoch then waited 5-26 s with no core busy
    before its first step (``benchmarks/reader_steps.py``); that new iterator also fetched
    its first batch before the epoch was counted as ended, so that each epoch began with
    the last one's first batch.
    """
    import keras

    last = epochs * writer.steps - 1

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.written: tuple[int, list] = (-1, [])

        @property
        def num_batches(self) -> None:
            return None  # endless: Keras takes the steps of an epoch from ``fit``

        def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
            # Keras reads a batch or two ahead of its last step: those repeat the last
            # batch, and no epoch is written that will not be trained on.
            epoch, index = divmod(min(k, last), writer.steps)
            if self.written[0] != epoch:
                self.written = (-1, [])  # the last epoch's go before the next are written
                self.written = (epoch, writer.epoch(epoch))
            x, y = self.written[1][index]
            if k == 0:
                # Keras takes the input spec from the first two batches: make their widths
                # differ (no other batch is wider than the source's widest), so that it
                # leaves the width free.
                wider = writer.source.max_width + 16 - x.shape[2]
                x = np.pad(x, ((0, 0), (0, 0), (0, wider), (0, 0)))
            return x, y

    return Batches()


def evaluate(model: Any, strings: LabelledFields) -> tuple[float, float, np.ndarray]:
    """(exact-string rate, digit accuracy, correct per string) of a reader on a set."""
    read = read_inputs(model, [f.pixels for f in strings.fields])
    scores = score_strings(strings.texts, [line.text for line in read])
    return scores.exact_rate, scores.digit_accuracy, scores.correct


@dataclass(frozen=True)
class Teacher:
    """A reader to stay close to: on the first ``rows`` of each batch, the trained reader
    pays ``weight`` times its divergence from the teacher's reading, frame by frame (the
    KL divergence of their distributions over blank and digits, summed over frames)."""

    model: Any
    rows: int
    weight: float


def _distilling(model: Any, teacher: Teacher) -> tuple[Any, Any]:
    """A model that gives the reader's logits and the (frozen) teacher's side by side, and
    its loss: CTC on the reader's, plus the weighted divergence on the teacher's rows."""
    import keras
    from keras import ops

    teacher.model.trainable = False
    # Its own name: the teacher is most often the same model as the reader, loaded again.
    taught = keras.Model(teacher.model.inputs[0], teacher.model.outputs[0], name="teacher")
    classes = model.output_shape[-1]
    inputs = keras.Input(shape=model.input_shape[1:], name="line")
    both = keras.layers.Concatenate(axis=-1)([model(inputs), taught(inputs)])
    pair = keras.Model(inputs, both, name=f"{model.name}_distilling")

    def loss(y_true: Any, y_pred: Any) -> Any:
        own, theirs = y_pred[..., :classes], y_pred[..., classes:]
        ctc = keras.losses.ctc(y_true, own)
        rows = teacher.rows
        target = ops.log_softmax(theirs[:rows], axis=-1)
        kl = ops.sum(ops.exp(target) * (target - ops.log_softmax(own[:rows], axis=-1)), (1, 2))
        pad = ops.zeros_like(ctc[rows:])
        return ctc + teacher.weight * ops.concatenate([kl, pad], axis=0)

    return pair, loss


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
    processes: int | None = None,
    teacher: Teacher | None = None,
    average: float | None = None,
    before: int = 0,
    total: int | None = None,
) -> list[ReaderEpoch]:
    """Train ``model`` in place at learning rate ``rate`` (a number or a Keras schedule
    peaking at ``learning_rate``), its batches written by ``processes`` processes (default:
    one per core), close to ``teacher`` if one is given; the per-epoch record. A loss that
    is not finite stops it with TrainingError. With ``average`` (a momentum), the model
    ends on the exponential moving average of its weights after each step (from the
    first), not on the last step's; the per-epoch record measures the steps' own weights.
    Its epochs are counted after ``before`` run earlier, of ``total`` in all (default: its
    own), where a training runs more than one fit.
    """
    import keras

    trained, loss = (model, keras.losses.CTC()) if teacher is None else _distilling(model, teacher)
    optimizer = keras.optimizers.Adam(
        rate, clipnorm=CLIP_NORM, use_ema=average is not None, ema_momentum=average or 0.99
    )
    trained.compile(optimizer=optimizer, loss=loss)
    history: list[ReaderEpoch] = []

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            exact, digit_accuracy, _ = evaluate(model, validation)
            record = ReaderEpoch(
                epoch=before + epoch + 1, epochs=total or epochs,
                loss=float((logs or {}).get("loss", np.nan)),
                val_exact=exact, val_digit_accuracy=digit_accuracy,
                seconds=time.perf_counter() - self.started,
            )  # fmt: skip
            history.append(record)
            on_epoch(record)

    writer = EpochWriter(source, steps_per_epoch, processes or os.cpu_count() or 1)
    try:
        trained.fit(
            _keras_batches(writer, epochs),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,  # each batch is drawn already
            verbose=0,
            callbacks=[divergence_guard(model.name, learning_rate), Report()],
        )
    finally:
        writer.close()
    return history
