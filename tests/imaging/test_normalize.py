"""MNIST-style normalisation: 20×20 box, aspect kept, centre of mass at (14, 14)."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.imaging import normalize_boxes, normalize_digit, page_to_digits, segment_page
from tests.imaging.synthetic import glyph, ink_lines, on_paper


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    weights = digit.astype(np.float64)
    total = weights.sum()
    rows, cols = np.indices(digit.shape)
    return float((rows * weights).sum() / total), float((cols * weights).sum() / total)


def ink_box(digit: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.fixture(scope="module")
def page_digits() -> np.ndarray:
    _, digits = page_to_digits(on_paper(ink_lines(["0123456789", "4711"], size=60)))
    return digits


def test_output_is_mnist_shaped_with_bright_ink_on_black(page_digits: np.ndarray) -> None:
    assert page_digits.shape == (14, 28, 28) and page_digits.dtype == np.uint8
    for digit in page_digits:
        assert digit[0, 0] == digit[-1, -1] == 0, "background is black"
        assert digit.max() == 255, "stroke cores are full white"
        assert 0 < np.count_nonzero(digit > 127) < 0.5 * digit.size


def test_digit_fits_a_20_pixel_box(page_digits: np.ndarray) -> None:
    for digit in page_digits:
        assert max(ink_box(digit)) in (19, 20), "the longer side fills the 20-pixel box"


def test_centre_of_mass_is_at_the_centre(page_digits: np.ndarray) -> None:
    for digit in page_digits:
        row, col = centre_of_mass(digit)
        assert abs(row - 14) <= 1 and abs(col - 14) <= 1


def test_aspect_ratio_is_kept() -> None:
    bar = np.zeros((70, 25), np.float32)
    bar[5:65, 5:20] = 255  # a tall stroke, 60 by 15: 4 to 1
    height, width = ink_box(normalize_digit(bar))
    assert height == 20 and 4 <= width <= 6


def test_strokes_keep_grey_anti_aliased_edges(page_digits: np.ndarray) -> None:
    for digit in page_digits:
        ink = digit[digit > 0]
        assert np.count_nonzero((ink > 30) & (ink < 225)) >= 0.15 * ink.size


def test_small_digit_is_scaled_up_to_the_box() -> None:
    small = (glyph("7", 16) * 255).astype(np.float32)  # about 11 pixels tall
    digit = normalize_digit(small)
    assert max(ink_box(digit)) in (19, 20)


def test_mask_keeps_out_a_neighbours_stroke() -> None:
    crop = np.zeros((40, 30), np.float32)
    crop[:6, :] = crop[:, 24:] = 255  # our digit: a 7 of two strokes
    mask = crop > 0
    alone = normalize_digit(crop, mask)
    crop[30:, :6] = 255  # the stroke of a neighbour reaches into our box, under the 7
    assert np.array_equal(normalize_digit(crop, mask), alone)


def test_empty_crop_gives_an_empty_digit() -> None:
    assert not normalize_digit(np.zeros((10, 10), np.uint8)).any()


def test_blank_page_gives_no_digits() -> None:
    boxes, digits = page_to_digits(np.full((200, 300), 230, np.uint8))
    assert boxes == [] and digits.shape == (0, 28, 28)


def test_a_page_of_a_hundred_digits_normalises_each_of_them() -> None:
    # How fast is measured by benchmarks/score.py (its profile of a page), not asserted here.
    page = on_paper(ink_lines(["0123456789"] * 10, size=48, pitch=1.8))
    segmentation = segment_page(page)
    assert len(segmentation.boxes) == 100
    digits = normalize_boxes(segmentation)
    assert digits.shape == (100, 28, 28)
    assert all(d.max() > 0 for d in digits)
