"""Printed form rules: find the page's skew and remove long straight lines of ink."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Skew search: ±5° coarsely, then finely round the best (values are tangents).
_COARSE = np.linspace(-0.0875, 0.0875, 21)
_FINE = np.linspace(-0.0045, 0.0045, 7)
_MAX_POINTS = 100_000
# Rules broken by noise or faint printing are bridged across gaps this long first.
_BRIDGE = 9
_EDGE = 2


def estimate_skew(mask: np.ndarray) -> float:
    """Tangent of the page's skew: the shear that makes rows of ink most sharply aligned."""
    ys, xs = np.nonzero(mask)
    if ys.size < 2:
        return 0.0
    step = max(1, ys.size // _MAX_POINTS)
    ys, xs = ys[::step].astype(np.float64), (xs[::step] - mask.shape[1] // 2).astype(np.float64)
    best = _best_shear(ys, xs, _COARSE)
    return _best_shear(ys, xs, best + _FINE)


def _best_shear(ys: np.ndarray, xs: np.ndarray, candidates: np.ndarray) -> float:
    """The candidate whose row projection has the most energy (sharpest peaks)."""
    offset = int(np.abs(xs).max() * np.abs(candidates).max()) + 1
    # Try the smallest shears first so that a tie (an unrotated page) keeps the page level.
    candidates = candidates[np.argsort(np.abs(candidates), kind="stable")]
    energy = []
    for tangent in candidates:
        # floor(v + 0.5), not rint: rint's round-half-to-even would pair up rows at
        # tangent 0 and fake a sharp peak there.
        rows = np.floor(ys - xs * tangent + (offset + 0.5)).astype(np.int64)
        counts = np.bincount(rows).astype(np.float64)
        energy.append(float(counts @ counts))
    return float(candidates[int(np.argmax(energy))])


def remove_rules(mask: np.ndarray, length: int, skew: float) -> np.ndarray:
    """The mask without straight runs at least `length` long along or across the skew."""
    # Rotating a page by an angle turns its vertical lines by the same angle the other way.
    lines = _runs_along_rows(mask, length, skew) | _runs_along_rows(mask.T, length, -skew).T
    return mask & ~lines


def _runs_along_rows(mask: np.ndarray, length: int, skew: float) -> np.ndarray:
    """Pixels on runs at least `length` long along rows that slope by `skew`.

    A morphological opening with a line, done on the mask sheared so the rows are level.
    """
    columns = np.arange(mask.shape[1]) - mask.shape[1] // 2
    shifts = np.floor(columns * skew + 0.5).astype(np.intp)
    straight = _shear(mask, shifts)
    ink = straight.view(np.uint8)
    bridged = _erode(_dilate(ink, _BRIDGE), _BRIDGE) | ink
    runs = _dilate(_erode(bridged, length), length)
    # A rotated rule's edges are ragged steps too short to be runs: take a band round it.
    band = ndimage.maximum_filter1d(runs, 2 * _EDGE + 1, axis=0).astype(bool)
    return _shear(band & straight, -shifts)


def _erode(ink: np.ndarray, size: int) -> np.ndarray:
    # Beyond the edge there is no ink, so a run cut by the border of a crop stays short.
    return ndimage.minimum_filter1d(ink, size, axis=1, mode="constant", cval=0)


def _dilate(ink: np.ndarray, size: int) -> np.ndarray:
    return ndimage.maximum_filter1d(ink, size, axis=1, mode="constant", cval=0)


def _shear(mask: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move column x of the mask up by shifts[x] rows (what falls off is dropped)."""
    if not shifts.any():
        return mask.copy()
    pad = int(np.abs(shifts).max())
    padded = np.pad(mask, ((pad, pad), (0, 0)))
    rows = np.arange(mask.shape[0], dtype=np.intp)[:, None] + pad + shifts[None, :]
    return np.take_along_axis(padded, rows, axis=0)
