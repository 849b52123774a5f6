"""Generated digit strings for training and validating the line reader.

Each string is written with MNIST digits of one split, the way people write amounts and
codes on real documents: one to twelve digits, spacing from overlapping to wide, per-digit
scale, baseline and slant jitter, stroke width, 1s with a flag or a foot and 7s with a
bar (as much of the world writes them), separators and trailing strokes that are not
digits (`.` `,` `-` `=` `/`), on paper with textures, security patterns, ruled lines,
blur, low resolution and JPEG. Only the digits are the label.

The result is a greyscale field image, dark ink on light paper, as a scanner gives it;
``digitflow.reader.field.field_input`` turns it into the reader's input, as for a scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitflow.reader.hands import (
    DESCENDING,
    DRAW_HEIGHT,
    Style,
    bend,
    random_style,
    restyle,
    warp,
)
from digitflow.reader.paper import to_scan

# How many digits a string holds: amounts and codes of 3-7 digits are the most common.
_LENGTH_WEIGHTS = np.array([4, 5, 8, 12, 14, 13, 10, 8, 6, 5, 4, 3], np.float64)
LENGTHS = np.arange(1, 13)
LENGTH_SHARES = _LENGTH_WEIGHTS / _LENGTH_WEIGHTS.sum()
MAX_DIGITS = 12
# Fields cut tight round the writing, or a little into it at the top or the bottom, as
# the boxes of many forms and cheques cut it.
TIGHT_SHARE = 0.4
# The least gap between two 1s' ink, in digit heights: two 1s overlapping look like one 1
# with a steep flag, which a reader taught so reads as "11".
ONES_GAP = 0.05
# A piece of a written string: its ink, where its top sits (a share of the digit height
# below the top line), and the digit it is (None: a separator or stroke).
Piece = tuple[np.ndarray, float, int | None]


@dataclass(frozen=True)
class Digits:
    """Digits to write with: MNIST images (ink bright on black) and their labels."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) integer

    def by_label(self) -> list[np.ndarray]:
        """The indices of each digit's images."""
        return [np.flatnonzero(self.labels == d) for d in range(10)]


def random_text(rng: np.random.Generator, length: int | None = None) -> str:
    """A random digit string of ``length`` digits (default: 1-12, weighted as documents
    have them)."""
    n = length or int(rng.choice(LENGTHS, p=LENGTH_SHARES))
    digits = rng.integers(0, 10, n)
    if n > 1 and rng.random() < 0.15:  # a digit written two or three times running
        run = int(rng.integers(2, min(n, 3) + 1))
        start = int(rng.integers(0, n - run + 1))
        digits[start : start + run] = 1 if rng.random() < 0.5 else digits[start]
    if n > 1 and rng.random() < 0.35:  # amounts end in zeros more often than not
        zeros = int(rng.integers(1, min(n, 4) + 1))
        digits[-zeros:] = 0
        if digits[0] == 0:
            digits[0] = int(rng.integers(1, 10))
    return "".join(str(int(d)) for d in digits)


