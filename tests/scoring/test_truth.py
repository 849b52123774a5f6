"""Accuracy against truth.csv: an edit alignment, so one missed digit costs one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from digitflow.scoring.truth import align, compare, misreadings, read_lines, read_truth


@pytest.mark.parametrize(
    ("truth", "read", "expected"),
    [
        ("1234", "1234", (4, 0)),
        ("1234", "124", (3, 0)),  # one missed
        ("1234", "12354", (4, 1)),  # one extra
        ("1234", "1274", (3, 0)),  # one misread
        ("1234", "", (0, 0)),
        ("", "99", (0, 2)),
    ],
)
def test_align(truth: str, read: str, expected: tuple[int, int]) -> None:
    assert align(truth, read) == expected


def test_compare_survives_a_spurious_line_and_counts_exact_lines(tmp_path: Path) -> None:
    csv = tmp_path / "truth.csv"
    csv.write_text("file,page,line,digits\na.png,0,0,123\na.png,0,1,45\nb.tif,1,0,9\n")
    truth = read_truth(csv)
    assert truth == {("a.png", 0): ["123", "45"], ("b.tif", 1): ["9"]}
    ledger = [
        {"file": "a.png", "lines": [{"page": 0, "line": 0, "digits": "7"},
                                    {"page": 0, "line": 1, "digits": "123"},
                                    {"page": 0, "line": 2, "digits": "46"}]},
        {"file": "b.tif", "lines": None},  # quarantined
    ]  # fmt: skip
    accuracy = compare(truth, read_lines(ledger))
    assert (accuracy.digits, accuracy.correct, accuracy.extra) == (6, 4, 1)
    assert (accuracy.lines, accuracy.exact_lines) == (3, 1)
    assert accuracy.digit_accuracy == pytest.approx(4 / 6)
    # Both pages were found with another number of lines: one too many, and none.
    assert (accuracy.pages, accuracy.miscounted_pages) == (2, 2)
    right = compare(truth, {("a.png", 0): ["123", "45"], ("b.tif", 1): ["8"]})
    assert (right.exact_lines, right.pages, right.miscounted_pages) == (2, 2, 0)


def test_misreadings_are_counted_by_kind_and_confusions_only_where_the_length_is_right() -> None:
    truth = ["1234", "1000", "77", "90", "5"]
    read = ["1234", "100", "717", "98", "6"]
    found = misreadings(truth, read)
    assert (found.strings, found.short, found.long, found.swapped) == (5, 1, 1, 2)
    assert found.confusions == {("0", "8"): 1, ("5", "6"): 1}  # not 7→1: that string is long
    assert found.summary() == "of 5: 1 read short, 1 long, 2 with a digit wrong (0→8 1, 5→6 1)"
