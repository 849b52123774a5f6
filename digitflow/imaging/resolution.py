"""Large scans' lines found at a working size.

The imaging is made for pages at about 150 dpi (digits some 25-50 px tall), and its cost
grows with the pixels: a page scanned at 300 dpi holds four times as many, at 600 dpi
sixteen, and finding its lines took three and fourteen times as long as at 150 dpi
(decoding included) for the same lines found.
For the line reader, which reads each line at 32 px high whatever its size, a page that
long is segmented shrunk a whole number of times, to about the size it would have at
150 dpi, and its lines placed back on the page's own pixels. Where the writing is small
for its page, the shrinking stops where the digits would fall under MNIST's own size:
the page is segmented again less shrunk, or at its own size. A one-page JPEG that large
is decoded smaller in the first place (``load_pages``' ``shrink``: by 2, 4 or 8 in the
JPEG's own transform, most of the decoding's cost gone too), and decoded again whole
where its writing turns out too small (TooSmall).

The classifier's digits are cut from the page at its own size: cutting touching digits
apart and normalising each gains from the pixels (on generated forms at 300 dpi, 71 % of
lines read exactly at their own size against 62 % shrunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitflow.imaging.segment import Segmentation, segment_page

# A page's long side at about 150 dpi: a page is shrunk by its long side over this, rounded
# down (a letter or A4 page at 300 dpi by 2, at 600 dpi by 4; at 250 dpi or less, not).
WORKING_LENGTH = 1500
# The digits' median height at the working size is kept to this at least: MNIST's box.
MIN_HEIGHT = 20


@dataclass(frozen=True)
class WorkingPage:
    """A page as it was segmented: ``pixels`` is the page shrunk ``factor`` times."""

    pixels: np.ndarray
    segmentation: Segmentation
    factor: int


def shrink_factor(shape: tuple[int, ...]) -> int:
    """How many times smaller a page of this shape is segmented, by its size alone (never
    so far that its short side could no longer hold a digit of MNIST's size)."""
    return max(1, min(max(shape[:2]) // WORKING_LENGTH, min(shape[:2]) // MIN_HEIGHT))


class TooSmall(Exception):
    """The writing is too small to be read at the size the page was decoded at."""


def segment_working(page: np.ndarray, split: bool = True, decoded_at: int = 1) -> WorkingPage:
    """Segment a greyscale page at its working size (see the module's docstring).

    ``decoded_at``: the page was decoded this many times smaller than the file's own; if
    its writing is too small to read at that size, raises TooSmall (decode it whole)."""
    factor = shrink_factor(page.shape)
    while factor > 1:
        small = shrink(page, factor)
        segmentation = segment_page(small, split)
        legible = _legible_factor(segmentation, factor * decoded_at) // decoded_at
        if legible >= factor:
            return WorkingPage(small, segmentation, factor)
        factor = legible
    segmentation = segment_page(page, split)
    if decoded_at > 1 and _legible_factor(segmentation, decoded_at) < decoded_at:
        raise TooSmall(f"digits too small to read at 1/{decoded_at} of the page's size")
    return WorkingPage(page, segmentation, 1)


def shrink(page: np.ndarray, factor: int) -> np.ndarray:
    """A page ``factor`` times smaller each way (each pixel the mean of those it covers)."""
    height, width = page.shape
    return cv2.resize(page, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


def _legible_factor(segmentation: Segmentation, factor: int) -> int:
    """The largest shrink (at most ``factor``) that keeps the digits found MNIST's size:
    1 where none were found, which may be writing too small to see at this size."""
    if not segmentation.boxes:
        return 1
    height = float(np.median([b.y1 - b.y0 for b in segmentation.boxes]))
    return min(factor, int(height * factor // MIN_HEIGHT))
