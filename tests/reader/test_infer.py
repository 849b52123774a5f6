"""Reading many inputs: batches bounded in memory, results in input order; string scores."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.reader import field, infer
from digitflow.reader.decode import decode_line
from digitflow.reader.field import STRIDE


def test_batches_keep_similar_widths_together_within_the_limits() -> None:
    widths = np.array([30, 2000, 40, 35, 1900, 1200] + [64] * 600)
    chunks = infer._chunks(widths)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(widths)))
    for chunk in chunks:
        assert len(chunk) <= infer.BATCH
        assert len(chunk) * widths[chunk].max() <= max(infer.BATCH_COLUMNS, widths[chunk].max())


def _cost(widths: np.ndarray, chunks: list[np.ndarray]) -> int:
    """Columns read for these batches (each padded to its widest), plus a pass's cost each."""
    padded = [infer.field.reading_batch([np.zeros((32, int(widths[c].max())))])[0].shape[2]
              for c in chunks]  # fmt: skip
    return sum(len(c) * p + infer.CALL_COLUMNS for c, p in zip(chunks, padded, strict=True))


def test_batches_are_cut_where_padding_and_passes_cost_least() -> None:
    rng = np.random.default_rng(5)
    for n in range(1, 8):
        widths = rng.integers(4, 1200, n)
        chunks = infer._chunks(widths)
        assert sorted(np.concatenate(chunks).tolist()) == list(range(n))
        # Every way of cutting the inputs, sorted by width, into runs: none costs less.
        order = np.argsort(widths, kind="stable")
        cheapest = min(
            _cost(widths, np.split(order, [k for k in range(1, n) if mask >> (k - 1) & 1]))
            for mask in range(2 ** (n - 1))
        )
        assert _cost(widths, chunks) == cheapest
    # The lines of form pages (90-220 columns): padding adds a fifth at most, where one
    # batch of them all would read half as many columns again as the lines hold.
    lines = rng.integers(90, 221, 100)
    padded = sum(len(c) * int(lines[c].max()) for c in infer._chunks(lines))
    assert padded < 1.2 * lines.sum()
    assert len(lines) * lines.max() > 1.3 * lines.sum()


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


def test_the_string_kept_is_the_likeliest_over_all_widths_not_the_most_read() -> None:
    """At 0.8 of its width the line reads 1 and is sure; at 1 and 1.25 it reads 7 and is
    not: over the three widths together, 1 is likelier, though two widths read 7."""

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-4, np.float32)
        probs[:, :, 0] = 1.0  # blanks after the first step
        for k, x in enumerate(batch):
            if (x[0, :, 0] > 0).sum() < 50:  # 60 columns at 0.8: 48; at 1.25: 75
                probs[k, 0, [0, 2, 8]] = 0.05, 0.9, 0.05  # a 1, surely
            else:
                probs[k, 0, [0, 2, 8]] = 0.0001, 0.4, 0.6  # a 7, or a 1
        return np.log(probs)

    inputs = [np.ones((32, 60), np.float32)]
    assert [line.text for line in infer.read_with(run, inputs, widths=(1.0,))] == ["7"]
    assert [line.text for line in infer.read_with(run, inputs, widths=(1.25,))] == ["7"]
    (line,) = infer.read_with(run, inputs, widths=(0.8, 1.0, 1.25))
    assert line.text == "1" and line.runner_up == "7"  # what the other widths read
    (one,) = line.digits
    assert one.confidence == pytest.approx(0.9, abs=0.01)  # as the width that read it
    assert one.x1 == pytest.approx(2.5 * STRIDE * 60 / 48)  # in the input's own columns
    # The reader's probability of "1", the widths as a mixture: (0.9 + 0.4 + 0.4) / 3 (the
    # blanks after it all but sure).
    assert line.confidence == pytest.approx((0.9 + 0.4 + 0.4) / 3, abs=0.015)
    assert infer.read_with(run, [], widths=(0.8, 1.0)) == []


def test_one_width_that_all_but_rules_a_string_out_does_not_outvote_the_others() -> None:
    """Two widths read 7 surely, and give a 1 a little; the third reads 1 surely and gives
    a 7 almost nothing. As a product the 1 would win (0.95 x 0.04 x 0.04 against 0.0001 x
    0.95 x 0.95); as a mixture of the widths the 7 does (1.03 against 1.9)."""

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-6, np.float32)
        probs[:, :, 0] = 1.0
        for k, x in enumerate(batch):
            if (x[0, :, 0] > 0).sum() < 50:  # 0.8 of 60 columns
                probs[k, 0, [0, 2, 8]] = 0.0499, 0.95, 0.0001
            else:
                probs[k, 0, [0, 2, 8]] = 0.01, 0.04, 0.95
        return np.log(probs)

    inputs = [np.ones((32, 60), np.float32)]
    (line,) = infer.read_with(run, inputs, widths=(0.8, 1.0, 1.25), sure=None)
    assert line.text == "7"
    assert line.confidence == pytest.approx((0.0001 + 0.95 + 0.95) / 3, abs=0.01)


