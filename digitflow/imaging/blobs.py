"""Ink blobs, and the two repairs they need: merging broken digits, splitting touching ones."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Broken pieces merge only while the result still has a digit's proportions.
_MAX_MERGED_HEIGHT = 1.35
_MAX_MERGED_WIDTH = 1.3
_MAX_MERGE_GAP = 0.3
# A piece shorter than this (in digit heights) cannot be a digit by itself.
_FRAGMENT_HEIGHT = 0.55
# A blob this much wider than tall (and than a digit is high) holds touching digits.
_SPLIT_WIDTH = 1.25
_MIN_PIECE_WIDTH = 0.3
# …and at least this many typical digit widths, judged from this many other digits.
_SPLIT_TYPICAL = 1.5
# A cut through a column with more ink than this share of a typical column is no waist.
_WAIST = 0.45
_MIN_PEERS = 3
_BLOCK = 256
_LONE_WIDTH = 1.5


@dataclass(frozen=True)
class Blob:
    """Ink inside the box [x0, x1) × [y0, y1) of a page; `mask` covers exactly that box."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.y1 - self.y0

    @cached_property
    def area(self) -> int:
        """Ink pixels in the blob."""
        return int(np.count_nonzero(self.mask))

    def union(self, other: Blob) -> Blob:
        """One blob holding the ink of both."""
        x0, y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        x1, y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for part in (self, other):
            mask[part.y0 - y0 : part.y1 - y0, part.x0 - x0 : part.x1 - x0] |= part.mask
        return Blob(x0, y0, x1, y1, mask)

    def crop(self, left: int, right: int) -> Blob | None:
        """The ink between columns [left, right) of the box, trimmed tight; None if empty."""
        part = self.mask[:, left:right]
        box = ink_box(part)
        if box is None:
            return None
        r0, r1, c0, c1 = box
        x0, y0 = self.x0 + left + c0, self.y0 + r0
        return Blob(x0, y0, x0 + c1 - c0, y0 + r1 - r0, part[r0:r1, c0:c1])


def ink_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box (y0, y1, x0, x1) round a mask's ink; None for a mask without any."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def blobs_of(
    labels: np.ndarray, keep: np.ndarray | None = None, x0: int = 0, y0: int = 0
) -> list[Blob]:
    """The labelled pieces (those marked in `keep`, or all) as blobs on the page.

    (x0, y0) is where the labelling's corner lies on the page. The blobs come in raster
    order of their first pixel, the order scipy numbers components in.
    """
    # find_objects is far cheaper than OpenCV's statistics, which are mostly unused here.
    # Imported here: loading scipy.ndimage costs a quarter of a second, which the scoring
    # process, whose readers find the blobs, need not pay before its first page.
    from scipy.ndimage import find_objects

    blobs = []
    for index, where in enumerate(find_objects(labels), start=1):
        if where is not None and (keep is None or keep[index]):
            rows, cols = where
            left, top = x0 + cols.start, y0 + rows.start
            piece = labels[where] == index
            blobs.append(Blob(left, top, x0 + cols.stop, y0 + rows.stop, piece))
    blobs.sort(key=lambda b: (b.y0, b.x0 + int(np.argmax(b.mask[0]))))
    return blobs


def merge_pieces(blobs: list[Blob], height: float) -> list[Blob]:
    """Join the pieces of broken digits, nearest pair first, while they keep a digit's shape."""
    blobs = list(blobs)
    if len(blobs) < 2:
        return blobs
    boxes = np.zeros((2 * len(blobs), 4))  # each merge adds one box: room for them all
    boxes[: len(blobs)] = [(b.x0, b.y0, b.x1, b.y1) for b in blobs]
    alive = np.zeros(len(boxes), bool)
    alive[: len(blobs)] = True
    queue = _initial_merges(boxes[: len(blobs)], height)
    heapq.heapify(queue)
    while queue:
        _, i, j = heapq.heappop(queue)
        if not (alive[i] and alive[j]):
            continue  # one of them has already been merged into something else
        new = len(blobs)
        blobs.append(blobs[i].union(blobs[j]))
        boxes[new] = (blobs[new].x0, blobs[new].y0, blobs[new].x1, blobs[new].y1)
        alive[[i, j]], alive[new] = False, True
        costs = _merge_costs(boxes[new : new + 1], boxes[:new], height)[0]
        for k in np.flatnonzero(np.isfinite(costs) & alive[:new]):
            heapq.heappush(queue, (float(costs[k]), int(k), new))
    return [b for b, keep in zip(blobs, alive, strict=False) if keep]


