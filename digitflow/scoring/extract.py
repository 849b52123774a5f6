"""One input file to what its reader reads: normalised digits for the classifier, or lines
for the line reader; per-page errors kept, not raised."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from digitflow.errors import ImageError
from digitflow.imaging import DigitBox, Page, load_pages, normalize_boxes, segment_page
from digitflow.imaging.fields import Layout, LineImage, field_digits, find_lines, layout_of
from digitflow.imaging.pages import is_pdf
from digitflow.imaging.resolution import TooSmall, shrink_factor

logger = logging.getLogger(__name__)

# PDFium (behind pypdfium2) must not be called from two threads at once, not even for
# different documents, and a PDF's pages are rendered while it is being read.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class Reading:
    """How files are read: cut into digits for the classifier, or in lines for the line
    reader; and each image's layout (a page, a single field, or decided by its size)."""

    reader: Literal["classifier", "line"] = "classifier"
    layout: Layout = "auto"


@dataclass
class FileDigits:
    """What one file yielded, and what failed: its digits (N, 28, 28) with their boxes for
    the classifier, or its lines for the line reader (with the digit of a field that holds
    just one, for the classifier to read)."""

    name: str
    pages: int = 0
    boxes: list[tuple[int, DigitBox]] = field(default_factory=list)  # (page, box)
    digits: np.ndarray = field(default_factory=lambda: np.zeros((0, 28, 28), np.uint8))
    lines: list[tuple[int, LineImage]] = field(default_factory=list)  # (page, line)
    page_errors: list[str] = field(default_factory=list)
    error: str | None = None  # the whole file is unusable
    # The bytes that were read, as read: their length and SHA-256 (None where none were).
    size: int | None = None
    sha256: str | None = None
    # Read at another size than the input was listed at: being written (or replaced) while
    # the batch ran. Not read, and not committed: the next run reads it as it is then.
    unsettled: bool = False
    # Quarantined by a failure that may pass (it could not be read, its reader died): the
    # batch's next run reads it again.
    retry: bool = False
    reader_died: bool = False  # quarantined as the reader processes died reading it

    @property
    def status(self) -> str:
        """scored, partial (some pages failed) or quarantined."""
        if self.error is not None:
            return "quarantined"
        return "partial" if self.page_errors else "scored"

    @property
    def problem(self) -> str | None:
        """What failed, in a few lines: the file's error, or its first pages' errors."""
        return self.error or pages_failed(self.page_errors)


# Page errors told one by one; a file of thousands of bad pages says how many more failed
# (its row, the run's log and its report stay readable).
PAGE_ERRORS_TOLD = 5


def pages_failed(errors: list[str]) -> str | None:
    """Page errors joined, the first ``PAGE_ERRORS_TOLD`` of them and how many more."""
    if not errors:
        return None
    told = "; ".join(errors[:PAGE_ERRORS_TOLD])
    more = len(errors) - PAGE_ERRORS_TOLD
    return told if more <= 0 else f"{told}; and {more:,} more pages that could not be read"


def quarantined(name: str, reason: str, pages: int = 0, retry: bool = False) -> FileDigits:
    """A file that yields nothing, with the reason a person can act on (and whether that
    may pass, so that the batch's next run reads it again)."""
    return FileDigits(name, pages=pages, error=reason, retry=retry)


def _bug(where: str, exc: Exception) -> str:
    """Record an error the imaging code did not expect, so one odd file cannot stop a batch."""
    logger.exception("%s: unexpected error while reading digits", where)
    return (
        f"{where}: unexpected {type(exc).__name__} while reading digits ({exc}); "
        "this is a digitflow bug: please report it with the file"
    )


def _digits(pixels: np.ndarray, reading: Reading) -> tuple[list[DigitBox], np.ndarray]:
    """A page's digit boxes and their normalised digits; a field's, all in one line.

    The classifier cuts a field of several digits from the field's own ink; a field
    of one digit (or none) the page segmentation cuts, which reads lone digits better
    (USPS 97.0 % against 96.7 %). The line reader's path asks only whether a field is one
    digit alone, as the page segmentation tells it (what its second opinion on a lone
    digit was measured with).
    """
    one_field = layout_of(pixels.shape, reading.layout) == "field"
    if one_field and reading.reader == "classifier":
        cut = field_digits(pixels)
        if cut is not None and len(cut[0]) > 1:
            return cut
    segmentation = segment_page(pixels)
    boxes = segmentation.boxes
    if one_field:
        ordered = sorted(boxes, key=lambda b: (b.x0, b.y0))
        boxes = [replace(b, line=0, position=k) for k, b in enumerate(ordered)]
        segmentation = replace(segmentation, boxes=boxes)
    return boxes, normalize_boxes(segmentation)


def _may_be_lone(pixels: np.ndarray, layout: Layout, lines: int) -> bool:
    """Whether a field read as one line may be one lone digit, which the classifier reads
    best: its digits are cut out too, and kept if the segmentation finds just one."""
    return lines == 1 and layout_of(pixels.shape, layout) == "field"


