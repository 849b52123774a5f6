"""Separate ink from paper: polarity, uneven lighting, Otsu threshold, blank pages."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

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
_SAMPLE_PIXELS = 100_000
_WEAK = 0.5  # hysteresis: the weak threshold, as a fraction of the way from paper to the cut


@dataclass(frozen=True)
class Binarized:
    """A page split into ink and paper; `ink` is 0 on paper and 255 at a typical stroke core."""

    mask: np.ndarray  # bool, True where ink
    ink: np.ndarray  # uint8, ink bright on black, lighting removed
    dark_ink: bool  # True for dark ink on light paper (the usual scan)


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
    grey = page.astype(np.float32)
    flat = grey - _block_background(grey, None)  # polarity-free: medians ignore which is ink
    low = float(flat.min())
    cut = otsu_threshold(_sample(flat) - low) + low
    dark_ink = _ink_is_dark(flat <= cut)
    paper = flat > cut if dark_ink else flat <= cut
    background = _block_background(grey, paper)
    signal = background - grey if dark_ink else grey - background
    if min(signal.shape) >= 200:
        # Scanner noise at page resolution would otherwise make specks and ragged edges.
        # A Gaussian of σ 1 over 7 taps, edges reflected (scipy's gaussian_filter, faster).
        signal = cv2.GaussianBlur(signal, (7, 7), 1.0, borderType=cv2.BORDER_REFLECT)
    return _threshold_signal(signal, dark_ink)


def _ink_is_dark(dark: np.ndarray) -> bool:
    """Vote on polarity: paper covers most of a page and most of its border."""
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
    score = (float(dark.mean()) + float(border.mean())) / 2.0
    return score < _LIGHT_INK_SCORE


def _threshold_signal(signal: np.ndarray, dark_ink: bool) -> Binarized:
    """Threshold ink strength with Otsu, refusing cuts that only split the paper's noise."""
    sample = _sample(signal)
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
    ink = np.clip((signal - paper) * (255.0 / strength), 0.0, 255.0).astype(np.uint8)
    return Binarized(mask=_hysteresis(signal, weak, cut), ink=ink, dark_ink=dark_ink)


def _hysteresis(signal: np.ndarray, weak: float, strong: float) -> np.ndarray:
    """Pixels above `weak` that are connected to a pixel above `strong`.

    Faint thin strokes and thin printed rules dip below Otsu's cut here and there; keeping
    what joins confident ink keeps them whole without letting paper noise in.
    """
    count, labels = cv2.connectedComponents((signal > weak).view(np.uint8), connectivity=8)
    keep = np.zeros(count + 1, bool)
    keep[labels[signal > strong]] = True
    keep[0] = False
    return keep[labels]


def _sample(values: np.ndarray) -> np.ndarray:
    """A regular subsample of a few hundred thousand pixels at most, for statistics."""
    step = max(1, int(np.sqrt(values.size / _SAMPLE_PIXELS)))
    return values[::step, ::step]


def _blank(shape: tuple[int, ...], dark_ink: bool) -> Binarized:
    return Binarized(np.zeros(shape, bool), np.zeros(shape, np.uint8), dark_ink)


def _block_background(grey: np.ndarray, paper: np.ndarray | None) -> np.ndarray | float:
    """Estimate the slowly varying paper level: a median per block, smoothed and upsampled.

    With `paper` given only those pixels count, so dense ink cannot darken the estimate.
    A small image is one block, so it gets a single level.
    """
    height, width = grey.shape
    step = max(1, max(height, width) // _STATS_SIDE)
    sample = grey[::step, ::step].copy()
    overall = float(np.median(sample))
    if paper is not None:
        sample[~paper[::step, ::step]] = np.nan
    blocks = int(np.clip(max(height, width) // _BLOCK_PIXELS, 1, _MAX_BLOCKS))
    side = -(-max(sample.shape) // blocks)
    grid = _grid_median(sample, side, fallback=overall)
    if grid.size == 1:
        return float(grid[0, 0])
    if min(grid.shape) >= 3:
        grid = ndimage.median_filter(grid, size=3, mode="nearest")  # outvote ink-filled blocks
    # Linear interpolation between block centres, held flat beyond the outer ones.
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


def _grid_median(sample: np.ndarray, side: int, fallback: float) -> np.ndarray:
    """Median of each side×side block (NaN ignored); empty blocks take the blocks' median."""
    rows = -(-sample.shape[0] // side)
    cols = -(-sample.shape[1] // side)
    padded = np.full((rows * side, cols * side), np.nan, np.float32)
    padded[: sample.shape[0], : sample.shape[1]] = sample
    blocks = padded.reshape(rows, side, cols, side).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    # One sort for all blocks (NaN sorts last), then each block's middle known values.
    ordered = np.sort(blocks, axis=2)
    known = np.count_nonzero(~np.isnan(blocks), axis=2)
    low = np.take_along_axis(ordered, np.maximum(known - 1, 0)[..., None] // 2, axis=2)[..., 0]
    high = np.take_along_axis(ordered, (known // 2)[..., None], axis=2)[..., 0]
    grid = np.where(known > 0, (low + high) / 2, np.nan).astype(np.float32)
    if np.isnan(grid).all():
        return np.full((rows, cols), fallback, np.float32)
    return np.where(np.isnan(grid), np.nanmedian(grid), grid)
