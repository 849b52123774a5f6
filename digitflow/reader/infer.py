"""Read many fields at once: batched by width, one forward pass per batch."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from digitflow.reader import field
from digitflow.reader.decode import (
    ReadDigit,
    ReadLine,
    decode_line,
    log_likelihoods,
    softmax,
    steps_of,
)
from digitflow.scoring.truth import align

# Inputs of about one width go through the reader together: at most this many, and at
# most this many input columns in all (the batch's memory).
BATCH = 256
BATCH_COLUMNS = 256 * 256
# What one forward pass costs besides its columns, in columns (ONNX Runtime on 2 cores:
# about 4 ms a pass, 8.5 µs a column of a batch's padded width).
CALL_COLUMNS = 512
# Each input is read at these widths (shares of its own), and the string most likely over
# all of them is kept. Hands write wider and narrower than the strings the reader learnt
# from, and where one width's reading stumbles (a dash taken for a 1, two digits for one)
# the others seldom stumble the same way.
WIDTHS = (0.8, 1.0, 1.25)
# A line whose string the reader finds at least this likely at its own width is kept as
# read there, and only the others are read at the other widths too. Judged by the least
# sure step instead, four lines in five were read again (most often for a step torn
# between a digit going on and the blank after it, which doubts nothing of the string); by
# the string, about two in five of the form lines, with as many strings read exactly and
# as many misread ones sent to review.
SURE = 0.97
# A field (an image that is one line: a check amount, a box) is also read at its own
# width slanted both ways by this slope (columns a row): hands slant more, and both ways,
# than the strings the reader learnt from. The check amounts read 70.4 % → 71.9 % exactly
# (benchmarks/strings.py; docs/record/reading.md). Lines found on a page are not:
# slanted, the generated form pages read one line more of 238, at two thirds of the speed.
FIELD_SHEARS = (0.35, -0.35)


def _chunks(widths: np.ndarray) -> list[np.ndarray]:
    """Indices of inputs in batches of similar width, each within the batch limits.

    Every input of a batch is padded to its widest (``field.reading_width``), so the
    batches are cut where that costs least in all: the padded columns read, plus
    ``CALL_COLUMNS`` a pass. One batch of lines 90 to 220 columns wide would read about
    1.4 times the columns the lines hold.
    """
    order = np.argsort(widths, kind="stable")
    width = widths[order]
    padded = np.array([field.reading_width(int(w)) for w in width], np.int64)
    n = len(order)
    cost = np.zeros(n + 1)  # the least cost of reading the first k inputs (sorted)
    start = np.zeros(n + 1, np.int64)  # where the last batch of that reading starts
    for stop in range(1, n + 1):
        # Batches [first, stop) within the limits; one input alone always is.
        most = min(BATCH, max(1, BATCH_COLUMNS // max(int(width[stop - 1]), 1)))
        first = np.arange(max(0, stop - most), stop)
        total = cost[first] + CALL_COLUMNS + (stop - first) * padded[stop - 1]
        best = int(np.argmin(total))
        cost[stop], start[stop] = total[best], first[best]
    chunks, stop = [], n
    while stop > 0:
        chunks.append(order[start[stop] : stop])
        stop = int(start[stop])
    return chunks[::-1]


_FORWARD: weakref.WeakKeyDictionary[Any, Callable[[np.ndarray], Any]] = weakref.WeakKeyDictionary()
_FORWARD_LOCK = threading.Lock()


def forward(model: Any) -> Callable[[np.ndarray], Any]:
    """The reader's forward pass as it reads (``line_reader.reading``), for reading batches
    (``field.reading_batch``) of any size and width, compiled once per model.

    On TensorFlow, one graph for every shape (twice the speed of calling the model op by
    op, and no retracing as widths change); on another backend, the model's own call.
    """
    import keras

    with _FORWARD_LOCK:
        if model not in _FORWARD:
            # Through a weak reference, so that the cache does not keep the model alive.
            ref = weakref.ref(model)

            def call(x: Any) -> Any:
                return _reading(ref())(x, training=False)

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                spec = tf.TensorSpec((None, field.HEIGHT, None, 1), tf.float32)
                _FORWARD[model] = tf.function(call, input_signature=[spec])
            else:
                _FORWARD[model] = call
        return _FORWARD[model]


_READING: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _reading(model: Any) -> Any:
    """``line_reader.reading(model)``, made once per model."""
    from digitflow.models.line_reader import reading

    if model not in _READING:
        _READING[model] = reading(model)
    return _READING[model]


def read_inputs(model: Any, inputs: Sequence[np.ndarray]) -> list[ReadLine]:
    """Read (32, w) reader inputs with a loaded Keras reader model, in input order."""
    import keras

    run = forward(model)
    return read_with(lambda x: keras.ops.convert_to_numpy(run(x)), inputs)


def read_with(
    run: Callable[[np.ndarray], np.ndarray],
    inputs: Sequence[np.ndarray],
    widths: Sequence[float] = WIDTHS,
    sure: float | None = SURE,
    shears: Sequence[float] = (),
) -> list[ReadLine]:
    """Read (32, w) reader inputs with a reader's forward pass (batch to logits), in input
    order, each at ``widths`` of its width, and at its own width slanted by ``shears``.

    Every such variant's greedy reading is a candidate; the one kept is the most likely
    under the variants as a mixture (the sum of its CTC likelihoods in each). Its digits,
    places and doubts are those of a variant that read it, its places brought back to the
    input's columns. With ``sure``, each input is read as it is first, and one whose string
    is at least that likely there is kept as read.

    A line's confidence is the reader's probability of its string (CTC, over every
    alignment): as a mixture of the variants it was read in, so that variants which
    disagree make a line doubtful. It is not the line's least sure step (``decode_line``'s):
    a step between a digit and the blank after it is often unsure whether the digit goes
    on, which changes nothing of the string. A line's runner-up is its next likeliest
    candidate, where there is one.
    """
    if not inputs:
        return []
    variants = [(share, 0.0) for share in widths] + [(1.0, slope) for slope in shears]
    if sure is None or (1.0, 0.0) not in variants or len(variants) == 1:
        return _read_variants(inputs, variants, {}, run)
    probs = _probabilities(run, inputs)
    lines = [
        replace(decode_line(p, x.shape[1]), steps=p) for p, x in zip(probs, inputs, strict=True)
    ]
    likely = np.exp(log_likelihoods(probs, [line.text for line in lines]))
    todo = [k for k, p in enumerate(likely) if p < sure]
    lines = [line if p < sure else replace(line, confidence=min(1.0, float(p)))
             for line, p in zip(lines, likely, strict=True)]  # fmt: skip
    if todo:
        known = {(1.0, 0.0): ([probs[k] for k in todo], [lines[k] for k in todo])}
        weighed = _read_variants([inputs[k] for k in todo], variants, known, run)
        for k, line in zip(todo, weighed, strict=True):
            lines[k] = line
    return lines


def _one_digit_likelihoods(steps: Sequence[np.ndarray]) -> np.ndarray:
    """log P(d | steps) under CTC for each one-digit string d (n, 10), for each sequence
    of step probabilities (T, 11)."""
    texts = [str(d) for d in range(10)]
    return log_likelihoods([p for p in steps for _ in texts], texts * len(steps)).reshape(
        len(steps), 10
    )


def _over_ten(logs: np.ndarray) -> np.ndarray:
    """Log-likelihoods of the ten digits (n, 10) as log-probabilities over the ten."""
    return logs - np.logaddexp.reduce(logs, axis=1, keepdims=True)


def one_digit_logs(
    run: Callable[[np.ndarray], np.ndarray],
    inputs: Sequence[np.ndarray],
    widths: Sequence[float] = WIDTHS,
    own: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """log P(d | input) for each one-digit string d (n, 10): the reader's probability
    that an input is that digit alone (CTC, over every alignment), the ``widths`` as a
    mixture, over the ten digits. For weighing a lone digit's reading with another
    model's: unlike a greedy reading, it says how likely each digit is, even where the
    reader would have read two digits or none. ``own``: each input's step probabilities
    at its own width where its reading kept them (``ReadLine.steps``), not read again."""
    if not inputs:
        return np.zeros((0, 10))
    again = [share for share in widths if own is None or share != 1.0]
    probs = _probabilities(run, [_variant(x, (share, 0.0)) for share in again for x in inputs])
    if len(again) < len(widths):
        probs += list(own or [])
    logs = _one_digit_likelihoods(probs).reshape(len(widths), len(inputs), 10)
    return _over_ten(np.logaddexp.reduce(logs, axis=0))


def span_logs(steps: Sequence[np.ndarray], spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """log P(d | columns) for each digit d (n, 10): the reader's probability that the steps
    over a digit's columns [x0, x1) of its line (``ReadLine.steps``, at the line's own
    width) hold that digit alone, over the ten. A digit's reading in its line, for
    weighing with another model's: over every step the digit was or might have been
    read at, not only the one it was read at."""
    if not steps:
        return np.zeros((0, 10))
    windows = []
    for probs, (x0, x1) in zip(steps, spans, strict=True):
        first = min(max(0, int(x0 // field.STRIDE)), len(probs) - 1)
        windows.append(probs[first : max(first + 1, int(-(-x1 // field.STRIDE)))])
    return _over_ten(_one_digit_likelihoods(windows))


Variant = tuple[float, float]  # (share of the width, slope of the slant)


def _variant(x: np.ndarray, variant: Variant) -> np.ndarray:
    share, slope = variant
    return field.shear(field.stretch(x, share), slope)


def _to_input(digit: ReadDigit, width: int, variant: Variant) -> ReadDigit:
    """A digit read in a variant of an input ``width`` columns wide, placed on the input."""
    share, slope = variant
    scale = width / field.stretched_width(width, share)
    if not slope:
        return replace(digit, x0=digit.x0 * scale, x1=digit.x1 * scale)
    shift = field.shear_margin(slope)  # a slanted input's margin, its middle row in place
    x0 = min(max(0.0, (digit.x0 - shift) * scale), width - 1.0)
    return replace(digit, x0=x0, x1=min(max(x0 + 1.0, (digit.x1 - shift) * scale), width))


def _read_variants(
    inputs: Sequence[np.ndarray],
    variants: Sequence[Variant],
    known: dict[Variant, tuple[list[np.ndarray], list[ReadLine]]],
    run: Callable[[np.ndarray], np.ndarray],
) -> list[ReadLine]:
    """Each input read in every variant, the string likeliest over all of them kept (see
    ``read_with``); ``known``: the step probabilities and greedy readings of variants
    already read."""
    missing = [v for v in variants if v not in known]
    # Every variant of every input in one go, so that batches of one width fill up.
    sized = [_variant(x, v) for v in missing for x in inputs]
    every = _probabilities(run, sized)
    done = dict(known)
    for j, v in enumerate(missing):
        probs = every[j * len(inputs) : (j + 1) * len(inputs)]
        greedy = [
            decode_line(p, x.shape[1])
            for p, x in zip(probs, sized[j * len(inputs) :], strict=False)
        ]
        done[v] = (probs, greedy)
    readings = [done[v] for v in variants]  # per variant: step probabilities, readings
    own = done[(1.0, 0.0)][0] if (1.0, 0.0) in done else None  # steps at the own width
    candidates = [sorted({greedy[k].text for _, greedy in readings}) for k in range(len(inputs))]
    pairs = [(k, text) for k, texts in enumerate(candidates) for text in texts]
    scores = np.array(
        [
            log_likelihoods([probs[k] for k, _ in pairs], [t for _, t in pairs])
            for probs, _ in readings
        ]
    ).reshape(len(readings), len(pairs))
    # The variants as a mixture: a string's likelihood is the sum of its likelihoods in
    # each, not their product, so that one variant which all but rules a string out does
    # not outvote the others that read it. On the check amounts, 72.1 → 73.0 % exact read
    # directly (docs/record/reading.md, "Variants as a mixture").
    totals = np.logaddexp.reduce(scores, axis=0)
    lines, at = [], 0
    for k, texts in enumerate(candidates):
        span = slice(at, at + len(texts))
        at += len(texts)
        order = np.argsort(-totals[span], kind="stable")
        best = int(order[0])
        likely = min(1.0, float(np.exp(totals[span][best] - np.log(len(readings)))))
        runner_up = texts[int(order[1])] if len(texts) > 1 else None
        # Of the variants that read the kept string, the one that found it likeliest.
        chosen = max(
            range(len(readings)),
            key=lambda i: (readings[i][1][k].text == texts[best], scores[i, span][best]),
        )
        line = readings[chosen][1][k]
        width = inputs[k].shape[1]
        digits = [_to_input(d, width, variants[chosen]) for d in line.digits]
        steps = None if own is None else own[k]
        lines.append(ReadLine(digits, likely, runner_up=runner_up, steps=steps))
    return lines


def _probabilities(
    run: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each input's step probabilities (T, 11), its padding's steps left out."""
    out: list[np.ndarray] = [np.empty((0, 11), np.float32)] * len(inputs)
    for chunk in _chunks(np.array([x.shape[1] for x in inputs], np.int64)):
        batch, widths = field.reading_batch([inputs[k] for k in chunk])
        probs = softmax(np.asarray(run(batch), np.float32))
        for k, p, w in zip(chunk, probs, widths, strict=True):
            out[k] = p[: steps_of(len(p), int(w))]
    return out


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
