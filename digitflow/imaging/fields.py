"""Lines of writing for the line reader: a whole image read as one field, or each line
that the page segmentation finds, cut out of the page; and a field's digits cut out for
the classifier.

Which one an image is (its layout) is decided from its size unless the user says: a
crop of one field (a check amount, a ZIP-code box, a form cell, a single digit) is small
and is read whole, since binarising and segmenting a small textured crop finds little;
a page is segmented into lines first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from digitflow.imaging.binarize import MIN_CONTRAST, Binarized, hysteresis
from digitflow.imaging.normalize import normalize_boxes
from digitflow.imaging.resolution import segment_working
from digitflow.imaging.segment import DigitBox, Segmentation, digit_height, find_digits
from digitflow.reader import field

Layout = Literal["auto", "page", "field"]
# An image no taller than this is one field: the tallest of them, with room for a large
# hand, at 300 dpi; a page of any use is far taller.
FIELD_MAX_HEIGHT = 200
# An image no larger than this either way is a small crop (a digit, a box) at any height.
FIELD_MAX_SIDE = 400
# Room round a line's digits when it is cut out of a page, in digit heights.
_LINE_MARGIN_Y = 0.35
_LINE_MARGIN_X = 0.6
# A field cut into digits for the classifier: its ink as the reader sees it, at this many
# rows (its digits about 45 high: room to cut touching ones apart), thresholded with
# hysteresis at these shares of a stroke's strength.
_CUT_ROWS = 64
_WEAK_INK = 0.55
_STRONG_INK = 0.8
# Ink lower than this share of the digits' height is a stroke closing an amount (`-`,
# `=`, `/` laid flat) or a separator, never a digit.
_FLAT = 0.45
# Writing narrower than this (its width over its height, margins included) is one digit.
_LINE_ASPECT = 1.15


@dataclass(frozen=True)
class Piece:
    """A piece of ink that the page segmentation found in a line: its columns [x0, x1) on
    the page and its ink normalised as an MNIST digit, for the classifier to read where
    it is one digit on its own."""

    x0: int
    x1: int
    digit: np.ndarray  # uint8 (28, 28)


@dataclass(frozen=True)
class LineImage:
    """One line for the reader: its input and where it lies on its page, and, for a line
    found on a page, its pieces of ink left to right.

    Input column ``c`` lies at page x ``x0 + c * x_scale``, row ``r`` at ``y0 + r * y_scale``.
    The input's margins of paper may reach past the page's edges; ``page`` is the page's
    (height, width), where a box found in the input is clipped.
    """

    line: int
    pixels: np.ndarray  # uint8 (field.HEIGHT, w), ink bright on black
    x0: float
    y0: float
    x_scale: float
    y_scale: float
    pieces: tuple[Piece, ...] = ()
    field: bool = False  # the whole image, read as one line
    page: tuple[int, int] | None = None  # (height, width) of the page it lies on

    def inputs(self) -> np.ndarray:
        """The reader's float input, in [0, 1]."""
        return self.pixels.astype(np.float32) * (1.0 / 255.0)


def layout_of(shape: tuple[int, int], layout: Layout = "auto") -> Literal["page", "field"]:
    """The layout to read an image of this shape with: the one asked for, or by its size."""
    if layout != "auto":
        return layout
    height, width = shape
    small = height <= FIELD_MAX_HEIGHT or max(height, width) <= FIELD_MAX_SIDE
    return "field" if small else "page"


def _line_image(line: int, grey: np.ndarray, top: int, left: int, dark: bool | None) -> LineImage:
    prepared = field.prepare(grey, dark)
    pixels = np.rint(prepared.pixels * 255.0).astype(np.uint8)
    return LineImage(
        line, pixels, left + prepared.x0, top + prepared.y0, prepared.x_scale, prepared.y_scale
    )


def _on_page(line: LineImage, page: tuple[int, ...]) -> LineImage:
    return replace(line, page=(int(page[0]), int(page[1])))


def field_lines(grey: np.ndarray) -> list[LineImage]:
    """The whole image as one line (a field)."""
    return [replace(_on_page(_line_image(0, grey, 0, 0, None), grey.shape), field=True)]


def page_lines(grey: np.ndarray, decoded_at: int = 1) -> list[LineImage]:
    """Each line of digits the page segmentation finds, cut out of the page, top to bottom
    (out of the page at its working size, where it is large), placed on the file's page
    (``decoded_at`` times larger than ``grey``; see ``segment_working``)."""
    working = segment_working(grey, split=False, decoded_at=decoded_at)
    segmentation = working.segmentation
    digits = normalize_boxes(segmentation)
    by_line: dict[int, list[DigitBox]] = {}
    pieces: dict[int, list[Piece]] = {}
    for box, digit in zip(segmentation.boxes, digits, strict=True):
        by_line.setdefault(box.line, []).append(box)
        pieces.setdefault(box.line, []).append(Piece(box.x0, box.x1, digit))
    lines = []
    height, width = working.pixels.shape
    for number, boxes in sorted(by_line.items()):
        size = float(np.median([b.y1 - b.y0 for b in boxes]))
        top = max(0, int(min(b.y0 for b in boxes) - _LINE_MARGIN_Y * size))
        bottom = min(height, int(max(b.y1 for b in boxes) + _LINE_MARGIN_Y * size) + 1)
        left = max(0, int(min(b.x0 for b in boxes) - _LINE_MARGIN_X * size))
        right = min(width, int(max(b.x1 for b in boxes) + _LINE_MARGIN_X * size) + 1)
        crop = working.pixels[top:bottom, left:right]
        line = _line_image(number, crop, top, left, segmentation.dark_ink)
        line = replace(_on_page(line, (height, width)), pieces=tuple(pieces[number]))
        lines.append(_enlarged(line, working.factor * decoded_at))
    return lines


