"""Read many fields at once: batched by width, one forward pass per batch."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from digitflow.reader import field
from digitflow.reader.decode import ReadLine, decode_batch
from digitflow.scoring.truth import align

# Inputs of about one width go through the reader together: at most this many, and at
# most this many input columns in all (the batch's memory).
BATCH = 256
BATCH_COLUMNS = 256 * 256


def _chunks(widths: np.ndarray) -> list[np.ndarray]:
    """Indices of inputs in batches of similar width, each within the batch limits."""
    order = np.argsort(widths, kind="stable")
    chunks, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and stop - start < BATCH:
            if (stop - start + 1) * widths[order[stop]] > BATCH_COLUMNS:
                break
            stop += 1
        chunks.append(order[start:stop])
        start = stop
    return chunks


_FORWARD: weakref.WeakKeyDictionary[Any, Callable[[np.ndarray], Any]] = weakref.WeakKeyDictionary()
_FORWARD_LOCK = threading.Lock()


def forward(model: Any) -> Callable[[np.ndarray], Any]:
    """The reader's forward pass for batches of any size and width, compiled once per model.

    On TensorFlow, one graph for every shape (twice the speed of calling the model op by
    op, and no retracing as widths change); on another backend, the model's own call.
    """
    import keras

    with _FORWARD_LOCK:
        if model not in _FORWARD:
            # Through a weak reference, so that the cache does not keep the model alive.
            ref = weakref.ref(model)

            def call(x: Any) -> Any:
                return ref()(x, training=False)  # type: ignore[misc]

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                spec = tf.TensorSpec((None, field.HEIGHT, None, 1), tf.float32)
                _FORWARD[model] = tf.function(call, input_signature=[spec])
            else:
                _FORWARD[model] = call
        return _FORWARD[model]


def read_inputs(model: Any, inputs: Sequence[np.ndarray]) -> list[ReadLine]:
    """Read (32, w) reader inputs with a loaded Keras reader model, in input order."""
    import keras

    run = forward(model)
    return read_with(lambda x: keras.ops.convert_to_numpy(run(x)), inputs)


def read_with(
    run: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]
) -> list[ReadLine]:
    """Read (32, w) reader inputs with a reader's forward pass (batch to logits), in input
    order."""
    lines: list[ReadLine | None] = [None] * len(inputs)
    for chunk in _chunks(np.array([x.shape[1] for x in inputs], np.int64)):
        batch, widths = field.pad_batch([inputs[k] for k in chunk])
        logits = run(batch)
        for k, line in zip(chunk, decode_batch(logits, widths), strict=True):
            lines[k] = line
    return [line for line in lines if line is not None]


@dataclass(frozen=True)
class StringScores:
    """How well strings were read: exactly, and digit by digit (1 - edit distance)."""

    strings: int
    exact: int
    digits: int
    digit_errors: int
    correct: np.ndarray  # bool per string: read exactly

    @property
    def exact_rate(self) -> float:
        """Share of strings read exactly."""
        return self.exact / self.strings if self.strings else 0.0

    @property
    def digit_accuracy(self) -> float:
        """1 - edit distance over the truth's digits, over all strings."""
        return 1.0 - self.digit_errors / self.digits if self.digits else 0.0


def score_strings(truth: Sequence[str], read: Sequence[str]) -> StringScores:
    """Exact-string and digit accuracy of ``read`` against ``truth``, string by string."""
    correct = np.array([t == r for t, r in zip(truth, read, strict=True)], bool)
    errors = 0
    for t, r in zip(truth, read, strict=True):
        matches, inserted = align(t, r)
        errors += len(t) - matches + inserted
    digits = sum(len(t) for t in truth)
    return StringScores(len(truth), int(correct.sum()), digits, errors, correct)