def _initial_merges(boxes: np.ndarray, height: float) -> list[tuple[float, int, int]]:
    """(gap, i, j) for every mergeable pair, comparing only boxes that start near each other."""
    order = np.argsort(boxes[:, 0], kind="stable")
    starts = boxes[order, 0]
    reach = _MAX_MERGED_WIDTH * height  # boxes further apart cannot fit in one digit
    pairs = []
    for first in range(0, len(order), _BLOCK):
        rows = order[first : first + _BLOCK]
        lo = np.searchsorted(starts, starts[first] - reach, "left")
        hi = np.searchsorted(starts, starts[min(first + _BLOCK, len(order)) - 1] + reach, "right")
        columns = order[lo:hi]
        costs = _merge_costs(boxes[rows], boxes[columns], height)
        for r, c in zip(*np.nonzero(np.isfinite(costs)), strict=True):
            if rows[r] < columns[c]:
                pairs.append((float(costs[r, c]), int(rows[r]), int(columns[c])))
    return pairs


def _merge_costs(a: np.ndarray, b: np.ndarray, height: float) -> np.ndarray:
    """Gap between each box in `a` and each in `b` that are pieces of one digit; else inf.

    Pieces are stacked in the same columns (the bar and body of a 5), one inside the
    other, or short and beside a digit-sized piece (half of a 4).
    """
    ax0, ay0, ax1, ay1 = (a[:, k, None] for k in range(4))
    bx0, by0, bx1, by1 = (b[None, :, k] for k in range(4))
    overlap_x = np.minimum(ax1, bx1) - np.maximum(ax0, bx0)
    overlap_y = np.minimum(ay1, by1) - np.maximum(ay0, by0)
    span_x = np.maximum(ax1, bx1) - np.minimum(ax0, bx0)
    span_y = np.maximum(ay1, by1) - np.minimum(ay0, by0)
    narrow = np.minimum(ax1 - ax0, bx1 - bx0)
    short = np.minimum(ay1 - ay0, by1 - by0)
    gap = np.maximum(np.maximum(-overlap_x, -overlap_y), 0.0)
    # Side-by-side digits share most of their rows; stacked pieces barely any.
    stacked = (overlap_x >= 0.5 * narrow) & (overlap_y <= 0.35 * short)
    inside = (overlap_x >= 0.9 * narrow) & (overlap_y >= 0.9 * short)
    a_tall = ay1 - ay0 >= _FRAGMENT_HEIGHT * height
    b_tall = by1 - by0 >= _FRAGMENT_HEIGHT * height
    # A short piece beside a digit-sized one, or short pieces that together are digit-tall.
    fragment = ~(a_tall & b_tall) & (a_tall | b_tall | (span_y >= _FRAGMENT_HEIGHT * height))
    fits = (span_y <= _MAX_MERGED_HEIGHT * height) & (span_x <= _MAX_MERGED_WIDTH * height)
    ok = (gap <= _MAX_MERGE_GAP * height) & fits & (stacked | inside | fragment)
    return np.where(ok, gap, np.inf)


