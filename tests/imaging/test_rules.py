"""Printed rules: runs of ink long enough to be a rule, and the skew they are found along."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.imaging.rules import _long_runs, estimate_skew, remove_rules


def runs_at_least(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of each row's runs of ink that are `length` long or longer, one by one."""
    out = np.zeros_like(mask, dtype=bool)
    for r, row in enumerate(mask.astype(bool)):
        c = 0
        while c < row.size:
            if not row[c]:
                c += 1
                continue
            end = c
            while end < row.size and row[end]:
                end += 1
            if end - c >= length:
                out[r, c:end] = True
            c = end
    return out


@pytest.mark.parametrize("length", [1, 3, 9, 31, 151])
@pytest.mark.parametrize("density", [0.3, 0.7, 0.97])
def test_long_runs_keep_exactly_the_runs_that_long(length: int, density: float) -> None:
    rng = np.random.default_rng(length)
    mask = (rng.random((40, 400)) < density).astype(np.uint8)
    mask[5, :] = 1  # one run from edge to edge
    mask[7, 10 : 10 + length] = 1  # one exactly `length` long
    mask[7, 9] = mask[7, 10 + length] = 0
    mask[9] = 0  # a row with no ink but one run exactly `length` long
    mask[9, 50 : 50 + length] = 1
    found = _long_runs(mask, length).astype(bool)
    np.testing.assert_array_equal(found, runs_at_least(mask, length))


def test_rules_along_the_skew_go_and_ink_across_them_stays() -> None:
    mask = np.zeros((200, 600), bool)
    columns = np.arange(600)
    rows = np.round(100 + 0.02 * (columns - 300)).astype(int)  # a rule at about 1.1°
    for dy in range(2):
        mask[rows + dy, columns] = True
    mask[60:140, 295:299] = True  # a stroke crossing it
    skew = estimate_skew(mask)
    assert skew == pytest.approx(0.02, abs=0.0016)
    cleaned = remove_rules(mask, 151, skew)
    assert not cleaned[rows[:200], columns[:200]].any()  # the rule, away from the stroke
    assert cleaned[60:95, 295:299].all() and cleaned[106:140, 295:299].all()