def test_a_field_slanted_both_ways_is_read_in_each_and_placed_back_on_its_columns() -> None:
    """Upright, the bar reads as a doubtful 7; slanted either way, surely as a 1: the 1 is
    kept, its place brought back from the slanted input's wider columns."""

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-4, np.float32)
        probs[:, :, 0] = 1.0
        for k, x in enumerate(batch):
            top, bottom = np.argmax(x[1, :, 0] > 0.5), np.argmax(x[-2, :, 0] > 0.5)
            upright = abs(int(top) - int(bottom)) < 4
            probs[k, 3, [0, 2, 8]] = (0.0001, 0.4, 0.6) if upright else (0.05, 0.9, 0.05)
        return np.log(probs)

    bar = np.zeros((32, 60), np.float32)
    bar[:, 12:16] = 1.0
    assert [line.text for line in infer.read_with(run, [bar], (1.0,))] == ["7"]
    (line,) = infer.read_with(run, [bar], (1.0,), shears=infer.FIELD_SHEARS)
    assert line.text == "1"
    (one,) = line.digits
    assert one.confidence == pytest.approx(0.9, abs=0.01)
    margin = field.shear_margin(infer.FIELD_SHEARS[0])
    assert margin > 0 and field.shear(bar, infer.FIELD_SHEARS[0]).shape == (32, 60 + 2 * margin)
    centre = 3.5 * STRIDE - margin  # of the step that read it, on the bar's own columns
    assert (one.x0, one.x1) == (max(0.0, centre - 2 * STRIDE), centre + 2 * STRIDE)


def test_a_line_read_surely_at_its_own_width_is_not_read_at_the_others() -> None:
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-4, np.float32)
        probs[:, :, 0] = 1.0
        for k, x in enumerate(batch):
            width = int((x[0, :, 0] > 0).sum())  # the input's own columns, not the padding
            seen.append(width)
            sure = 0.95 if width == 64 else 0.6  # the first input is sure of its 3
            probs[k, 0, [0, 4]] = 1 - sure, sure
        return np.log(probs)

    inputs = [np.ones((32, 64), np.float32), np.ones((32, 96), np.float32)]
    lines = infer.read_with(run, inputs, widths=(0.8, 1.0, 1.25), sure=0.9)
    assert [line.text for line in lines] == ["3", "3"]
    # Each line's probability of its 3 (the blanks after it all but sure): the first's at
    # its own width, the second's over its three widths as a mixture.
    assert lines[0].confidence == pytest.approx(0.95, abs=0.02)
    assert lines[1].confidence == pytest.approx(0.6, abs=0.02)
    assert lines[0].runner_up is lines[1].runner_up is None  # no width read otherwise
    assert sorted(seen) == [64, 77, 96, 120]  # the doubtful one at 0.8, 1 and 1.25
    seen.clear()
    infer.read_with(run, inputs, widths=(0.8, 1.0, 1.25), sure=None)
    assert sorted(seen) == [51, 64, 77, 80, 96, 120]


def test_a_line_is_read_again_by_its_strings_doubt_not_its_least_sure_step() -> None:
    """Both lines read 3. The first is torn at its second step only between the 3 going on
    and the blank after it, which read the same string: read once. The second is torn
    there between the blank and a 5, so its string is in doubt: read at every width."""
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-6, np.float32)
        probs[:, :, 0] = 1.0
        for k, x in enumerate(batch):
            width = int((x[0, :, 0] > 0).sum())
            seen.append(width)
            probs[k, 0, [0, 4]] = 0.01, 0.99
            probs[k, 1, [0, 4 if width == 64 else 6]] = 0.5, 0.5
        return np.log(probs)

    inputs = [np.ones((32, 64), np.float32), np.ones((32, 96), np.float32)]
    lines = infer.read_with(run, inputs, widths=(0.8, 1.0, 1.25), sure=infer.SURE)
    assert [line.text for line in lines] == ["3", "3"]
    assert lines[0].confidence == pytest.approx(0.99, abs=0.01)
    assert lines[1].confidence == pytest.approx(0.5, abs=0.01)
    assert sorted(seen) == [64, 77, 96, 120]  # the doubtful one at 0.8, 1 and 1.25