def split_wide(blobs: list[Blob], height: float) -> list[Blob]:
    """Cut blobs too wide for one digit at the thinnest columns between the digits they hold.

    A blob much wider than tall is cut without question. One only somewhat wider than
    this page's digits is cut in two only where a clear waist separates two digit-sized
    halves, since some single digits (a flat 2, a wide 0) are that wide too.
    """
    # The width of a usual digit: not a 1 (too narrow) nor anything wider than tall.
    singles = [
        b.width for b in blobs if b.height >= 0.5 * height and 0.4 * height <= b.width <= height
    ]
    # Without other digits to compare with, only a blob over twice as wide as tall is split.
    typical = float(np.median(singles)) if len(singles) >= _MIN_PEERS else _LONE_WIDTH * height
    result: list[Blob] = []
    for blob in blobs:
        if blob.width < _SPLIT_TYPICAL * typical:
            result.append(blob)
        elif blob.width > _SPLIT_WIDTH * max(0.85 * blob.height, height):
            most = max(2, int(blob.width / (_MIN_PIECE_WIDTH * height)))
            result.extend(_pieces(blob, _cuts(blob, _count(blob, typical, most))))
        else:
            result.extend(_cut_at_waist(blob, height))
    return result


def _count(blob: Blob, typical: float, most: int) -> int:
    """How many digits a wide blob holds.

    Width alone cannot tell two wide digits (0, 2) from three narrow ones, so when it is
    in between, the smaller count wins if each of its cuts crosses just one stroke (a join).
    """
    estimate = blob.width / typical
    fewer, nearest = (int(np.clip(int(estimate + f), 2, most)) for f in (0.25, 0.5))
    if fewer < nearest and all(_strokes(blob, c) == 1 for c in _cuts(blob, fewer)):
        return fewer
    return nearest


def _cuts(blob: Blob, count: int) -> list[int]:
    """Columns that split a blob into `count` pieces: ink-projection minima near even spacing."""
    profile = _profile(blob)
    step = blob.width / count
    cuts = [0]
    for k in range(1, count):
        centre = k * step
        lo = max(cuts[-1] + 1, int(centre - 0.35 * step))
        hi = min(blob.width - 1, int(centre + 0.35 * step) + 1)
        if hi > lo:
            cuts.append(_thinnest(profile, lo, hi, centre, step))
    return cuts[1:]


def _pieces(blob: Blob, cuts: list[int]) -> list[Blob]:
    pieces = (blob.crop(a, b) for a, b in itertools.pairwise([0, *cuts, blob.width]))
    return [p for p in pieces if p is not None]


def _cut_at_waist(blob: Blob, height: float) -> list[Blob]:
    """Cut in two at a thin column between two digit-sized halves, else keep whole."""
    profile = _profile(blob)
    half = blob.width / 2
    column = _thinnest(profile, int(0.3 * blob.width), int(0.7 * blob.width) + 1, half, half)
    if profile[column] > _WAIST * float(np.median(profile[profile > 0])):
        return [blob]
    if _strokes(blob, column) > 1:
        return [blob]  # two strokes crossing the cut: the middle of a 0, not a join
    pieces = _pieces(blob, [column])
    if len(pieces) != 2 or any(p.height < 0.5 * height for p in pieces):
        return [blob]
    return pieces


def _strokes(blob: Blob, column: int) -> int:
    """How many separate runs of ink cross a column of the blob."""
    ink = blob.mask[:, column].astype(np.int8)
    return int(np.count_nonzero(np.diff(ink) == 1)) + int(ink[0])


def _profile(blob: Blob) -> np.ndarray:
    """Ink per column, lightly smoothed so a single stray pixel does not make a waist."""
    return np.convolve(blob.mask.sum(axis=0).astype(float), [1, 2, 1], mode="same")


def _thinnest(profile: np.ndarray, lo: int, hi: int, centre: float, step: float) -> int:
    """Column in [lo, hi) with least ink; among equals the one nearest `centre`."""
    columns = np.arange(lo, hi)
    score = profile[lo:hi] + np.abs(columns - centre) / (step * 10)
    return int(columns[np.argmin(score)])
