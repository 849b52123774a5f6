"""A field or line image to the reader's input: ink bright on black, 32 pixels high.

The same function prepares the generated training strings and the real scans, so the
reader sees one kind of input whatever the paper, the lighting or the polarity was.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HEIGHT = 32
# The reader pools the width by this much: one output step per 4 input columns.
STRIDE = 4
# A batch of inputs is padded to a multiple of this many columns.
BATCH_MULTIPLE = 16
# Read, a line is followed by this many columns of paper, then by padding marked so
# (``reading_batch``), which the reader reads as paper to its convolutions and as the end
# of the line to its recurrent layer (``models.line_reader.reading``).
TAIL = 16
PADDING = -1.0
# How lines are read, as records of what a reader read say: one recorded otherwise (before
# padding was marked, or before a line was read again by its string's probability rather
# than its least sure step) is read again.
READING = f"padding marked after {TAIL} columns of paper; read again by the string"
# The reader's convolutions' outputs over a column depend on the 22 columns after it: a
# reading batch reaches at least this far past every line's tail, so that what they see
# there is paper, not the batch's edge.
REACH = 24
# Paper is estimated by a grey closing this wide (a share of the field's height): wider
# than the boldest stroke of a digit that fills its crop.
_CLOSING_SHARE = 0.4
_NOISE_LEVELS = 8.0  # grey levels of paper noise round the median
# Ink level: the brightest ink pixels, by percentile, saturate to 1.
_INK_PERCENTILE = 99.0
_MIN_LEVEL = 12.0  # grey levels: weaker "ink" than this is paper noise, not a stroke
# The band of writing: rows and columns holding ink this strong (a share of a stroke's).
_STRONG = 0.4
# Rows with at least this share of the busiest row's strong ink belong to the writing.
_BAND_ROWS = 0.06
# The run of rows round the busiest one must hold this share of the strong ink.
_BAND_SHARE = 0.5
# An input wider than this many times its height is squeezed to it: the longest string of
# digits is far narrower, and a batch must fit in memory whatever an image holds.
MAX_ASPECT = 48
# Horizontal runs of ink this long (a share of the field's height) are printed rules.
_RULE_SHARE = 1.5
# Room kept round the writing, in band heights: commas, flags and descenders live there.
_MARGIN = 0.2


@dataclass(frozen=True)
class Field:
    """A field ready for the reader, and where its columns lie in the source image.

    Input column ``c`` covers source columns from ``x0 + c * x_scale``, row ``r`` source
    rows from ``y0 + r * y_scale``.
    """

    pixels: np.ndarray  # float32 (HEIGHT, w), ink bright on black in [0, 1]
    x0: float
    y0: float
    x_scale: float
    y_scale: float

    def source_x(self, column: float) -> float:
        """The source image's x of an input column."""
        return self.x0 + column * self.x_scale

    def source_y(self, row: float) -> float:
        """The source image's y of an input row."""
        return self.y0 + row * self.y_scale


def dark_ink(grey: np.ndarray) -> bool:
    """True when the ink is darker than the paper (the usual scan).

    Paper is most of a field, so the median is a paper pixel; ink is what lies far from
    it, and there is more of it (counted by how far) on its own side than noise puts on
    the other.
    """
    values = np.asarray(grey, np.float32)
    median = float(np.median(values))
    spread = float(np.median(np.abs(values - median)))
    far = values - median
    margin = max(_NOISE_LEVELS, 3.0 * spread)
    darker = float(np.maximum(-far - margin, 0.0).sum())
    lighter = float(np.maximum(far - margin, 0.0).sum())
    return darker >= lighter


def ink_image(grey: np.ndarray, dark: bool | None = None) -> np.ndarray:
    """Ink strength (float32, 0 on paper, 1 at a typical stroke) of a greyscale field."""
    ink, level = ink_levels(grey, dark)
    return np.minimum(ink.astype(np.float32) * (1.0 / max(level, _MIN_LEVEL)), 1.0)


