"""Finding digits on pages: polarity, lighting, lines, touching and broken digits, forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from digitflow.imaging import segment_page
from digitflow.imaging.binarize import _grid_median, _median_3x3, binarize, otsu_threshold
from digitflow.imaging.blobs import Blob, ink_box
from digitflow.imaging.lines import group_lines
from tests.imaging.synthetic import (
    PAPER,
    glyph,
    ink_lines,
    line_counts,
    lit_unevenly,
    on_paper,
    rotated,
)

LINES = ["0123456789", "3141", "27182818"]


def boxes_of(page: np.ndarray) -> list[tuple[int, int, int, int, int, int]]:
    return [(b.line, b.position, b.x0, b.y0, b.x1, b.y1) for b in segment_page(page).boxes]


def test_ink_box_is_tight_round_the_ink() -> None:
    mask = np.zeros((40, 50), bool)
    assert ink_box(mask) is None
    mask[7, 30] = mask[19, 12] = True
    assert ink_box(mask) == (7, 20, 12, 31)
    assert ink_box(mask.view(np.uint8)) == (7, 20, 12, 31)


def test_otsu_splits_two_levels_between_them() -> None:
    values = np.array([20] * 50 + [200] * 50, np.uint8)
    assert 20 < otsu_threshold(values) < 200


@pytest.mark.filterwarnings("ignore:All-NaN slice")
@pytest.mark.parametrize("seed", range(6))
def test_block_medians_are_those_of_each_blocks_known_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(n) for n in rng.integers(1, 300, 2))
    side = int(rng.integers(1, 120))
    sample = rng.integers(0, 256, (height, width)).astype(np.float32)
    sample[rng.random(sample.shape) < seed / 6] = np.nan  # unknown: ink, or past the page
    grid = _grid_median(sample, side, fallback=sample)
    # As many blocks as sides of `side` take, sharing the sample out evenly.
    rows, cols = -(-height // side), -(-width // side)
    down = [-(-k * height // rows) for k in range(rows + 1)]
    across = [-(-k * width // cols) for k in range(cols + 1)]
    assert max(np.diff(down)) - min(np.diff(down)) <= 1
    assert max(np.diff(across)) - min(np.diff(across)) <= 1
    expected = [
        [np.nanmedian(sample[top:bottom, left:right])
         for left, right in itertools.pairwise(across)]
        for top, bottom in itertools.pairwise(down)
    ]  # fmt: skip
    expected = np.array(expected, np.float32)
    if np.isnan(expected).any():  # a block with no known pixel takes the others' median
        expected[np.isnan(expected)] = np.nanmedian(expected)
    np.testing.assert_array_equal(grid, expected)


@pytest.mark.parametrize("shape", [(3, 3), (3, 8), (17, 23)])
def test_the_blocks_median_with_their_neighbours_is_scipys(shape: tuple[int, int]) -> None:
    grid = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.float32)
    grid[0, :2] = grid[-1, -1] = 255.0  # ties, and an edge block repeated beyond the grid
    expected = ndimage.median_filter(grid, size=3, mode="nearest")
    assert _median_3x3(grid).dtype == np.float32
    np.testing.assert_array_equal(_median_3x3(grid), expected)


def test_digits_are_grouped_into_lines_and_read_left_to_right() -> None:
    segmentation = segment_page(on_paper(ink_lines(LINES)))
    assert line_counts(segmentation.boxes) == [10, 4, 8]
    for line in range(3):
        row = [b for b in segmentation.boxes if b.line == line]
        assert [b.position for b in row] == list(range(len(row)))
        assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(row)), "left to right"
    tops = [min(b.y0 for b in segmentation.boxes if b.line == k) for k in range(3)]
    assert tops == sorted(tops), "lines top to bottom"


def test_boxes_hold_their_masks() -> None:
    for box in segment_page(on_paper(ink_lines(["42"]))).boxes:
        assert box.mask.shape == (box.y1 - box.y0, box.x1 - box.x0)
        assert box.mask.dtype == bool and box.mask.any()
        assert box.mask[0].any() and box.mask[:, 0].any(), "the box is tight round the ink"


def test_blank_page_has_no_digits() -> None:
    blank = on_paper(np.zeros((600, 500), np.float32), noise=6.0)
    assert segment_page(blank).boxes == []
    assert segment_page(lit_unevenly(blank)).boxes == []
    assert segment_page(np.full((300, 300), 255, np.uint8)).boxes == []


def test_light_ink_on_dark_paper_segments_like_dark_on_light() -> None:
    page = on_paper(ink_lines(LINES))
    assert segment_page(page).dark_ink and not segment_page(255 - page).dark_ink
    assert boxes_of(255 - page) == boxes_of(page)


def test_uneven_lighting_does_not_change_what_is_found() -> None:
    page = on_paper(ink_lines(LINES))
    dim = lit_unevenly(page, darkest=0.4)  # paper at the far corner is darker than 100
    assert dim[-5, -5] < 100 < PAPER
    assert line_counts(segment_page(dim).boxes) == [10, 4, 8]


def test_binarize_removes_the_lighting_gradient() -> None:
    page = lit_unevenly(on_paper(ink_lines(LINES)), darkest=0.4)
    mask = binarize(page).mask
    assert mask.mean() < 0.1, "paper in the dark corner must not become ink"


def test_a_bright_fill_along_the_scans_edge_leaves_the_paper_beside_it_paper() -> None:
    # At this size the page's background is taken in 8 × 7 blocks. Cut every 228 pixels
    # from the top left, the last column of blocks was 27 pixels wide, most of it the
    # fill round a rotated scan, lighter than the paper: its level spread over the paper
    # beside it, which became one piece of "ink" with everything it touched, and the
    # page's digits were lost (a generated form read as one line, or none).
    ink = np.zeros((1813, 1395), np.float32)
    lines = ink_lines(LINES)
    ink[200 : 200 + lines.shape[0], 100 : 100 + lines.shape[1]] = lines
    page = on_paper(ink, paper=180)
    page[:, -22:] = 205
    assert line_counts(segment_page(page).boxes) == [10, 4, 8]
    assert binarize(page).mask[:, :-22].mean() < 0.01


def test_a_chain_of_bold_touching_digits_is_not_taken_for_a_rule() -> None:
    # Seven bold digits joined, wider than three digit heights: their middle rows are long
    # runs of ink, as a rule's are, but as thick as a stroke. Taken for a rule, they were
    # cut out, and the line was lost (on a scan, it came apart into its tops and bottoms).
    lines = ["0123456789", "6+4+0+9+5+6+7", "3141"]
    page = on_paper(ndimage.grey_dilation(ink_lines(lines, size=30), size=(5, 5)))
    boxes = segment_page(page, split=False).boxes
    assert line_counts(boxes) == [10, 1, 4]
    (chain,) = [b for b in boxes if b.line == 1]
    assert chain.x1 - chain.x0 > 3 * (chain.y1 - chain.y0)


def test_slightly_rotated_page_keeps_its_lines() -> None:
    lines = ["0123456789", "9876543210", "1357913579"]
    for degrees in (-2.0, 2.0):
        page = rotated(on_paper(ink_lines(lines, pitch=2.2)), degrees)
        assert line_counts(segment_page(page).boxes) == [10, 10, 10]


def test_touching_digits_are_split() -> None:
    page = on_paper(ink_lines(["3 4 0+0 7 8", "12 5+8+6 90"]))
    assert line_counts(segment_page(page).boxes) == [6, 7]


def test_touching_digits_stay_whole_for_finding_lines() -> None:
    page = on_paper(ink_lines(["3 4 0+0 7 8", "12 5+8+6 90"]))
    assert line_counts(segment_page(page, split=False).boxes) == [5, 5]


def test_a_piece_of_a_digit_off_the_lines_centre_stays_in_its_line() -> None:
    """Touching digits that a rule broke: the bottom of one, then the top of the next, each
    within the line's band but far from the other's centre."""

    def blob(x0: int, y0: int, x1: int, y1: int) -> Blob:
        return Blob(x0, y0, x1, y1, np.ones((y1 - y0, x1 - x0), bool))

    line = [blob(10 + 30 * k, 100, 34 + 30 * k, 124) for k in range(4)]  # 24 px high
    bottom, top = blob(130, 112, 150, 124), blob(145, 100, 165, 107)  # centres 118, 103.5
    below = [blob(10 + 30 * k, 160, 34 + 30 * k, 184) for k in range(3)]
    lines = group_lines([*line, bottom, top, blob(170, 101, 194, 125), *below])
    assert [len(row) for row in lines] == [7, 3]


def test_broken_stroke_is_merged() -> None:
    ink = ink_lines(["1 5 7 3"])
    five = segment_page(on_paper(ink)).boxes[1]
    cut = five.y0 + (five.y1 - five.y0) // 3
    ink[cut : cut + 3, five.x0 : five.x1] = 0  # break the 5's bar from its body
    _, pieces = ndimage.label(ink[:, five.x0 : five.x1] > 0.3, np.ones((3, 3)))
    assert pieces >= 2, "the test must really break the digit"
    assert line_counts(segment_page(on_paper(ink)).boxes) == [4]


def test_specks_are_not_digits() -> None:
    ink = ink_lines(["2468"])
    rng = np.random.default_rng(1)
    for y, x in zip(
        rng.integers(0, ink.shape[0], 40), rng.integers(0, ink.shape[1], 40), strict=True
    ):
        ink[y : y + 2, x : x + 2] = 1.0  # dust
    assert line_counts(segment_page(on_paper(ink)).boxes) == [4]


def test_dark_scanner_margin_at_the_page_edge_is_not_a_digit() -> None:
    page = on_paper(ink_lines(LINES)).copy()
    page[:40, -40:] = np.minimum(page[:40, -40:], np.tri(40, 40, dtype=np.uint8)[:, ::-1] * 255)
    page[-25:, :] = 60  # the scanner lid's shadow along the bottom
    assert line_counts(segment_page(page).boxes) == [10, 4, 8]


def test_a_full_stop_is_not_a_digit() -> None:
    assert line_counts(segment_page(on_paper(ink_lines(["12.5", "3.14"]))).boxes) == [3, 3]


def form(lines: list[str], ruled: bool = True, framed: bool = False) -> np.ndarray:
    """Digits written on printed rules (touching them), under a title bar, maybe in a frame."""
    ink = ink_lines(lines, margin=60)
    ink[10:30, 20:-20] = 0.6  # title bar
    if ruled:
        for row in np.flatnonzero(ink[40:].max(axis=1) > 0.5):
            if row + 40 + 1 < ink.shape[0] and ink[row + 41].max() < 0.5:
                ink[row + 40 : row + 42, 20:-20] = 1.0  # a rule right under each line
    if framed:
        ink[40:43, 20:-20] = ink[-8:-5, 20:-20] = 1.0
        ink[40:-5, 20:23] = ink[40:-5, -23:-20] = 1.0
    return on_paper(ink)


@pytest.mark.parametrize(("ruled", "framed"), [(True, False), (False, True), (True, True)])
def test_form_rules_frames_and_title_bars_are_ignored(ruled: bool, framed: bool) -> None:
    page = form(["123456", "7890", "55555"], ruled, framed)
    assert line_counts(segment_page(page).boxes) == [6, 4, 5]


def test_digits_all_on_rules_under_a_printed_band_are_found() -> None:
    """A wide grey band outweighs digits that all touch their rules, and a speck of dust is
    the only free piece: the digits' size comes from the digits, not from the speck."""
    ink = ink_lines(["699332", "5097321", "0963329"], margin=60)
    ink = np.vstack([np.zeros((120, ink.shape[1])), ink])
    ink[15:105, 20:-20] = 0.45  # the form's printed header
    for row in np.flatnonzero(ink[120:].max(axis=1) > 0.5):
        if row + 120 + 1 < ink.shape[0] and ink[row + 121].max() < 0.5:
            ink[row + 120 : row + 122, 10:-10] = 1.0  # every line written on its rule
    ink[-12:-10, 30:33] = 1.0  # dust
    assert line_counts(segment_page(on_paper(ink)).boxes) == [6, 7, 7]