def _enlarged(line: LineImage, factor: int) -> LineImage:
    """A line found on a page shrunk ``factor`` times, placed on the page as given."""
    if factor == 1:
        return line
    pieces = tuple(replace(p, x0=p.x0 * factor, x1=p.x1 * factor) for p in line.pieces)
    page = None if line.page is None else (line.page[0] * factor, line.page[1] * factor)
    return replace(line, x0=line.x0 * factor, y0=line.y0 * factor, x_scale=line.x_scale * factor,
                   y_scale=line.y_scale * factor, pieces=pieces, page=page)  # fmt: skip


def field_digits(grey: np.ndarray) -> tuple[list[DigitBox], np.ndarray] | None:
    """A field's digits, left to right, and each normalised as MNIST was, for the classifier;
    None where the field holds one digit alone or is too small to prepare (the page
    segmentation reads those best).

    The page binariser finds little in a small textured crop (a check amount on its
    security pattern): the field's ink is taken as the line reader's is (lighting, texture
    and printed rules out), and cut into digits there. The boxes are the image's own.
    """
    if min(grey.shape) < 2:
        return None
    levels, stroke = field.ink_levels(grey)
    if not _stands_out(levels, stroke):
        return None  # a blank field: its paper's noise is no digit
    ink = np.minimum(levels.astype(np.float32) * (1.0 / stroke), 1.0)
    top, bottom, left, right = field.writing_box(ink)
    aspect = (right - left) / (bottom - top)
    if aspect < _LINE_ASPECT or aspect > field.MAX_ASPECT:
        return None  # one digit; or a band too long for digits, each cut would be a speck
    cut = field.to_height(field.crop(ink, top, bottom, left, right), _CUT_ROWS)
    blobs = find_digits(hysteresis(cut, _WEAK_INK, _STRONG_INK), cut.shape)
    height = digit_height(blobs)
    blobs = sorted((b for b in blobs if b.height >= _FLAT * height), key=lambda b: b.x0)
    boxes = [DigitBox(0, k, b.x0, b.y0, b.x1, b.y1, b.mask) for k, b in enumerate(blobs)]
    digits = normalize_boxes(Segmentation(boxes, Binarized(blobs, cut.shape, True, cut)))
    scale = (bottom - top) / _CUT_ROWS
    return [_on_image(b, scale, left, top, grey.shape) for b in boxes], digits


def _stands_out(levels: np.ndarray, stroke: float) -> bool:
    """Whether a field's strokes stand out from its paper by ``MIN_CONTRAST`` grey levels,
    as the page binariser asks of a page's ink.

    Not by deviations of the paper as well: a security pattern's lines spread the paper's
    levels as widely, for its strokes' contrast, as a blank field's noise spreads them
    (the real check amounts' strokes stand 51 grey levels or more over their paper, but
    as few as 1.8 deviations; a blank field's scanner noise, 4-16 levels and 2-3).
    """
    sample = levels[:: max(1, levels.shape[0] // 64), :: max(1, levels.shape[1] // 256)]
    return stroke - float(np.median(sample)) >= MIN_CONTRAST


def _on_image(box: DigitBox, scale: float, left: int, top: int, shape: tuple[int, ...]) -> DigitBox:
    """A digit's box cut from a field prepared ``scale`` times smaller, on the field's image
    (inside it: the prepared field's margins may pass its edges)."""
    x0 = min(max(0, int(left + box.x0 * scale)), shape[1] - 1)
    y0 = min(max(0, int(top + box.y0 * scale)), shape[0] - 1)
    x1 = min(shape[1], max(x0 + 1, int(np.ceil(left + box.x1 * scale))))
    y1 = min(shape[0], max(y0 + 1, int(np.ceil(top + box.y1 * scale))))
    mask = cv2.resize(box.mask.view(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return replace(box, x0=x0, y0=y0, x1=x1, y1=y1, mask=mask.astype(bool))


def find_lines(grey: np.ndarray, layout: Layout = "auto", decoded_at: int = 1) -> list[LineImage]:
    """The lines of a greyscale image for the reader, by its layout; ``decoded_at``: a page
    decoded that many times smaller than the file's (see ``page_lines``)."""
    if layout_of(grey.shape, layout) == "field":
        return field_lines(grey)
    return page_lines(grey, decoded_at)