def ink_levels(grey: np.ndarray, dark: bool | None = None) -> tuple[np.ndarray, float]:
    """How far each pixel of a greyscale field lies inkwards of its paper, in grey levels
    (uint8 for a scan), and the level of a typical stroke (the brightest ink's)."""
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise ValueError(f"expected a greyscale field image (2-D, 2x2 or larger), got {grey.shape}")
    # A scan's whole grey levels are closed as they are: the same levels, twice as fast as
    # in float. Any other image (a generated string) is closed in float.
    image = grey if grey.dtype == np.uint8 else grey.astype(np.float32)
    if dark is None:
        dark = dark_ink(image)
    if not dark:
        image = 255 - image
    # A closing keeps smooth lighting as it is and fills in everything narrower than its
    # window: pen strokes, and the thin lines of a security pattern.
    side = max(3, round(_CLOSING_SHARE * image.shape[0])) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    paper = cv2.morphologyEx(image, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    # A closing never darkens: the paper is at least the image everywhere.
    ink = cv2.subtract(paper, image)
    k = min(ink.size - 1, int(ink.size * _INK_PERCENTILE / 100.0))
    return ink, _kth_smallest(ink, k)


def _kth_smallest(values: np.ndarray, k: int) -> float:
    """The k-th smallest of the values (from 0); whole grey levels are counted, not sorted."""
    if values.dtype != np.uint8:
        return float(np.partition(values.ravel(), k)[k])
    counts = np.cumsum(np.bincount(values.ravel(), minlength=256))
    return float(np.searchsorted(counts, k + 1))


def to_height(ink: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    """Resize ink to ``height`` rows, keeping the aspect ratio (area-averaged when shrinking)."""
    rows, cols = ink.shape
    width = max(1, round(cols * height / rows))
    method = cv2.INTER_AREA if rows > height else cv2.INTER_LINEAR
    resized = cv2.resize(ink, (width, height), interpolation=method)
    return np.clip(resized, 0.0, 1.0, out=resized)  # resampling rounds a hair past 1


def writing_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the band of writing, with margins; may pass the edges.

    The band is the run of rows round the busiest one whose strong ink stays above a
    small share of its, or, where that run holds too little of the ink (a rule's stub,
    a row of dots), the rows between the 5th and 95th percentile of it; columns are
    those with strong ink in the band. Stray ink of a neighbouring line, printed text or
    a pattern far from the writing is left out.
    """
    inked = (ink >= _STRONG).astype(np.uint8)
    # A printed rule is no writing, though its row is the busiest of all: leave it out
    # (its breaks, where a pattern or noise interrupts it, closed first). Past the edges
    # is paper: a rule is a rule's length of ink inside the field (by default an opening
    # takes what lies past them for ink, and a stroke half that long reaching an edge,
    # the bowl or bar of a digit that fills its crop, was left out as a rule).
    rule = max(8, int(_RULE_SHARE * ink.shape[0]))
    joined = cv2.morphologyEx(inked, cv2.MORPH_CLOSE, np.ones((1, 7), np.uint8))
    rules = cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((1, rule), np.uint8),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    strong = inked > rules
    rows = strong.sum(axis=1).astype(np.float32)
    if rows.max(initial=0.0) == 0:
        return 0, ink.shape[0], 0, ink.shape[1]
    top, bottom = _band(rows)
    cols = np.flatnonzero(strong[top:bottom].any(axis=0))
    margin = round(_MARGIN * (bottom - top)) + 1
    return top - margin, bottom + margin, int(cols[0]) - margin, int(cols[-1]) + 1 + margin


def _band(rows: np.ndarray) -> tuple[int, int]:
    """[top, bottom) of the band of writing, from the strong ink per row."""
    smooth = np.convolve(rows, np.ones(3, np.float32) / 3, mode="same")
    busy = smooth >= _BAND_ROWS * smooth.max()
    peak = int(np.argmax(smooth))
    top, bottom = peak, peak + 1
    while top > 0 and busy[top - 1]:
        top -= 1
    while bottom < len(busy) and busy[bottom]:
        bottom += 1
    if rows[top:bottom].sum() >= _BAND_SHARE * rows.sum():
        return top, bottom
    mass = np.cumsum(rows) / rows.sum()
    return int(np.searchsorted(mass, 0.05)), int(np.searchsorted(mass, 0.95)) + 1


def crop(ink: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """ink[top:bottom, left:right], with paper (0) where the box passes the edges."""
    h, w = ink.shape
    out = np.zeros((bottom - top, right - left), np.float32)
    t, b, lft, r = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    out[t - top : b - top, lft - left : r - left] = ink[t:b, lft:r]
    return out


def prepare(grey: np.ndarray, dark: bool | None = None) -> Field:
    """A greyscale field or line (dark ink or light), cut to its writing, for the reader."""
    ink = ink_image(grey, dark)
    top, bottom, left, right = writing_box(ink)
    cut = crop(ink, top, bottom, left, right)
    x_scale = y_scale = cut.shape[0] / HEIGHT
    if round(cut.shape[1] / y_scale) <= MAX_ASPECT * HEIGHT:
        pixels = to_height(cut)
    else:  # squeezed in one step: a strip of millions of columns is never brought to height
        squeezed = cv2.resize(cut, (MAX_ASPECT * HEIGHT, HEIGHT), interpolation=cv2.INTER_AREA)
        pixels = np.clip(squeezed, 0.0, 1.0, out=squeezed)
        x_scale = cut.shape[1] / pixels.shape[1]
    return Field(pixels, float(left), float(top), x_scale, y_scale)


def field_input(grey: np.ndarray, dark: bool | None = None) -> np.ndarray:
    """A greyscale field (dark ink or light) as the reader's (32, w) float32 input."""
    return prepare(grey, dark).pixels


def stretched_width(width: int, share: float) -> int:
    """The width of an input ``width`` columns wide, stretched to ``share`` of it."""
    return width if share == 1.0 else max(STRIDE, round(width * share))


def stretch(x: np.ndarray, share: float) -> np.ndarray:
    """A (32, w) reader input resized to ``share`` of its width (at least one stride)."""
    width = stretched_width(x.shape[1], share)
    if width == x.shape[1]:
        return x
    method = cv2.INTER_AREA if width < x.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(x, (width, x.shape[0]), interpolation=method)


def shear_margin(slope: float) -> int:
    """The columns a slant of ``slope`` adds to each side of an input."""
    return int(np.ceil(abs(slope) * HEIGHT / 2))


def shear(x: np.ndarray, slope: float) -> np.ndarray:
    """A (32, w) reader input slanted by ``slope`` (columns a row, about its middle row),
    widened by ``shear_margin`` on each side so that no ink is cut."""
    if not slope:
        return x
    height, width = x.shape
    margin = shear_margin(slope)
    # x' = x - slope * (y - h/2) + margin: the top row moves right for a positive slope.
    move = np.array([[1.0, -slope, slope * height / 2 + margin], [0.0, 1.0, 0.0]], np.float32)
    slanted = cv2.warpAffine(x, move, (width + 2 * margin, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)  # fmt: skip
    return np.asarray(slanted, np.float32)


def pad_batch(
    inputs: list[np.ndarray], multiple: int = BATCH_MULTIPLE
) -> tuple[np.ndarray, np.ndarray]:
    """Stack (32, w) inputs into (n, 32, W, 1), right-padded with paper; also each w.

    W is the widest input rounded up to ``multiple`` (at least one reader stride).
    """
    widths = np.array([x.shape[1] for x in inputs], np.int32)
    width = max(int(widths.max(initial=STRIDE)), STRIDE)
    width = -(-width // multiple) * multiple
    batch = np.zeros((len(inputs), HEIGHT, width, 1), np.float32)
    for k, x in enumerate(inputs):
        batch[k, :, : x.shape[1], 0] = x
    return batch, widths


def reading_batch(inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack (32, w) inputs for reading into (n, 32, W, 1), each followed by ``TAIL``
    columns of paper and marked as padding (``PADDING``) from there on; also each w.

    W is the widest input plus ``TAIL`` and ``REACH``, rounded up to ``BATCH_MULTIPLE``:
    a line reads the same in any batch, and alone.
    """
    widths = np.array([x.shape[1] for x in inputs], np.int32)
    width = reading_width(int(widths.max(initial=0)))
    batch = np.full((len(inputs), HEIGHT, width, 1), PADDING, np.float32)
    for k, x in enumerate(inputs):
        batch[k, :, : x.shape[1], 0] = x
        batch[k, :, x.shape[1] : x.shape[1] + TAIL, 0] = 0.0
    return batch, widths


def reading_width(width: int) -> int:
    """The columns a reading batch takes for an input ``width`` columns wide."""
    return -(-(max(width, STRIDE) + TAIL + REACH) // BATCH_MULTIPLE) * BATCH_MULTIPLE
