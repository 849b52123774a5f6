"""Separate ink from paper: polarity, uneven lighting, Otsu threshold, blank pages."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from digitflow.imaging.blobs import Blob, blobs_of, ink_box

# Below this contrast (grey levels, ink against paper) a page is treated as blank.
MIN_CONTRAST = 24.0
# Ink must stand out from the paper's own noise by this many standard deviations.
MIN_CONTRAST_SIGMAS = 8.0
# Paper is lighter than ink unless ink-class pixels dominate both the page and its border.
_LIGHT_INK_SCORE = 0.6
# Background blocks: about this many pixels a side, at most this many along the long side.
_BLOCK_PIXELS = 128
_MAX_BLOCKS = 8
_STATS_SIDE = 512  # background statistics are taken on a subsample this long
# Images this long or longer (and too small for blocks) get a fitted lighting surface.
_MIN_SURFACE = 64
_SURFACE_TERMS = 6
_SAMPLE_PIXELS = 50_000
_WEAK = 0.5  # hysteresis: the weak threshold, as a fraction of the way from paper to the cut


@dataclass(frozen=True)
class Binarized:
    """A page split into ink and paper: its pieces of ink, and how strong the ink is.

    `blobs` are the 8-connected pieces of ink, in raster order of their first pixel.
    Ink strength is kept as measured (`signal`), and turned into an ink image (0 on paper,
    255 at a typical stroke core) only where asked, since only the digits need it.
    """

    blobs: list[Blob]
    shape: tuple[int, int]
    dark_ink: bool  # True for dark ink on light paper (the usual scan)
    signal: np.ndarray | None = None  # float32 ink strength (paper level `paper`); None: blank
    paper: float = 0.0
    strength: float = 1.0

    @cached_property
    def mask(self) -> np.ndarray:
        """The page's ink as a bool mask."""
        mask = np.zeros(self.shape, bool)
        for b in self.blobs:
            mask[b.y0 : b.y1, b.x0 : b.x1] |= b.mask
        return mask

    def ink_at(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The ink image (uint8, bright ink on black, lighting removed) of [y0, y1) × [x0, x1)."""
        if self.signal is None:
            return np.zeros((y1 - y0, x1 - x0), np.uint8)
        crop = self.signal[y0:y1, x0:x1]
        return np.clip((crop - self.paper) * (255.0 / self.strength), 0.0, 255.0).astype(np.uint8)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of values in 0..255: pixels above it form the brighter class."""
    counts = np.bincount(np.clip(values, 0, 255).astype(np.uint8).ravel(), minlength=256)
    levels = np.arange(256, dtype=np.float64)
    weight = np.cumsum(counts, dtype=np.float64)
    total = weight[-1]
    mass = np.cumsum(counts * levels)
    below, above = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = mass[:-1] / below
        mean_above = (mass[-1] - mass[:-1]) / above
        between = below * above * (mean_below - mean_above) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    best = np.flatnonzero(between == between.max())
    return float(best.mean()) + 0.5  # ties span a flat gap: cut in its middle


def binarize(page: np.ndarray) -> Binarized:
    """Find the ink on a greyscale page, whatever its polarity and lighting."""
    # Polarity and paper are judged on a regular subsample, where the background is taken.
    step = max(1, max(page.shape) // _STATS_SIDE)
    blocks = int(np.clip(max(page.shape) // _BLOCK_PIXELS, 1, _MAX_BLOCKS))
    coarse = page[::step, ::step].astype(np.float32)
    flat = coarse - _block_background(coarse, blocks)  # polarity-free: medians ignore which is ink
    low = float(flat.min())
    cut = otsu_threshold(flat - low) + low
    dark_ink = _ink_is_dark(flat <= cut)
    paper = flat > cut if dark_ink else flat <= cut
    background = _block_background(coarse, blocks, paper, page.shape)
    if min(page.shape) >= 200:
        # Scanner noise at page resolution would otherwise make specks and ragged edges.
        # A Gaussian of σ 1 over 7 taps, edges reflected. It smooths the page itself, in its
        # own 8 bits (a quarter faster than in float): the background is smooth already,
        # so this is the blurred ink strength to within half a grey level.
        page = cv2.GaussianBlur(page, (7, 7), 1.0, borderType=cv2.BORDER_REFLECT)
    # The ink's strength over the paper, as float32 in one pass (no float copy of the page).
    if isinstance(background, float):
        background = np.full(page.shape, background, np.float32)
    first, second = (background, page) if dark_ink else (page, background)
    return _threshold_signal(cv2.subtract(first, second, dtype=cv2.CV_32F), dark_ink)


def _ink_is_dark(dark: np.ndarray) -> bool:
    """Vote on polarity: paper covers most of a page and most of its border."""
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
    score = (float(dark.mean()) + float(border.mean())) / 2.0
    return score < _LIGHT_INK_SCORE


def _threshold_signal(signal: np.ndarray, dark_ink: bool) -> Binarized:
    """Threshold ink strength with Otsu, refusing cuts that only split the paper's noise."""
    sample = np.ascontiguousarray(_sample(signal))
    cut = otsu_threshold(sample)
    low = sample[sample <= cut]
    high = sample[sample > cut]
    if low.size == 0 or high.size == 0:
        return _blank(signal.shape, dark_ink)
    paper = float(np.median(low))
    sigma = 1.4826 * float(np.median(np.abs(low - paper)))
    strength = float(np.median(high)) - paper
    if strength < max(MIN_CONTRAST, MIN_CONTRAST_SIGMAS * sigma):
        return _blank(signal.shape, dark_ink)
    cut = max(cut, paper + 3.0 * sigma)
    weak = max(paper + _WEAK * (cut - paper), paper + 4.0 * sigma)
    blobs = hysteresis(signal, weak, cut)
    return Binarized(blobs, signal.shape, dark_ink, signal, paper, strength)


def hysteresis(signal: np.ndarray, weak: float, strong: float) -> list[Blob]:
    """The pieces of ink above `weak` that hold a pixel above `strong`, as blobs.

    Faint thin strokes and thin printed rules dip below Otsu's cut here and there; keeping
    what joins confident ink keeps them whole without letting paper noise in.
    """
    ink = (signal > weak).view(np.uint8)
    # Labelled only inside the rows and columns that hold ink (a page's margins hold none):
    # the same components, numbered in the same order.
    box = ink_box(ink)
    if box is None:
        return []
    y0, y1, x0, x1 = box
    count, labels = cv2.connectedComponents(ink[y0:y1, x0:x1], connectivity=8)
    keep = np.zeros(count, bool)
    keep[labels[signal[y0:y1, x0:x1] > strong]] = True
    keep[0] = False
    return blobs_of(labels, keep, x0=x0, y0=y0)


def _sample(values: np.ndarray) -> np.ndarray:
    """A regular subsample of a few hundred thousand pixels at most, for statistics."""
    step = max(1, int(np.sqrt(values.size / _SAMPLE_PIXELS)))
    return values[::step, ::step]


def _blank(shape: tuple[int, int], dark_ink: bool) -> Binarized:
    return Binarized([], shape, dark_ink)


def _block_background(
    sample: np.ndarray,
    blocks: int,
    paper: np.ndarray | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray | float:
    """Estimate the slowly varying paper level: a median per block, smoothed and upsampled.

    `sample` is the page, or a regular subsample of it, cut into about `blocks` blocks
    along its long side; the level comes back at `shape` (the sample's by default). With
    `paper` (a mask over the sample) only those pixels count, so dense ink cannot darken
    the estimate. One block gives a single level.
    """
    every = sample  # its median stands in if no block has a paper pixel
    if paper is not None:
        sample = sample.copy()
        sample[~paper] = np.nan
    side = -(-max(sample.shape) // blocks)
    grid = _grid_median(sample, side, fallback=every)
    if grid.size == 1:
        if paper is not None and max(every.shape) >= _MIN_SURFACE and every.shape == shape:
            return _surface(every, paper, float(grid[0, 0]))
        return float(grid[0, 0])
    if min(grid.shape) >= 3:
        grid = _median_3x3(grid)  # outvote ink-filled blocks
    # Linear interpolation between block centres, held flat beyond the outer ones.
    height, width = shape or sample.shape
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


def _surface(grey: np.ndarray, paper: np.ndarray, level: float) -> np.ndarray | float:
    """The paper's level as a quadratic surface: the light across a photo too small for blocks.

    Fitted by least squares to the paper pixels, then again without those more than three
    robust deviations off it (ink the first split missed), twice. A phone's photo of one
    digit is often lit from one side; a single level would leave that ramp in the signal,
    where it would pass for ink, or hide the ink in what looks like noise.
    """
    height, width = grey.shape
    rows, cols = np.nonzero(paper)
    if rows.size < 4 * _SURFACE_TERMS:
        return level
    terms = _quadratic_terms(rows / height - 0.5, cols / width - 0.5)
    values = grey[rows, cols].astype(np.float64)
    keep = np.ones(values.size, bool)
    for _ in range(3):
        coef = np.linalg.lstsq(terms[keep], values[keep], rcond=None)[0]
        residual = values - terms @ coef
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        keep = np.abs(residual) <= 3.0 * spread + 0.5
        if keep.sum() < 4 * _SURFACE_TERMS:
            return level
    y = (np.arange(height) / height - 0.5)[:, None]
    x = (np.arange(width) / width - 0.5)[None, :]
    c0, cx, cy, cxx, cxy, cyy = coef
    return (c0 + cx * x + cy * y + cxx * x * x + cxy * x * y + cyy * y * y).astype(np.float32)


def _quadratic_terms(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Columns 1, x, y, x², xy, y² for points at (y, x)."""
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _median_3x3(grid: np.ndarray) -> np.ndarray:
    """Each block's median with its eight neighbours, the edge blocks repeated beyond the
    grid (as ``scipy.ndimage.median_filter(grid, size=3, mode="nearest")``)."""
    padded = np.pad(grid, 1, mode="edge")
    height, width = grid.shape
    around = [padded[y : y + height, x : x + width] for y in range(3) for x in range(3)]
    return np.median(np.stack(around), axis=0).astype(grid.dtype, copy=False)


def _block_of(length: int, blocks: int) -> np.ndarray:
    """Which of ``blocks`` even blocks each of ``length`` pixels falls in."""
    return (np.arange(length, dtype=np.int64) * blocks // length).astype(np.int32)


def _grid_median(sample: np.ndarray, side: int, fallback: np.ndarray) -> np.ndarray:
    """Median of each block of about side×side (NaN ignored); empty blocks take the blocks'
    median.

    The sample's known values are whole grey levels (0-255): each block's median comes from
    its histogram, a single pass over the pixels (sorting every block took 3.5 times as
    long: 7.4 ms of the 46 ms of CPU that finding a page's lines cost).
    """
    rows = -(-sample.shape[0] // side)
    cols = -(-sample.shape[1] // side)
    # Each block counts its pixels at 256 grey levels, and its unknown ones (NaN) at a 257th.
    levels = np.where(np.isnan(sample), 256, sample).astype(np.int32)
    if levels.size and (levels.min() < 0 or levels.max() > 256):
        raise ValueError("expected grey levels 0-255 in the background sample")
    # The blocks share the sample out evenly (their sides differ by a pixel at most), as
    # the upsampling between their centres takes them to: cut every `side` pixels, the last
    # block of a row or column could be a sliver of the edge, where a scan's border or the
    # fill round a rotated page outvotes the paper, and its level would spread inwards.
    levels += (_block_of(sample.shape[0], rows) * cols * 257)[:, None]
    levels += _block_of(sample.shape[1], cols) * 257
    counts = np.bincount(levels.ravel(), minlength=rows * cols * 257).reshape(rows * cols, 257)
    below = np.cumsum(counts[:, :256], axis=1)  # known pixels at or below each level
    count = below[:, -1]
    # The order statistics either side of the middle: the first level holding each.
    low = np.count_nonzero(below <= (np.maximum(count - 1, 0) // 2)[:, None], axis=1)
    high = np.count_nonzero(below <= (count // 2)[:, None], axis=1)
    grid = np.where(count > 0, (low + high) / 2, np.nan).reshape(rows, cols).astype(np.float32)
    if np.isnan(grid).all():
        return np.full((rows, cols), float(np.median(fallback)), np.float32)
    return np.where(np.isnan(grid), np.nanmedian(grid), grid)