def _working_scale(layout: Layout) -> Callable[[tuple[int, int]], int]:
    """How many times smaller a page may be decoded to find its lines: its working size
    (see ``imaging.resolution``); a field is decoded whole."""
    return lambda shape: shrink_factor(shape) if layout_of(shape, layout) == "page" else 1


def _lines(
    pixels: np.ndarray, scale: int, layout: Layout, whole: Callable[[], Page]
) -> list[LineImage]:
    """A page's lines for the reader, placed on the file's own pixels (``scale`` times larger
    than ``pixels``). A page decoded smaller whose writing turns out too small to read there
    is decoded again ``whole``."""
    if scale == 1:
        return find_lines(pixels, layout)
    try:
        return find_lines(pixels, "page", decoded_at=scale)
    except TooSmall:
        again = whole().pixels
        assert again is not None  # a one-page file decodes whole or raises
        return find_lines(again, "page")


# More than a page of digits holds (an A4 page at 150 dpi packed edge to edge with digits
# MNIST's size holds about 2,700 in 60 rows), or a file of many such pages: a pattern, a
# halftone or a file made to multiply the work, whose results would fill the memory of the
# process that holds a shard's files.
MAX_PAGE_DIGITS = 4_000
MAX_PAGE_LINES = 400
MAX_FILE_DIGITS = 100_000
MAX_FILE_LINES = 10_000  # 500 pages of 20 lines


def _read_pages(
    result: FileDigits, pages: Iterable[Page], reading: Reading, whole: Callable[[], Page]
) -> list[np.ndarray]:
    """Find each page's digits (or lines) into ``result``; returns the pages' digit arrays.
    ``whole``: the file's one page decoded whole, where it was decoded smaller."""
    arrays = []
    for page in pages:
        if len(result.boxes) >= MAX_FILE_DIGITS or len(result.lines) >= MAX_FILE_LINES:
            result.page_errors.append(f"{result.name} pages {page.index} and after: not read, as "
                                      f"the pages before gave {MAX_FILE_DIGITS:,} digits or "
                                      f"{MAX_FILE_LINES:,} lines, more than a file of scans "
                                      "holds; split the file to read them")  # fmt: skip
            break
        result.pages += 1
        if page.pixels is None:
            result.page_errors.append(page.error or f"{result.name} page {page.index}: unreadable")
            continue
        try:
            found = _read_page(page, reading, whole)
        except Exception as exc:
            result.page_errors.append(_bug(f"{result.name} page {page.index}", exc))
            continue
        lines, boxes, digits = found
        if len(lines) > MAX_PAGE_LINES or len(boxes) > MAX_PAGE_DIGITS:
            what = (
                f"{len(lines):,} lines" if len(lines) > MAX_PAGE_LINES else f"{len(boxes):,} digits"
            )
            result.page_errors.append(f"{result.name} page {page.index}: {what}, more than a page "
                                      "of digits holds: not read (a pattern, a halftone or a "
                                      "photograph?)")  # fmt: skip
            continue
        result.lines.extend((page.index, line) for line in lines)
        result.boxes.extend((page.index, box) for box in boxes)
        if digits is not None:
            arrays.append(digits)
    return arrays


def _read_page(
    page: Page, reading: Reading, whole: Callable[[], Page]
) -> tuple[list[LineImage], list[DigitBox], np.ndarray | None]:
    """A page's lines (for the line reader) and digits (for the classifier: every digit;
    for the line reader: a field's one digit alone, if it is alone)."""
    assert page.pixels is not None
    lines: list[LineImage] = []
    if reading.reader == "line":
        lines = _lines(page.pixels, page.scale, reading.layout, whole)
        # A page decoded smaller is a page, never a field of one digit.
        if page.scale > 1 or not _may_be_lone(page.pixels, reading.layout, len(lines)):
            return lines, [], None
    boxes, digits = _digits(page.pixels, reading)
    if reading.reader == "line" and len(boxes) != 1:
        return lines, [], None  # for lines, a field's digit is kept only if it is alone
    return lines, boxes, digits


def extract(data: bytes, name: str, reading: Reading = Reading()) -> FileDigits:
    """Decode every page of a file, find and normalise its digits (or its lines).

    Never raises for a bad file: an unreadable file comes back quarantined with its
    reason, a multi-page file with some bad pages comes back partial.
    """
    result = FileDigits(name)
    try:
        with _PDFIUM if is_pdf(data) else nullcontext():
            shrink = _working_scale(reading.layout) if reading.reader == "line" else None
            pages = load_pages(data, name, shrink=shrink)
            arrays = _read_pages(result, pages, reading, lambda: next(load_pages(data, name)))
    except ImageError as exc:
        return quarantined(name, str(exc), result.pages)
    except Exception as exc:
        return quarantined(name, _bug(name, exc), result.pages)
    if result.pages == 0:
        return quarantined(name, f"{name}: the file holds no pages")
    if len(result.page_errors) == result.pages:
        return quarantined(name, pages_failed(result.page_errors) or "", result.pages)
    if arrays:
        result.digits = np.concatenate(arrays)
    return result
