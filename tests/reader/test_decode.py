"""Greedy CTC decoding: repeats, blanks, each digit's columns and doubt."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from digitflow.reader import decode
from digitflow.reader.decode import decode_line, log_likelihoods
from digitflow.reader.field import STRIDE


def _steps(classes: list[int], sure: float = 0.9) -> np.ndarray:
    """Step probabilities putting ``sure`` on each listed class (0 is the blank)."""
    probs = np.full((len(classes), 11), (1 - sure) / 10, np.float32)
    probs[np.arange(len(classes)), classes] = sure
    return probs


def test_repeats_collapse_and_blanks_separate_equal_digits() -> None:
    # digit d is class d + 1: "1 1 _ 3 _ 3 3 _" reads 0, 2, 2
    line = decode_line(_steps([1, 1, 0, 3, 0, 3, 3, 0]), width=8 * STRIDE)
    assert line.text == "022"


def test_digits_tile_the_line_in_order_with_their_doubt() -> None:
    probs = _steps([0, 2, 0, 0, 5, 0, 0, 8, 0])
    probs[4, 5], probs[4, 7] = 0.55, 0.4  # the middle digit: 4, or perhaps 6
    line = decode_line(probs, width=9 * STRIDE)
    assert line.text == "147"
    middle = line.digits[1]
    assert (middle.digit, middle.runner_up) == (4, 6)
    assert middle.confidence == pytest.approx(0.55)
    assert middle.runner_up_confidence == pytest.approx(0.4)
    edges = [(d.x0, d.x1) for d in line.digits]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(edges))  # cells touch
    assert all(x0 < x1 for x0, x1 in edges)
    assert line.confidence == pytest.approx(0.55)  # the least certain step


def test_padding_past_the_input_width_is_ignored() -> None:
    probs = _steps([2, 0, 3, 0])
    assert decode_line(probs, width=2 * STRIDE).text == "1"


def test_an_empty_line_reads_nothing() -> None:
    line = decode_line(_steps([0, 0, 0]), width=3 * STRIDE)
    assert line.text == "" and line.digits == []


def test_ctc_likelihood_sums_every_alignment_of_the_string() -> None:
    """Against the definition: every path of T steps that collapses to the string."""
    rng = np.random.default_rng(3)
    steps = (1, 2, 3, 4, 4, 2)
    probs = [rng.dirichlet(np.ones(11), n).astype(np.float32) for n in steps]
    texts = ["", "7", "11", "12", "101", "11"]
    ours = log_likelihoods(probs, texts)
    for p, text, got in zip(probs, texts, ours, strict=True):
        total = 0.0
        for path in itertools.product(range(11), repeat=len(p)):
            collapsed = [c for k, c in enumerate(path) if c != 0 and (k == 0 or path[k - 1] != c)]
            if "".join(str(c - 1) for c in collapsed) == text:
                total += float(np.prod(p[np.arange(len(p)), path]))
        expected = np.log(total) if total else -np.inf
        assert got == pytest.approx(expected, rel=1e-5)
    assert ours[-1] == -np.inf  # two equal digits need a blank between them: 3 steps
    nothing = log_likelihoods(probs[:2], ["", ""])  # a chunk of empty strings alone
    assert nothing == pytest.approx([np.log(p[:, 0]).sum() for p in probs[:2]], rel=1e-5)


def test_long_lines_are_scored_in_chunks_within_the_memory_bound() -> None:
    """A noisy page read as one field may be hundreds of steps and digits long."""
    steps, states = [5, 40, 300, 300, 7], [5, 21, 241, 1, 3]
    chunks = decode.pair_chunks(steps, states, cells=300 * 241)
    assert sorted(k for chunk in chunks for k in chunk) == list(range(5))
    assert len(chunks) > 1
    for chunk in chunks:
        padded = len(chunk) * max(steps[k] for k in chunk) * max(states[k] for k in chunk)
        assert padded <= 300 * 241
    rng = np.random.default_rng(4)
    probs = [rng.dirichlet(np.ones(11), n).astype(np.float32) for n in steps]
    texts = ["12", "3" * 10, "45" * 60, "", "9"]
    one_by_one = [log_likelihoods([p], [t])[0] for p, t in zip(probs, texts, strict=True)]
    assert log_likelihoods(probs, texts) == pytest.approx(one_by_one)
