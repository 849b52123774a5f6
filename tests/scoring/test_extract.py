"""From file bytes to digits: every kind of bad scan is kept, with a reason, never raised."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.scoring import extract as extract_module
from digitflow.scoring.extract import extract
from tests.scoring.files import bad_and_good, multipage_tiff, page, png

CASES = bad_and_good()


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_gets_its_status_and_a_reason(name: str) -> None:
    data, status, phrase = CASES[name]
    result = extract(data, name)
    assert result.status == status
    reasons = [result.error] if result.error else result.page_errors
    if status == "scored":
        assert reasons == [] and result.pages == 1
    else:
        assert phrase in " ".join(reasons)
        assert all(name in reason for reason in reasons)  # each reason names its file
    assert result.digits.shape == (len(result.boxes), 28, 28)
    assert result.digits.dtype == np.uint8


@pytest.mark.parametrize("name", ["cmyk.jpg", "alpha.png", "wide.tif", "three pages.tif"])
def test_unusual_encodings_yield_the_digits_on_the_page(name: str) -> None:
    result = extract(CASES[name][0], name)
    per_page = 4  # the test page holds one line of four digits
    readable_pages = result.pages - len(result.page_errors)
    assert len(result.boxes) == per_page * readable_pages
    assert {box.line for _, box in result.boxes} == {0}
    # Ink is bright on black, as in MNIST, whatever the file's encoding.
    assert all(d.max() > 200 and d[0].max() == 0 for d in result.digits)


def test_blank_page_is_scored_with_no_digits() -> None:
    result = extract(CASES["blank.png"][0], "blank.png")
    assert (result.status, result.pages, len(result.boxes)) == ("scored", 1, 0)


def test_good_pages_of_a_multipage_tiff_are_kept_around_a_corrupt_one() -> None:
    text = page()
    result = extract(multipage_tiff([text, text, text], corrupt=(1,)), "scan.tif")
    assert result.status == "partial" and result.pages == 3
    assert sorted({p for p, _ in result.boxes}) == [0, 2]
    assert len(result.page_errors) == 1 and "scan.tif page 1" in result.page_errors[0]


def test_a_tiff_with_every_page_corrupt_is_quarantined() -> None:
    text = page()
    data = multipage_tiff([text, text], corrupt=(0, 1))
    result = extract(data, "gone.tif")
    assert result.status == "quarantined" and result.pages == 2
    assert "gone.tif page 0" in (result.error or "") and "gone.tif page 1" in (result.error or "")


def test_an_unexpected_error_on_one_page_is_recorded_as_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(pixels: np.ndarray) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(extract_module, "segment_page", broken)
    result = extract(png(page()), "odd.png")
    assert result.status == "quarantined"
    assert "ZeroDivisionError" in (result.error or "") and "bug" in (result.error or "")


def test_a_field_holding_one_digit_keeps_it_for_the_classifier_when_read_in_lines() -> None:
    from digitflow.scoring.extract import Reading

    digit = np.full((40, 30), 230, np.uint8)
    digit[8:32, 13:17] = 20  # a 1
    lone = extract(png(digit), "one.png", Reading("line"))
    assert len(lone.lines) == 1 and len(lone.boxes) == 1 and lone.digits.shape == (1, 28, 28)
    amount = np.full((40, 120), 230, np.uint8)
    for x in (10, 40, 70, 100):
        amount[8:32, x : x + 4] = 20
    several = extract(png(amount), "four.png", Reading("line"))
    assert len(several.lines) == 1 and several.boxes == [] and len(several.digits) == 0
    page = extract(png(amount), "four.png", Reading("line", "page"))
    assert page.boxes == []  # pages are read in lines only
