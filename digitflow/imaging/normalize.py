"""Normalise digits the way MNIST was made: 20×20 box, centre of mass at the 28×28 centre."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from digitflow.imaging.blobs import ink_box
from digitflow.imaging.segment import DigitBox, Segmentation, segment_page

SIDE = 28
BOX = 20
# MNIST's centres of mass average (14.0, 14.0) in pixel-index coordinates.
CENTRE = 14.0
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def normalize_digit(ink: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One digit as a 28×28 uint8 MNIST image (ink 255 on 0) from its ink-bright crop.

    `ink` is bright where the stroke is (any numeric dtype); `mask`, if given, marks the
    digit's own ink, so strokes of neighbours that reach into the box are left out.
    """
    weights = np.asarray(ink, dtype=np.float32)
    if mask is None:
        mask = weights > 0.5 * float(weights.max(initial=0.0))
    # One pixel round the thresholded stroke keeps its anti-aliased edge.
    weights = weights * cv2.dilate(mask.astype(np.uint8), _CROSS)
    box = ink_box(mask)
    if box is None:
        return np.zeros((SIDE, SIDE), np.uint8)
    y0, y1, x0, x1 = box
    tight = weights[y0:y1, x0:x1]
    core = _median(tight[mask[y0:y1, x0:x1]])
    # NIST strokes were solid: saturate the typical stroke pixel, keep the edges grey.
    tight = np.clip(tight * (255.0 / max(core, 1.0)), 0.0, 255.0)
    return _centre(_fit(tight))


def _median(values: np.ndarray) -> float:
    """np.median of a non-empty 1-D array, without its per-call overhead."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    low, high = np.partition(values, (half - 1, half))[half - 1 : half + 1]
    return (float(low) + float(high)) / 2.0


def _fit(tight: np.ndarray) -> np.ndarray:
    """Resize so the longer side is 20, keeping the aspect ratio; area-average when shrinking."""
    height, width = tight.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    resized = Image.fromarray(tight.astype(np.float32), mode="F").resize(size, method)
    return np.asarray(resized)


def _centre(fitted: np.ndarray) -> np.ndarray:
    """Place in 28×28 so that the centre of mass lands on the centre (rounded shift)."""
    total = float(fitted.sum())
    height, width = fitted.shape
    if total <= 0:
        return np.zeros((SIDE, SIDE), np.uint8)
    cy = float(fitted.sum(axis=1) @ np.arange(height)) / total
    cx = float(fitted.sum(axis=0) @ np.arange(width)) / total
    top, left = round(CENTRE - cy), round(CENTRE - cx)
    canvas = np.zeros((SIDE, SIDE), np.float32)
    # A lopsided digit may be pushed past the edge, as happened in MNIST: clip it.
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + height, SIDE), min(left + width, SIDE)
    canvas[r0:r1, c0:c1] = fitted[r0 - top : r1 - top, c0 - left : c1 - left]
    return np.rint(np.clip(canvas, 0.0, 255.0)).astype(np.uint8)


def normalize_boxes(segmentation: Segmentation) -> np.ndarray:
    """All digits of a segmented page as an (N, 28, 28) uint8 array, in box order."""
    digits = np.zeros((len(segmentation.boxes), SIDE, SIDE), np.uint8)
    for k, box in enumerate(segmentation.boxes):
        digits[k] = normalize_digit(segmentation.ink(box), box.mask)
    return digits


def page_to_digits(page: np.ndarray) -> tuple[list[DigitBox], np.ndarray]:
    """Segment a greyscale page and normalise each digit: (boxes, (N, 28, 28) uint8)."""
    segmentation = segment_page(page)
    return segmentation.boxes, normalize_boxes(segmentation)