def test_empty_form_has_no_digits() -> None:
    assert segment_page(form([" ", " "], ruled=True, framed=True)).boxes == []


def test_rotated_form_still_loses_its_rules() -> None:
    page = rotated(form(["123456", "7890", "55555"], framed=True), 1.5)
    assert line_counts(segment_page(page).boxes) == [6, 4, 5]


def single(
    char: str, size: int, dark_on_light: bool = True, border: float = 0.2, noise: float = 1.0,
    blur: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """A crop holding one digit, `size` pixels square (strokes blurred by `blur` σ)."""
    alpha = glyph(char, 4 * size)
    side = int(max(alpha.shape) * (1 + 2 * border))
    canvas = np.zeros((side, side), np.float32)
    y, x = (side - alpha.shape[0]) // 2, (side - alpha.shape[1]) // 2
    canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha
    small = ndimage.zoom(canvas, size / side, order=1)
    if blur:
        small = ndimage.gaussian_filter(small, blur)
    page = on_paper(small, noise=noise)
    return page if dark_on_light else 255 - page


@pytest.mark.parametrize("char", list("0123456789"))
@pytest.mark.parametrize(("size", "dark"), [(16, True), (28, False), (28, True), (300, True)])
def test_a_single_digit_image_yields_one_digit(char: str, size: int, dark: bool) -> None:
    boxes = segment_page(single(char, size, dark)).boxes
    assert len(boxes) == 1 and (boxes[0].line, boxes[0].position) == (0, 0)


def test_single_digit_filling_its_image_yields_one_digit() -> None:
    for char in "0147":
        assert len(segment_page(single(char, 16, border=0.0)).boxes) == 1


def test_a_large_photo_of_one_digit_under_uneven_light() -> None:
    page = lit_unevenly(single("8", 400), darkest=0.5)
    assert len(segment_page(page).boxes) == 1


@pytest.mark.parametrize("char", ["1", "8"])
@pytest.mark.parametrize("size", [100, 160, 240])
@pytest.mark.parametrize("blur", [0.0, 3.0])
def test_a_small_blurred_photo_of_one_digit_lit_from_one_side(
    char: str, size: int, blur: float
) -> None:
    # Too small for background blocks: the light's ramp is fitted as a surface instead.
    page = lit_unevenly(single(char, size, noise=6.0, blur=blur), darkest=0.3)
    assert len(segment_page(page).boxes) == 1


@pytest.mark.parametrize("size", [64, 100, 160, 240])
@pytest.mark.parametrize("noise", [3.0, 12.0])
def test_a_small_blank_photo_lit_from_one_side_has_no_digits(size: int, noise: float) -> None:
    blank = on_paper(np.zeros((size, size), np.float32), noise=noise)
    assert segment_page(lit_unevenly(blank, darkest=0.3)).boxes == []


def test_rejects_colour_arrays() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        segment_page(np.zeros((10, 10, 3), np.uint8))
