"""Large scans' lines found at a working size: the same lines as at 150 dpi, placed on the
page as given; small writing on a large page is not shrunk out of sight."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digitflow.imaging import load_pages, page_to_digits, segment_page
from digitflow.imaging.fields import find_lines
from digitflow.imaging.resolution import (
    MIN_HEIGHT,
    WORKING_LENGTH,
    TooSmall,
    segment_working,
    shrink_factor,
)
from digitflow.samples import HARD, load_mnist, make_page
from digitflow.scoring.extract import Reading, extract
from tests.imaging.synthetic import ink_lines, line_counts, on_paper


@pytest.fixture(scope="module")
def form(mnist_dir: Path) -> np.ndarray:
    """A generated form page at about 150 dpi (small hands, touching digits)."""
    page = make_page(load_mnist(mnist_dir), np.random.default_rng(5), HARD).pixels
    assert max(page.shape) >= WORKING_LENGTH, "two of it must be long enough to shrink"
    return page


def scanned_at(page: np.ndarray, times: int) -> np.ndarray:
    """The page as a scanner would give it at ``times`` its resolution."""
    return cv2.resize(page, None, fx=times, fy=times, interpolation=cv2.INTER_CUBIC)


def test_the_shrink_follows_the_long_side() -> None:
    assert shrink_factor((1754, 1240)) == 1  # A4 at 150 dpi
    assert shrink_factor((2923, 2067)) == 1  # A4 at 250 dpi
    assert shrink_factor((3508, 2480)) == 2  # A4 at 300 dpi
    assert shrink_factor((2550, 3300)) == 2  # letter at 300 dpi, landscape
    assert shrink_factor((7016, 4960)) == 4  # A4 at 600 dpi
    assert shrink_factor((120, 90_000)) == 6  # a long strip: no side shrunk under a digit
    assert shrink_factor((10, 60_000)) == 1


def test_a_long_thin_strip_read_as_a_page_is_read_not_broken() -> None:
    strip = on_paper(ink_lines(["31415926535897932384626433832795"], size=24, margin=6))
    strip = np.pad(strip, ((0, 0), (0, 3200 - strip.shape[1])), constant_values=strip[0, 0])
    assert strip.shape[0] <= 80 and shrink_factor(strip.shape) == 2
    data = io.BytesIO()
    Image.fromarray(strip).save(data, "PNG")
    result = extract(data.getvalue(), "strip.png", Reading("line", "page"))
    assert result.status == "scored" and len(result.lines) == 1
    data = io.BytesIO()
    Image.fromarray(np.full((10, 60_000), 230, np.uint8)).save(data, "PNG")
    result = extract(data.getvalue(), "thin.png", Reading("line", "page"))
    assert result.status == "scored" and result.lines == [], result.error


@pytest.mark.parametrize("times", [2, 4])
def test_a_large_scan_gives_the_lines_of_its_150_dpi_page_placed_on_its_own_pixels(
    form: np.ndarray, times: int
) -> None:
    large = scanned_at(form, times)
    assert segment_working(large, split=False).factor == times
    small_lines, lines = find_lines(form), find_lines(large)
    assert len(lines) == len(small_lines) >= 3
    for line, small in zip(lines, small_lines, strict=True):
        # Cut from a page resampled twice over: its edges may fall a column or two apart.
        width = small.pixels.shape[1]
        assert abs(line.pixels.shape[1] - width) <= 4
        size = (width, small.pixels.shape[0])
        pixels = cv2.resize(line.pixels, size, interpolation=cv2.INTER_AREA)
        assert np.abs(pixels.astype(np.int16) - small.pixels).mean() < 12.0
        assert abs(line.x0 - times * small.x0) <= 2 * times
        assert abs(line.y0 - times * small.y0) <= 2 * times
        assert line.x_scale == pytest.approx(times * small.x_scale, rel=0.05)
        assert len(line.pieces) == len(small.pieces)
        for piece, small_piece in zip(line.pieces, small.pieces, strict=True):
            assert abs(piece.x0 - times * small_piece.x0) <= 2 * times
            assert abs(piece.x1 - times * small_piece.x1) <= 2 * times


def test_small_writing_on_a_large_page_is_segmented_at_its_own_size() -> None:
    # 28 px digits on a page 3,200 px long: halved, they would be 14 px, under MNIST's.
    ink = ink_lines(["0123456789", "4711", "31415926"], size=28, pitch=3.0)
    canvas = np.zeros((3200, 2200), np.float32)
    canvas[400 : 400 + ink.shape[0], 300 : 300 + ink.shape[1]] = ink
    page = on_paper(canvas)
    assert shrink_factor(page.shape) == 2
    working = segment_working(page)
    assert working.factor == 1 and working.pixels is page
    assert line_counts(working.segmentation.boxes) == line_counts(segment_page(page).boxes)
    assert line_counts(working.segmentation.boxes) == [10, 4, 8]


def test_writing_large_enough_for_part_of_the_shrink_is_shrunk_that_far() -> None:
    # 100 px digits on a page 7,000 px long: shrunk 4 times they would be 25 px; 5 px
    # digits' worth of margin to spare would not be: a shrink of 4 is kept, not 1.
    ink = ink_lines(["2718", "1618"], size=100, pitch=3.0)
    canvas = np.zeros((7000, 1200), np.float32)
    canvas[1000 : 1000 + ink.shape[0], 100 : 100 + ink.shape[1]] = ink
    page = on_paper(canvas)
    assert shrink_factor(page.shape) == 4
    working = segment_working(page)
    assert working.factor == 4
    heights = [b.y1 - b.y0 for b in working.segmentation.boxes]
    assert min(heights) >= MIN_HEIGHT and line_counts(working.segmentation.boxes) == [4, 4]


def test_a_blank_large_page_is_looked_at_whole() -> None:
    page = on_paper(np.zeros((3400, 2400), np.float32))
    working = segment_working(page)
    assert working.factor == 1 and working.segmentation.boxes == []


def test_a_300_dpi_file_is_read_in_lines_on_its_own_pixels(form: np.ndarray) -> None:
    large = scanned_at(form, 2)
    data = io.BytesIO()
    Image.fromarray(large).save(data, "PNG")
    lines = extract(data.getvalue(), "form-300dpi.png", Reading("line")).lines
    assert [line.line for _, line in lines] == [line.line for line in find_lines(form)]
    right = max(line.x0 + line.pixels.shape[1] * line.x_scale for _, line in lines)
    small_right = max(line.x0 + line.pixels.shape[1] * line.x_scale for line in find_lines(form))
    assert 1.9 * small_right < right <= large.shape[1] + 1


def test_the_classifier_cuts_digits_from_the_page_at_its_own_size(form: np.ndarray) -> None:
    large = scanned_at(form, 2)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in page_to_digits(large)[0]] == [
        (b.x0, b.y0, b.x1, b.y1) for b in segment_page(large).boxes
    ]


def jpeg(pixels: np.ndarray, **options: object) -> bytes:
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, "JPEG", quality=90, **options)
    return data.getvalue()


@pytest.mark.parametrize("times", [2, 4])
def test_a_large_jpeg_is_decoded_at_its_working_size_when_asked(
    form: np.ndarray, times: int
) -> None:
    large = scanned_at(form, times)
    data = jpeg(large)
    page = next(load_pages(data, "large.jpg", shrink=shrink_factor))
    assert page.scale == times and page.pixels is not None
    height, width = large.shape
    assert page.pixels.shape == (-(-height // times), -(-width // times))
    whole = next(load_pages(data, "large.jpg"))
    assert whole.scale == 1 and whole.pixels is not None and whole.pixels.shape == large.shape
    # The JPEG's own transform shrinks about as a mean of the pixels would.
    shrunk = cv2.resize(
        whole.pixels, (width // times, height // times), interpolation=cv2.INTER_AREA
    )
    smaller = page.pixels[: shrunk.shape[0], : shrunk.shape[1]].astype(np.int16)
    assert np.abs(smaller - shrunk).mean() < 3.0


def test_only_a_one_page_jpeg_is_decoded_smaller(form: np.ndarray) -> None:
    large = scanned_at(form, 2)
    png = io.BytesIO()
    Image.fromarray(large).save(png, "PNG")
    page = next(load_pages(png.getvalue(), "large.png", shrink=shrink_factor))
    assert page.scale == 1 and page.pixels is not None and page.pixels.shape == large.shape
    assert next(load_pages(jpeg(form), "form.jpg", shrink=shrink_factor)).scale == 1


def test_a_sideways_jpeg_is_asked_about_as_the_page_stands() -> None:
    stored = np.full((1600, 3200), 230, np.uint8)  # stored wide, shown tall
    exif = Image.Exif()
    exif[0x0112] = 6
    seen: list[tuple[int, int]] = []

    def shrink(shape: tuple[int, int]) -> int:
        seen.append(shape)
        return 2

    page = next(load_pages(jpeg(stored, exif=exif.tobytes()), "phone.jpg", shrink=shrink))
    assert seen == [(3200, 1600)]
    assert page.scale == 2 and page.pixels is not None and page.pixels.shape == (1600, 800)


def test_a_large_jpeg_is_read_in_lines_on_its_own_pixels(form: np.ndarray) -> None:
    large = scanned_at(form, 2)
    lines = extract(jpeg(large), "form-300dpi.jpg", Reading("line")).lines
    small = find_lines(form)
    assert len(lines) == len(small)
    for (_, line), small_line in zip(lines, small, strict=True):
        assert abs(line.x0 - 2 * small_line.x0) <= 4 and abs(line.y0 - 2 * small_line.y0) <= 4
        assert line.x_scale == pytest.approx(2 * small_line.x_scale, rel=0.05)


def test_small_writing_in_a_large_jpeg_is_decoded_again_whole() -> None:
    ink = ink_lines(["0123456789", "4711", "31415926"], size=28, pitch=3.0)
    canvas = np.zeros((3200, 2200), np.float32)
    canvas[400 : 400 + ink.shape[0], 300 : 300 + ink.shape[1]] = ink
    data = jpeg(on_paper(canvas))
    page = next(load_pages(data, "small.jpg", shrink=shrink_factor))
    assert page.scale == 2 and page.pixels is not None
    with pytest.raises(TooSmall):  # 14 px digits at half size: under MNIST's
        find_lines(page.pixels, "page", decoded_at=2)
    result = extract(data, "small.jpg", Reading("line"))
    assert result.status == "scored", result.error or result.page_errors
    lines = result.lines
    assert [len(line.pieces) for _, line in lines] == [10, 4, 8]
    assert 300 < lines[0][1].x0 < 400  # on the page's own pixels, where the writing starts


def test_a_truncated_large_jpeg_is_quarantined_with_its_reason(form: np.ndarray) -> None:
    data = jpeg(scanned_at(form, 2))
    result = extract(data[: len(data) // 2], "cut.jpg", Reading("line"))
    assert result.status == "quarantined"
    assert "truncated or corrupt" in (result.error or "") and "bug" not in (result.error or "")
