"""Reader outputs to digit strings: greedy CTC decoding with each digit's place and doubt."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from digitflow.reader.field import STRIDE

BLANK = 0


@dataclass(frozen=True)
class ReadDigit:
    """One digit of a line: its value and runner-up with their probabilities, and its
    columns [x0, x1) in the reader's input."""

    digit: int
    confidence: float
    runner_up: int
    runner_up_confidence: float
    x0: float
    x1: float


@dataclass(frozen=True)
class ReadLine:
    """A line read whole: its digits left to right and how sure the reader is of it all.

    ``confidence``: as lines are read (``reader.infer.read_with``), the reader's
    probability of the string; as ``decode_line`` gives it, the least certain step of the
    line. A lone digit read by the classifier has the classifier's probability of that
    digit.
    """

    digits: list[ReadDigit]
    confidence: float
    model: str | None = None  # who read it, where not the line reader (a lone digit's)
    # The next likeliest string, where the line was read in variants that read it otherwise.
    runner_up: str | None = None
    # The reader's step probabilities (T, 11) of the line at its own width, where kept: for
    # weighing a digit's reading with another model's (``reader.infer.alone_logs``).
    steps: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The digits as a string."""
        return "".join(str(d.digit) for d in self.digits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted, dtype=np.float32)
    return e / e.sum(axis=-1, keepdims=True)


def _runs(best: np.ndarray) -> list[tuple[int, int, int]]:
    """(class, first step, last step + 1) of each run of one non-blank class."""
    runs = []
    start = 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            if best[start] != BLANK:
                runs.append((int(best[start]), start, t))
            start = t
    return runs


def steps_of(steps: int, width: int) -> int:
    """How many of a batch's ``steps`` output steps cover an input ``width`` columns wide."""
    return max(1, min(steps, -(-width // STRIDE)))


def decode_line(probs: np.ndarray, width: int) -> ReadLine:
    """Decode one line's step probabilities (T, 11) for an input ``width`` columns wide.

    Steps past the input's width (the batch's padding) are ignored. A digit's columns run
    from halfway after the previous digit's steps to halfway before the next one's, so the
    digits tile the line like the cells of a form. The line's confidence is its least
    certain step.
    """
    steps = steps_of(len(probs), width)
    probs = probs[:steps]
    best = probs.argmax(axis=1)
    runs = _runs(best)
    centres = [(a + b) / 2 * STRIDE for _, a, b in runs]
    digits = []
    for k, (cls, a, b) in enumerate(runs):
        peak = a + int(np.argmax(probs[a:b, cls]))
        others = probs[peak, 1:].copy()
        others[cls - 1] = -1.0
        second = int(np.argmax(others))
        left = (centres[k - 1] + centres[k]) / 2 if k else max(0.0, centres[k] - 2 * STRIDE)
        right = (
            (centres[k] + centres[k + 1]) / 2
            if k + 1 < len(runs)
            else min(float(width), centres[k] + 2 * STRIDE)
        )
        digits.append(
            ReadDigit(
                digit=cls - 1,
                confidence=float(probs[peak, cls]),
                runner_up=second,
                runner_up_confidence=float(others[second]),
                x0=left,
                x1=right,
            )
        )
    confidence = float(probs[np.arange(steps), best].min())
    return ReadLine(digits, confidence)


# Pairs of (line, string) are scored together, their steps and labels padded to the
# longest, up to this many (pair, step, state) cells (float64: 128 MiB at most).
_CELLS = 1 << 24


def log_likelihoods(probs: list[np.ndarray], texts: list[str]) -> np.ndarray:
    """log P(text | line) under CTC, for each line's step probabilities (T, 11) and string.

    The forward (alpha) recursion in log space, over many pairs at once: pairs of about
    as many steps go together, so little of the work is padding, and no more of them than
    fit the memory bound, however long a line is or however many digits it was read as.
    """
    out = np.empty(len(texts), np.float64)
    for chunk in pair_chunks([len(p) for p in probs], [2 * len(t) + 1 for t in texts]):
        out[chunk] = _forward([probs[k] for k in chunk], [texts[k] for k in chunk])
    return out


def pair_chunks(steps: list[int], states: list[int], cells: int = _CELLS) -> list[list[int]]:
    """Indices of (line, string) pairs in chunks, fewest steps first, each chunk padded to
    its longest within ``cells`` (pairs x steps x states), or one pair alone."""
    chunks: list[list[int]] = []
    chunk: list[int] = []
    most = (0, 0)
    for k in map(int, np.argsort(steps, kind="stable")):
        wider = max(most[0], steps[k]), max(most[1], states[k])
        if chunk and (len(chunk) + 1) * wider[0] * wider[1] > cells:
            chunks.append(chunk)
            chunk, wider = [], (steps[k], states[k])
        chunk.append(k)
        most = wider
    return [*chunks, chunk] if chunk else chunks


def _forward(probs: list[np.ndarray], texts: list[str]) -> np.ndarray:
    """CTC log-likelihoods of one chunk of (line, string) pairs."""
    n = len(texts)
    steps = np.array([len(p) for p in probs])
    states = np.array([2 * len(t) + 1 for t in texts])  # blank, digit, blank, ..., blank
    labels = np.full((n, max(2, int(states.max()))), BLANK, np.int64)
    for k, text in enumerate(texts):
        labels[k, 1 : 2 * len(text) : 2] = [int(c) + 1 for c in text]
    logp = np.full((n, int(steps.max()), probs[0].shape[1]), -np.inf, np.float64)
    for k, p in enumerate(probs):
        logp[k, : len(p)] = np.log(np.maximum(p, 1e-30))
    # emit[k, t, s]: log-probability of state s's class at step t
    emit = np.take_along_axis(logp, np.repeat(labels[:, None, :], logp.shape[1], axis=1), 2)
    # A digit may follow the digit two states back (skipping the blank) unless they are equal.
    skip = np.zeros(labels.shape, bool)
    skip[:, 2:] = (labels[:, 2:] != BLANK) & (labels[:, 2:] != labels[:, :-2])
    alpha = np.full(labels.shape, -np.inf)
    alpha[:, :2] = emit[:, 0, :2]
    alpha[states == 1, 1] = -np.inf
    for t in range(1, logp.shape[1]):
        one = np.concatenate([np.full((n, 1), -np.inf), alpha[:, :-1]], axis=1)
        two = np.concatenate([np.full((n, 2), -np.inf), alpha[:, :-2]], axis=1)
        moved = np.logaddexp(np.logaddexp(alpha, one), np.where(skip, two, -np.inf)) + emit[:, t]
        alpha = np.where((t < steps)[:, None], moved, alpha)
    rows = np.arange(n)
    last = alpha[rows, states - 1]
    before = np.where(states > 1, alpha[rows, np.maximum(states - 2, 0)], -np.inf)
    return np.logaddexp(last, before)