def _mark(kind: str, style: Style, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A separator or stroke that is not a digit: its ink and its vertical place.

    The place is where its top sits, as a share of the digit height below the top line.
    """
    d = style.height
    t = max(2, round(d * rng.uniform(0.06, 0.12)))
    if kind in ".,":
        r = max(1, round(d * rng.uniform(0.04, 0.09)))
        tail = int(d * rng.uniform(0.15, 0.3)) if kind == "," else 0
        ring = kind == "." and rng.random() < 0.25  # a dot drawn as a small circle
        if ring:
            r = max(2, round(d * rng.uniform(0.07, 0.13)))
        img = np.zeros((2 * r + tail + 4, 2 * r + tail // 2 + 4), np.float32)
        fill = max(1, t // 2) if ring else -1
        cv2.circle(img, (r + 2 + tail // 2, r + 2), r, 1.0, fill, cv2.LINE_AA)
        if tail:
            cv2.line(img, (r + 2 + tail // 2, r + 2), (2, r + 2 + tail), 1.0, t, cv2.LINE_AA)
        return img, float(rng.uniform(0.8, 1.0))
    if kind == "'":
        img = np.zeros((int(0.3 * d) + 4, max(6, t + 4)), np.float32)
        cv2.line(img, (img.shape[1] - 3, 2), (2, img.shape[0] - 3), 1.0, t, cv2.LINE_AA)
        return img, float(rng.uniform(-0.1, 0.05))
    if kind == "/":
        w, h = int(d * rng.uniform(0.3, 0.6)), int(d * rng.uniform(0.8, 1.1))
        img = np.zeros((h + 4, w + 4), np.float32)
        cv2.line(img, (w + 1, 2), (2, h + 1), 1.0, t, cv2.LINE_AA)
        return img, 0.0
    return _bars(2 if kind == "=" else 1, d, t, rng)


def _bars(count: int, d: float, t: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A dash or an equals sign as a hand draws one: from a short tick to a long stroke,
    climbing or sagging a little and bowed, and anywhere from the digits' tops (where
    many writers close an amount with a small raised ``=``) to below their middle."""
    length = d * (rng.uniform(0.15, 0.45) if rng.random() < 0.35 else rng.uniform(0.4, 1.5))
    gap = t + 2 + d * rng.uniform(0.06, 0.2)  # between the bars' middles
    rise = length * rng.uniform(-0.3, 0.15)  # image rows run down: most bars climb
    bow = d * rng.uniform(-0.07, 0.07)
    shift = d * rng.uniform(-0.15, 0.15) if count == 2 else 0.0  # the second bar's start
    shorter = rng.uniform(0.7, 1.1) if count == 2 else 1.0
    margin = t + 2 + abs(bow)
    height = int(margin * 2 + abs(rise) + (count - 1) * gap) + 1
    width = int(length + abs(shift) + 2 * t + 4) + 1
    img = np.zeros((height, width), np.float32)
    at = np.linspace(0.0, 1.0, 9)
    for k in range(count):
        span = length * (shorter if k else 1.0)
        x = t + 2 + max(shift, 0.0) * k + max(-shift, 0.0) * (1 - k) + at * span
        y = margin + max(-rise, 0.0) + k * gap + rise * at + 4 * bow * at * (1 - at)
        points = np.round(np.stack([x, y], axis=1) * 16).astype(np.int32)
        cv2.polylines(img, [points], False, 1.0, t, cv2.LINE_AA, shift=4)
    # Placed by its highest point: a digit's ink spans about -0.1 to 0.9 of its height.
    highest = min(float(rng.uniform(-0.05, 0.55)), 0.9 - (height - 2 * margin) / d)
    return img, highest - margin / d


def _marks_for(text: str, rng: np.random.Generator) -> tuple[dict[int, str], str, str]:
    """Separators after some digits, and a leading and a trailing stroke, or none."""
    after: dict[int, str] = {}
    n = len(text)
    if n >= 4 and rng.random() < 0.45:
        sep = "." if rng.random() < 0.75 else ","
        for k in range(n - 4, -1, -3):
            after[k] = sep
    if n >= 3 and rng.random() < 0.08:  # a decimal part
        after[n - 3] = "," if rng.random() < 0.5 else "."
    # A slash only before a dash or an equals sign (as in 100/-): alone, it is a 1.
    trail = str(rng.choice(["", "", "", "", "-", "-", "=", "=", ".", ".", ".-", "--", ",",
                            "/-", "/="]))  # fmt: skip
    lead = str(rng.choice(["", "", "", "", "", "", "-", "=", "'"]))
    return after, lead, trail


def _paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    h, w = img.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, canvas.shape[0]), min(x + w, canvas.shape[1])
    if y1 > y0 and x1 > x0:
        region = canvas[y0:y1, x0:x1]
        np.maximum(region, img[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def write_ink(text: str, digits: Digits, by_label: list[np.ndarray],
              rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """The ink (float32, 0..1, bright) of ``text`` written by one random writer."""
    style = random_style(rng)
    d = style.height
    after, lead, trail = _marks_for(text, rng)
    pieces: list[Piece] = []
    for kind in lead:
        pieces.append((*_mark(kind, style, rng), None))
    small = len(text) - 2 if style.small_cents and len(text) >= 3 else len(text)
    for k, ch in enumerate(text):
        label = int(ch)
        image = digits.images[int(rng.choice(by_label[label]))]
        if label in (1, 2, 4, 7, 9):
            image = restyle(image, label, style, rng)
        if style.elastic:
            image = bend(image, style.elastic, rng)
        lean = _lean(label, style, rng)
        ink = warp(image, style, rng, lean)
        if label == 0 and rng.random() < style.small_zeros:  # an o on the line
            ink = cv2.resize(ink, None, fx=rng.uniform(0.55, 0.85), fy=rng.uniform(0.45, 0.7))
        ink, drop = descend(ink, label, style, rng)
        top = 1.0 - (ink.shape[0] - drop) / d + float(rng.normal(0, style.wobble))
        if k >= small:  # cents: smaller, and up against the top line
            ink = cv2.resize(ink, None, fx=rng.uniform(0.55, 0.8), fy=rng.uniform(0.55, 0.8))
            top = float(rng.uniform(-0.05, 0.15))
        pieces.append((ink, top, label))
        if k in after:
            pieces.append((*_mark(after[k], style, rng), None))
    for kind in trail:
        pieces.append((*_mark(kind, style, rng), None))
    placed = _place(pieces, style, rng)
    canvas = np.zeros((int(3 * d), placed[-1][0] + int(2 * d)), np.float32)
    for (x, y), (ink, _, _) in zip(placed, pieces, strict=True):
        _paste(canvas, ink, x, y)
    for k in range(len(pieces) - 1):
        both_digits = pieces[k][2] is not None and pieces[k + 1][2] is not None
        if both_digits and rng.random() < style.joined:
            _join(canvas, placed[k], pieces[k][0], placed[k + 1], pieces[k + 1][0], d, rng)
    return _crop_ink(canvas, rng, d)


def _lean(label: int, style: Style, rng: np.random.Generator) -> float:
    """How much more than the writer's slant a digit leans: a slashed 1 like a slash; a 1
    with a steep flag stands upright or leans back, so that flag and stem make a Λ (its
    flag alone, leaning like a slashed 1, is no 1)."""
    if label != 1:
        return 0.0
    if style.flag_ones and style.steep_flags:
        return -style.slant + float(rng.uniform(-0.3, 0.05))
    return float(rng.uniform(0.2, 0.6)) if style.slashed_ones else 0.0


def descend(ink: np.ndarray, label: int, style: Style, rng: np.random.Generator
            ) -> tuple[np.ndarray, float]:  # fmt: skip
    """A digit as a writer who takes some below the line writes it: a 4, 7 or 9 (a 1 half
    as often) taller, and how many of its rows reach below the other digits' feet."""
    if rng.random() >= style.descenders * DESCENDING.get(label, 0.0):
        return ink, 0.0
    tall = ink.shape[0]
    stretched = cv2.resize(ink, (ink.shape[1], round(tall * rng.uniform(1.15, 1.45))))
    return np.clip(stretched, 0.0, 1.0), (stretched.shape[0] - tall) * float(rng.uniform(0.2, 0.8))


def _place(pieces: list[Piece], style: Style,
           rng: np.random.Generator) -> list[tuple[int, int]]:  # fmt: skip
    """Where each piece's top-left corner goes on the canvas, left to right. Two digits
    are spaced by the gap between their ink, as a writer spaces them (overlapping by half
    the narrower one at most, and two 1s not at all); a mark beside a digit by its box."""
    d = style.height
    x, right = int(d * 0.5), 0
    placed = []
    for k, (ink, top, label) in enumerate(pieces):
        placed.append((x, int(d + top * d + style.drift * x)))
        right = max(right, x + ink.shape[1])
        if k + 1 == len(pieces):
            break
        follower, _, next_label = pieces[k + 1]
        gap = style.spacing + float(rng.normal(0, style.spacing_jitter))
        if label is not None and next_label is not None:
            (left0, right0), (left1, right1) = _ink_columns(ink), _ink_columns(follower)
            gap = max(gap, -0.5 * min(right0 - left0 + 1, right1 - left1 + 1) / d)
            if label == next_label == 1:  # two 1s overlapping read as one flagged 1
                gap = max(gap, ONES_GAP)
            x += right0 + 1 + round(gap * d) - left1
        else:
            if min(ink.shape[1], follower.shape[1]) < 0.3 * d:
                gap = max(gap, 0.0) * 0.5  # marks are written beside digits, not over them
            x += ink.shape[1] + int(gap * d)
        x = max(x, int(right - 0.5 * ink.shape[1]))
    return placed


def _ink_columns(ink: np.ndarray) -> tuple[int, int]:
    """The first and the last column of a piece that hold ink."""
    cols = np.flatnonzero(ink.max(axis=0) > 0.2)
    return (int(cols[0]), int(cols[-1])) if cols.size else (0, ink.shape[1] - 1)


def _join(canvas: np.ndarray, at: tuple[int, int], ink: np.ndarray, to: tuple[int, int],
          nxt: np.ndarray, d: float, rng: np.random.Generator) -> None:  # fmt: skip
    """A connecting stroke from a digit's right side to the next one's left, as in
    joined-up writing (and in chains of zeros)."""
    h1, h2 = ink.shape[0], nxt.shape[0]
    rows1 = slice(int(0.3 * h1), int(0.9 * h1) + 1)
    rows2 = slice(int(0.05 * h2), int(0.6 * h2) + 1)
    p1, p2 = np.argwhere(ink[rows1] > 0.5), np.argwhere(nxt[rows2] > 0.5)
    if p1.size == 0 or p2.size == 0:
        return
    r1, c1 = p1[np.argmax(p1[:, 1])]
    r2, c2 = p2[np.argmin(p2[:, 1])]
    start = (int(at[0] + c1), int(at[1] + r1 + rows1.start))
    end = (int(to[0] + c2), int(to[1] + r2 + rows2.start))
    thick = max(1, round(d * rng.uniform(0.03, 0.08)))
    cv2.line(canvas, start, end, float(rng.uniform(0.7, 1.0)), thick, cv2.LINE_AA)


def _crop_ink(canvas: np.ndarray, rng: np.random.Generator, d: float) -> np.ndarray:
    """Cut the written ink out with the margins a person or a form leaves round a field."""
    rows = np.flatnonzero(canvas.max(axis=1) > 0.2)
    cols = np.flatnonzero(canvas.max(axis=0) > 0.2)
    if rows.size == 0:
        return canvas[: int(d), : int(d)]
    top = rows[0] - int(d * rng.uniform(0.02, 0.35))
    bottom = rows[-1] + int(d * rng.uniform(0.02, 0.35))
    left = cols[0] - int(d * rng.uniform(-0.03, 0.6))
    right = cols[-1] + int(d * rng.uniform(-0.03, 0.6))
    if rng.random() < TIGHT_SHARE:
        side = rng.random()
        if side < 0.7:
            top = rows[0] + int(d * rng.uniform(-0.03, 0.15))
        if side > 0.4:
            bottom = rows[-1] - int(d * rng.uniform(-0.03, 0.1))
        if rng.random() < 0.3:
            left = cols[0] - int(d * rng.uniform(-0.03, 0.05))
    pad = int(d)
    padded = np.pad(canvas, pad)
    return padded[top + pad : bottom + pad + 1, left + pad : right + pad + 1]


def make_field(
    digits: Digits, by_label: list[np.ndarray], rng: np.random.Generator, text: str | None = None
) -> tuple[np.ndarray, str]:
    """One generated field scan (uint8, dark ink on paper) and its digits."""
    text = text or random_text(rng)
    ink = write_ink(text, digits, by_label, rng)
    return to_scan(ink, rng, DRAW_HEIGHT), text
