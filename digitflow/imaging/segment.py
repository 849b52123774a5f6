"""Find the digits on a page: connected components, cleaned, merged, split and put in lines."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from digitflow.imaging.binarize import Binarized, binarize
from digitflow.imaging.blobs import Blob, blobs_of, ink_box, merge_pieces, split_wide
from digitflow.imaging.lines import group_lines
from digitflow.imaging.rules import estimate_skew, ink_points, remove_rules, skew_of_points

# Printed rules and box edges are this many digit heights long or more, and no thicker
# than this share of one (or a few pixels): the middle rows of a chain of bold touching
# digits are as long, and mostly ink, but as thick as a stroke of theirs (7-10 rows at
# 27 high), and cut there the chain came apart into a line of tops and one of bottoms.
_RULE_LENGTH = 3.0
_RULE_THICKNESS = 0.25
_THINNEST_RULE = 3
# Ink blobs smaller than this fraction of a digit's height (both ways) are dust.
_SPECK_SIDE = 0.25
_FEW_BLOBS = 4
# Where the digit-shaped pieces hold less than this share of the ink, the digits are on
# rules (or beside printed bands) and tell nothing of their size until the rules are out.
_SHAPED_SHARE = 0.2
# Runs this long (a share of the page's longer side) are rules or bands at any digit size.
_PAGE_RULE = 0.1
# A blob whose four sides are this much inked is a box drawn round fields.
_FRAMED = 0.7
_MIN_FRAME = 24
_HOLLOW = 0.15


@dataclass(frozen=True)
class DigitBox:
    """One digit: its line and position (both from 0), box [x0, x1) × [y0, y1), ink mask."""

    line: int
    position: int
    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray = field(repr=False, compare=False)  # bool, shape (y1 - y0, x1 - x0)


@dataclass(frozen=True)
class Segmentation:
    """The digits of a page, plus its ink (bright on black) for normalising them."""

    boxes: list[DigitBox]
    binary: Binarized

    @property
    def dark_ink(self) -> bool:
        """True for dark ink on light paper (the usual scan)."""
        return self.binary.dark_ink

    def ink(self, box: DigitBox) -> np.ndarray:
        """The ink image (uint8, bright on black, lighting removed) inside a box."""
        return self.binary.ink_at(box.y0, box.y1, box.x0, box.x1)


def segment_page(page: np.ndarray, split: bool = True) -> Segmentation:
    """Find every digit on a greyscale page (or single-digit image), by line, left to right.

    With ``split`` false, digits that touch stay one piece: enough to find the lines for a
    line reader, which reads touching digits whole and needs no pieces cut from them.
    """
    if page.ndim != 2 or page.size == 0:
        raise ValueError(f"expected a greyscale page (non-empty 2-D array), got {page.shape}")
    binary = binarize(page)
    blobs = find_digits(binary.blobs, binary.shape, split)
    boxes = [
        DigitBox(line, position, b.x0, b.y0, b.x1, b.y1, b.mask)
        for line, row in enumerate(group_lines(blobs))
        for position, b in enumerate(row)
    ]
    return Segmentation(boxes=boxes, binary=binary)


def find_digits(blobs: list[Blob], shape: tuple[int, int], split: bool = True) -> list[Blob]:
    """Turn the pieces of ink of a page of this shape into digit-sized blobs, unordered
    (touching digits left whole unless ``split``)."""
    blobs = _open_frames(blobs)
    height = digit_height(blobs)
    if height == 0:
        return []
    if _shaped_share(blobs) < _SHAPED_SHARE:
        # Every digit touches a rule (or a printed band outweighs them): the size that the
        # few free pieces, dust mostly, would give is no digit's. Take out what is long at
        # any size first, then measure.
        blobs = _without_rules(blobs, int(_PAGE_RULE * max(shape)) | 1)
        height = digit_height(blobs) or height
    thickest = max(_THINNEST_RULE, int(_RULE_THICKNESS * height))
    blobs = _without_rules(blobs, int(_RULE_LENGTH * height) | 1, thickest)
    height = digit_height(blobs) or height
    blobs = [b for b in blobs if not _is_dust(b, height) and not _is_furniture(b, height)]
    blobs = _inside_margins(blobs, shape)
    blobs = merge_pieces(blobs, height)
    blobs = [b for b in blobs if max(b.width, b.height) >= _SPECK_SIDE * height]
    return split_wide(blobs, height) if split else blobs


def _inside_margins(blobs: list[Blob], shape: tuple[int, ...]) -> list[Blob]:
    """Drop ink touching the page's edge when the page has digits clear of it.

    On a page that is a scanner's margin, a shadow or a digit cut off by the scan; in a
    crop of a single digit it is the digit, which often fills its crop.
    """
    height, width = shape
    clear = [b for b in blobs if b.x0 > 0 and b.y0 > 0 and b.x1 < width and b.y1 < height]
    return clear if len(clear) >= _FEW_BLOBS else blobs


def _is_shaped(blob: Blob) -> bool:
    """Shaped like a digit (or a few touching ones): not a rule, a band or a hollow frame."""
    return blob.width <= 5 * blob.height and blob.area >= 0.08 * blob.width * blob.height


def _shaped_share(blobs: list[Blob]) -> float:
    """The share of the ink in pieces shaped like digits (1.0 for three pieces or fewer)."""
    solid = [b for b in blobs if b.area >= 4]
    if len(solid) < _FEW_BLOBS:
        return 1.0
    return sum(b.area for b in solid if _is_shaped(b)) / sum(b.area for b in solid)


def digit_height(blobs: list[Blob]) -> float:
    """Typical digit height: the height of the blob holding the median pixel of ink.

    Weighting by ink keeps dust from outvoting the digits. Rules and frames are left out
    (too wide for their height, or hollow). With three pieces of ink or fewer (a single
    digit, perhaps broken) there is no telling, so the height of all the ink is used.
    """
    solid = [b for b in blobs if b.area >= 4] or blobs
    if len(solid) < _FEW_BLOBS:
        return float(max(b.y1 for b in solid) - min(b.y0 for b in solid)) if solid else 0.0
    shaped = [b for b in solid if _is_shaped(b)]
    chosen = sorted(shaped or solid, key=lambda b: b.height)
    ink = np.cumsum([b.area for b in chosen])
    return float(chosen[int(np.searchsorted(ink, ink[-1] / 2))].height)


def _without_rules(blobs: list[Blob], length: int, thickest: int | None = None) -> list[Blob]:
    """Take printed rules out of the blobs long enough to hold one, keeping what touched them.

    Digits written on a line join it into one long blob; removing the rule's straight run
    (along the page's skew) frees them. Only long blobs are searched, which keeps it fast.
    """
    long = [b for b in blobs if b.width >= length or b.height >= length]
    if not long:
        return blobs
    skew = _skew(long)
    kept = [b for b in blobs if b.width < length and b.height < length]
    for blob in long:
        kept += _components(remove_rules(blob.mask, length, skew, thickest), blob.x0, blob.y0)
    return kept


def _open_frames(blobs: list[Blob]) -> list[Blob]:
    """Cut the straight edges out of boxes drawn round fields, freeing what touched them.

    Ruled lines that run into a frame, with digits written on them, make one blob that
    gives no clue to the digits' size; its four inked sides show it is a frame, though.
    """
    kept = []
    for blob in blobs:
        if min(blob.width, blob.height) >= _MIN_FRAME and _is_framed(blob.mask):
            length = int(0.5 * min(blob.width, blob.height)) | 1
            cleaned = remove_rules(blob.mask, length, estimate_skew(blob.mask))
            kept += _components(cleaned, blob.x0, blob.y0)
        else:
            kept.append(blob)
    return kept


def _is_framed(mask: np.ndarray) -> bool:
    """True when the mask is hollow and ink runs along most of all four sides of its box."""
    height, width = mask.shape
    if np.count_nonzero(mask) >= _HOLLOW * height * width:
        return False  # a bold 0 or 8 touches its four sides too
    band = 3 + int(0.05 * max(height, width))  # room for a few degrees of skew
    sides = (
        mask[:band].any(axis=0),
        mask[-band:].any(axis=0),
        mask[:, :band].any(axis=1),
        mask[:, -band:].any(axis=1),
    )
    return all(side.mean() >= _FRAMED for side in sides)


def _skew(blobs: list[Blob]) -> float:
    """The skew of the blobs' ink together (`estimate_skew` of their joint mask)."""
    x0, x1 = min(b.x0 for b in blobs), max(b.x1 for b in blobs)
    points = [ink_points(b.mask) for b in blobs]
    ys = np.concatenate([rows + b.y0 for b, (rows, _) in zip(blobs, points, strict=True)])
    xs = np.concatenate([cols + b.x0 for b, (_, cols) in zip(blobs, points, strict=True)])
    return skew_of_points(ys, xs - (x0 + (x1 - x0) // 2))


def _components(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[Blob]:
    """The 8-connected pieces of ink in a mask whose corner lies at (x0, y0) on the page.

    Only the rows and columns holding ink are labelled: what is left of a frame or a rule
    once its straight runs are cut out is often a small part of its box.
    """
    box = ink_box(mask)
    if box is None:
        return []
    top, bottom, left, right = box
    ink = np.ascontiguousarray(mask[top:bottom, left:right], np.uint8)
    _, labels = cv2.connectedComponents(ink, connectivity=8)
    return blobs_of(labels, x0=x0 + left, y0=y0 + top)


def _is_dust(blob: Blob, height: float) -> bool:
    """Too small to matter even as a piece of a broken digit."""
    return blob.area < max(2.0, 0.004 * height**2) or max(blob.width, blob.height) < 0.15 * height


def _is_furniture(blob: Blob, height: float) -> bool:
    """True for form furniture: leftover rules, hollow frames, blots too tall for a digit."""
    w, h = blob.width, blob.height
    if w >= 1.5 * height and w >= 5 * h:
        return True  # horizontal rule
    if h <= 0.08 * height and w >= 4 * h:
        return True  # a sliver left over from a rule
    if w <= 0.12 * height and h >= 4 * w and h < 0.6 * height:
        return True  # a sliver of a frame's side, too short to be a 1
    if h >= 1.8 * height and h >= 5 * w:
        return True  # vertical rule
    if h > 2.5 * height:
        return True  # nothing on this page's scale of writing is that tall
    hollow = blob.area < _HOLLOW * w * h
    return hollow and w >= 1.4 * height and h >= 1.4 * height  # a box drawn round fields
