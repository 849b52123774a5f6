"""Training close to a teacher: CTC on every row, plus the weighted divergence from the
teacher's reading on the rows it teaches, and nothing more."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.models import line_reader
from digitflow.reader.training import Teacher, _distilling

ROWS, TAUGHT, WIDTH = 6, 4, 64


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 32, WIDTH, 1)).astype(np.float32)
    labels = np.zeros((ROWS, 12), np.int32)
    for k in range(ROWS):
        labels[k, : k + 1] = rng.integers(1, 11, k + 1)
    return x, labels


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def losses(reader: object, teacher: object, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the distilling loss, and plain CTC of the reader."""
    import keras

    x, labels = batch()
    pair, loss = _distilling(reader, Teacher(teacher, TAUGHT, weight))
    both = pair.predict(x, verbose=0)
    own = reader.predict(x, verbose=0)  # type: ignore[attr-defined]
    ctc = keras.ops.convert_to_numpy(keras.losses.ctc(labels, own))
    return keras.ops.convert_to_numpy(loss(labels, both)), ctc


def test_a_teacher_that_reads_as_the_reader_adds_nothing() -> None:
    import keras

    reader = line_reader.build()
    twin = keras.models.clone_model(reader)
    twin.set_weights(reader.get_weights())
    total, ctc = losses(reader, twin, weight=5.0)
    np.testing.assert_allclose(total, ctc, rtol=1e-5, atol=1e-5)


def test_another_teacher_adds_its_weighted_divergence_on_the_taught_rows_only() -> None:
    import keras

    keras.utils.set_random_seed(1)
    reader, teacher = line_reader.build(), line_reader.build()
    x, _ = batch()
    own, taught = reader.predict(x, verbose=0), teacher.predict(x, verbose=0)
    target = log_softmax(taught[:TAUGHT])
    kl = (np.exp(target) * (target - log_softmax(own[:TAUGHT]))).sum(axis=(1, 2))
    assert (kl > 0).all()
    total, ctc = losses(reader, teacher, weight=0.5)
    np.testing.assert_allclose(total[:TAUGHT] - ctc[:TAUGHT], 0.5 * kl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(total[TAUGHT:], ctc[TAUGHT:], rtol=1e-6)
    assert not teacher.trainable  # the teacher does not learn


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_the_distilling_model_trains_the_reader_in_place(weight: float) -> None:
    import keras

    keras.utils.set_random_seed(2)
    reader, teacher = line_reader.build(), line_reader.build()
    before = [w.copy() for w in teacher.get_weights()]
    start = [w.copy() for w in reader.get_weights()]
    pair, loss = _distilling(reader, Teacher(teacher, TAUGHT, weight))
    pair.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    x, labels = batch()
    pair.fit(x, labels, epochs=1, verbose=0)
    moved = [not np.array_equal(a, b) for a, b in zip(start, reader.get_weights(), strict=True)]
    assert any(moved)
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights(), strict=True))