def test_a_step_unsure_only_of_where_a_digit_ends_leaves_the_line_sure() -> None:
    """The 3 is sure at the first step; at the second the reader is torn between the 3
    going on and the blank after it, which read the same string. The line is as sure as
    its string is likely (0.99), not as its least sure step (0.5); a step torn between the
    blank and another digit does make it doubtful."""

    def reader(second: int):
        def run(batch: np.ndarray) -> np.ndarray:
            probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-6, np.float32)
            probs[:, :, 0] = 1.0
            probs[:, 0, [0, 4]] = 0.01, 0.99
            probs[:, 1, [0, second]] = 0.5, 0.5
            return np.log(probs)

        return run

    inputs = [np.ones((32, 64), np.float32)]
    (line,) = infer.read_with(reader(4), inputs, widths=(1.0,))
    assert line.text == "3"
    assert line.confidence == pytest.approx(0.99, abs=0.01)
    (line,) = infer.read_with(reader(6), inputs, widths=(1.0,))
    assert line.text == "3"
    assert line.confidence == pytest.approx(0.5, abs=0.01)


def test_a_lone_digit_gets_each_digits_probability_over_the_widths() -> None:
    """Each input's probability of being each digit alone, the widths as a mixture: the
    first reads 1 (0.7) or 7 (0.3) at every width; the second 1 at 0.8 of its width (0.9)
    but 7 at the others (0.9); the third 1 twice, which is no one digit, yet 1 alone is
    likelier than any other digit alone."""

    def run(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-4, np.float32)
        probs[:, :, 0] = 1.0  # blanks after the first step
        for k, x in enumerate(batch):
            width = int((x[0, :, 0] > 0).sum())
            kind = round(float(x[0, 0, 0]) * 10)  # which input: 1, 2 or 3
            if kind == 1:
                probs[k, 0, [0, 2, 8]] = 1e-4, 0.7, 0.3
            elif kind == 2:
                probs[k, 0, [0, 2, 8]] = (1e-4, 0.9, 0.1) if width < 60 else (1e-4, 0.1, 0.9)
            else:
                probs[k, 0, [0, 2]] = 1e-4, 1.0
                probs[k, 2, [0, 2]] = 1e-4, 1.0
        return np.log(probs)

    inputs = [np.full((32, 60), kind / 10, np.float32) for kind in (1, 2, 3)]
    logs = infer.one_digit_logs(run, inputs, widths=(0.8, 1.0, 1.25))
    assert logs.shape == (3, 10)
    assert np.exp(logs).sum(axis=1) == pytest.approx(np.ones(3))
    first, second, third = np.exp(logs)
    assert (first[1], first[7]) == (pytest.approx(0.7, abs=0.01), pytest.approx(0.3, abs=0.01))
    mixed = (0.9 + 0.1 + 0.1) / 3  # 1 at 0.8, 1 and 1.25 of its width
    assert (second[1], second[7]) == (pytest.approx(mixed, abs=0.01),
                                      pytest.approx(1 - mixed, abs=0.01))  # fmt: skip
    assert third.argmax() == 1
    assert infer.one_digit_logs(run, []).shape == (0, 10)
    # Given the steps at their own width (a reading kept them), only the others are read.
    seen: list[int] = []

    def counted(batch: np.ndarray) -> np.ndarray:
        seen.extend(int((x[0, :, 0] > 0).sum()) for x in batch)
        return run(batch)

    own = infer._probabilities(run, inputs)
    again = infer.one_digit_logs(counted, inputs, widths=(0.8, 1.0, 1.25), own=own)
    assert np.allclose(again, logs, atol=1e-6)
    assert 60 not in seen and sorted(set(seen)) == [48, 75]


def test_a_digits_columns_give_each_digit_its_probability_over_every_step() -> None:
    """Two steps in the digit's columns: the first leans to 1 (0.5 against 0.45 for 7),
    the second to the blank, and a 7 going on (0.45). The digit was read as 1, at its
    first step; over both steps 7 alone is likelier (0.45 against 0.28, every alignment).
    The next digit's steps, outside the columns, do not count."""
    steps = np.full((4, 11), 1e-4, np.float32)
    steps[0, [0, 2, 8]] = 0.05, 0.5, 0.45
    steps[1, [0, 2, 8]] = 0.5, 0.05, 0.45
    steps[2:, [0, 4]] = 0.01, 0.99  # a 3 beside it
    assert decode_line(steps, 4 * STRIDE).text == "13"
    (logs,) = np.exp(infer.span_logs([steps], [(0.0, 2 * STRIDE)]))
    one = 0.5 * 0.05 + 0.5 * 0.5 + 0.05 * 0.05  # 1 1, 1 blank, blank 1
    seven = 0.45 * 0.45 + 0.45 * 0.5 + 0.05 * 0.45
    assert logs.argmax() == 7 and logs.sum() == pytest.approx(1.0)
    assert logs[7] / logs[1] == pytest.approx(seven / one, rel=0.01)
    assert logs[3] < 0.01  # the 3's steps lie outside
    # A span of less than a step still has the step it starts in.
    (narrow,) = np.exp(infer.span_logs([steps], [(2 * STRIDE + 1, 2 * STRIDE + 2)]))
    assert narrow.argmax() == 3
    assert infer.span_logs([], []).shape == (0, 10)
