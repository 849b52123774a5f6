"""Reading many inputs: batches bounded in memory, results in input order; string scores."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.reader import infer


def test_batches_keep_similar_widths_together_within_the_limits() -> None:
    widths = np.array([30, 2000, 40, 35, 1900, 1200] + [64] * 600)
    chunks = infer._chunks(widths)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(widths)))
    for chunk in chunks:
        assert len(chunk) <= infer.BATCH
        assert len(chunk) * widths[chunk].max() <= max(infer.BATCH_COLUMNS, widths[chunk].max())


def test_lines_come_back_in_input_order() -> None:
    import keras

    class Brightest(keras.layers.Layer):
        """One step whose logits name the digit 10 x the input's brightest pixel."""

        def call(self, x):  # type: ignore[no-untyped-def]
            digit = keras.ops.cast(keras.ops.round(keras.ops.max(x, axis=(1, 2, 3)) * 10), "int32")
            return keras.ops.expand_dims(keras.ops.one_hot(digit + 1, 11) * 20.0, 1)

    model = keras.Sequential([keras.Input((32, None, 1)), Brightest()])
    digits = [3, 0, 7, 5, 9]
    widths = [300, 20, 150, 20, 900]  # batched by width, so not in input order
    inputs = [np.full((32, w), d / 10, np.float32) for d, w in zip(digits, widths, strict=True)]
    assert [line.text for line in infer.read_inputs(model, inputs)] == [str(d) for d in digits]


@pytest.mark.parametrize(
    ("truth", "read", "exact", "accuracy"),
    [(["123", "45"], ["123", "45"], 1.0, 1.0), (["123", "45"], ["13", "456"], 0.0, 0.6),
     (["1"], [""], 0.0, 0.0)],
)  # fmt: skip
def test_string_scores(truth: list[str], read: list[str], exact: float, accuracy: float) -> None:
    scores = infer.score_strings(truth, read)
    assert scores.exact_rate == exact
    assert scores.digit_accuracy == pytest.approx(accuracy)
    assert scores.correct.tolist() == [t == r for t, r in zip(truth, read, strict=True)]
