"""How one writer writes one digit: its style, and the strokes and bends it adds.

An MNIST digit is restyled (a 1 with a flag or a foot, a 7 with a bar or a tick, a 9 with
a curled tail, a 2 with a loop), bent as another hand bends it, then scaled, sheared (some
writers' 1s lean like a slash), turned and thickened or thinned to the writer's pen. Some
writers write their zeros small, on the line, like the letter o.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Digits are drawn this many pixels high before the field is brought to its scan size.
DRAW_HEIGHT = 40.0
# Writers whose digits are bent by a smooth random displacement, and its smoothness.
ELASTIC_SHARE = 0.6
ELASTIC_SMOOTH = 4.0


@dataclass
class Style:
    """How one writer writes one string."""

    height: float  # digit height in pixels, as drawn
    slant: float  # horizontal shear (x per unit of y going up)
    spacing: float  # mean gap between digits, in digit heights (negative: overlap)
    spacing_jitter: float
    stroke: int  # pixels of thickening (+) or thinning (-), as drawn
    flag_ones: bool
    slashed_ones: bool  # 1s leaning far more than the other digits, like a slash
    foot_ones: float  # probability that a 1 gets a foot
    barred_sevens: bool
    ticked_sevens: bool
    curly_nines: bool  # a 9 whose tail curls to the left, as in much of Latin America
    looped_twos: bool
    wobble: float  # baseline jitter, in digit heights
    drift: float  # baseline slope across the string
    elastic: float  # largest bend of a digit's strokes, in pixels of its 28x28 (0: none)
    joined: float  # probability that a digit is joined to the next by a stroke
    small_cents: bool  # the last two digits written small and high, as cents often are
    small_zeros: float  # probability that a 0 is written small, on the line, like an o


def random_style(rng: np.random.Generator) -> Style:
    """A random writer's style."""
    return Style(
        height=DRAW_HEIGHT * float(rng.uniform(0.85, 1.1)),
        slant=float(rng.normal(0.12, 0.18)),
        spacing=float(rng.choice([rng.uniform(-0.22, 0.0), rng.uniform(0.0, 0.25),
                                  rng.uniform(0.2, 0.7)], p=[0.3, 0.45, 0.25])),
        spacing_jitter=float(rng.uniform(0.02, 0.12)),
        stroke=int(rng.choice([-2, -2, -1, -1, 0, 0, 1, 2])),
        flag_ones=bool(rng.random() < 0.65),
        slashed_ones=bool(rng.random() < 0.3),
        foot_ones=float(rng.choice([0.0, 0.0, 0.5])),
        barred_sevens=bool(rng.random() < 0.4),
        ticked_sevens=bool(rng.random() < 0.3),
        curly_nines=bool(rng.random() < 0.45),
        looped_twos=bool(rng.random() < 0.4),
        wobble=float(rng.uniform(0.0, 0.07)),
        drift=float(rng.normal(0.0, 0.04)),
        elastic=float(rng.uniform(1.0, 3.0)) if rng.random() < ELASTIC_SHARE else 0.0,
        joined=float(rng.choice([0.0, 0.0, rng.uniform(0.2, 0.8)])),
        small_cents=bool(rng.random() < 0.08),
        small_zeros=float(rng.choice([0.0, 0.0, 0.0, 0.0, rng.uniform(0.5, 1.0)])),
    )  # fmt: skip


def _tight(image: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(image.max(axis=1) > 30)
    cols = np.flatnonzero(image.max(axis=0) > 30)
    if rows.size == 0:
        return image
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


_PAD = 6  # room round a 28x28 digit for the strokes a style adds


def restyle(image: np.ndarray, label: int, style: Style, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 MNIST digit (ink bright) written the writer's way: a 1 with a flag or a foot,
    a 7 with a bar or a tick, a 9 with a curled tail, a 2 with a loop."""
    out = np.pad(image, _PAD)
    ink = np.argwhere(out > 100)
    if ink.size == 0:
        return image
    top, bottom = int(ink[:, 0].min()), int(ink[:, 0].max())
    height = bottom - top
    thick = int(rng.choice([1, 2, 2, 3]))
    if label == 1:
        top_x = round(ink[ink[:, 0] <= top + 1][:, 1].mean())
        bottom_x = round(ink[ink[:, 0] >= bottom - 1][:, 1].mean())
        if style.flag_ones:
            _flag(out, top_x, top, height, thick, rng)
        if rng.random() < style.foot_ones:
            half = int(rng.integers(3, 6))
            cv2.line(out, (bottom_x - half, bottom), (bottom_x + half, bottom), 255, thick,
                     cv2.LINE_AA)  # fmt: skip
    elif label == 7:
        if style.barred_sevens:  # often long, crossing the stem like a +
            _bar(out, top + int(height * rng.uniform(0.45, 0.6)), thick, rng)
        if style.ticked_sevens:  # a short stroke down from the left end of the top bar
            row = ink[ink[:, 0] <= top + 2]
            x = int(row[:, 1].min())
            end = (x - int(rng.integers(0, 3)), top + int(height * rng.uniform(0.15, 0.3)))
            cv2.line(out, (x, top), end, 255, thick, cv2.LINE_AA)
    elif label == 9 and style.curly_nines:
        low = ink[ink[:, 0] >= bottom - 1]
        x = int(low[:, 1].mean())
        _curve(out, (x, bottom), (x - 0.2 * height, bottom + 0.08 * height),
               (x - rng.uniform(0.25, 0.45) * height, bottom - rng.uniform(0.05, 0.25) * height),
               thick)  # fmt: skip
    elif label == 2 and style.looped_twos:
        base = ink[ink[:, 0] >= top + 0.7 * height]
        x, y = int(base[:, 1].min()), int(base[np.argmin(base[:, 1]), 0])
        axes = (int(rng.integers(3, 8)), int(rng.integers(2, 6)))
        cv2.ellipse(out, (x + axes[0] - 1, y - axes[1]), axes, 0, 0, 360, 255, 1, cv2.LINE_AA)
    return out


def _bar(image: np.ndarray, row: int, thick: int, rng: np.random.Generator) -> None:
    """A bar across the digit's stroke at ``row`` (a 7's, as in much of Europe and Latin
    America), reaching 3 to 9 pixels either side."""
    cols = np.flatnonzero(image[row] > 100)
    if cols.size:
        centre = int(cols.mean())
        half = int(rng.integers(3, 10))
        cv2.line(image, (centre - half, row), (centre + half, row), 255, thick, cv2.LINE_AA)


def _curve(image: np.ndarray, start: tuple[float, float], middle: tuple[float, float],
           end: tuple[float, float], thick: int) -> None:  # fmt: skip
    """A quadratic Bezier stroke from ``start`` through near ``middle`` to ``end``."""
    t = np.linspace(0.0, 1.0, 10)[:, None]
    a, b, c = (np.array(p, np.float64) for p in (start, middle, end))
    points = (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c
    cv2.polylines(image, [np.rint(points).astype(np.int32)], False, 255, thick, cv2.LINE_AA)


def _flag(image: np.ndarray, x: int, y: int, height: int, thick: int,
          rng: np.random.Generator) -> None:  # fmt: skip
    """Draw the flag of a 1 from its top (x, y) down to the left: straight or hooked, short
    or as long as most of the digit (as in much of Europe and Latin America)."""
    length = height * rng.uniform(0.25, 0.65)
    angle = math.radians(rng.uniform(25, 70))
    end = (x - length * math.cos(angle), y + length * math.sin(angle))
    start = (x + rng.uniform(-1.0, 1.0), y + rng.uniform(0.0, 2.0))
    bend = rng.uniform(-0.25, 0.25) * length
    middle = ((start[0] + end[0]) / 2 + bend * math.sin(angle),
              (start[1] + end[1]) / 2 + bend * math.cos(angle))  # fmt: skip
    _curve(image, start, middle, end, thick)


def bend(image: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """The digit bent by a smooth random displacement (pixels), as another hand bends it."""
    h, w = image.shape
    field = rng.normal(0.0, 1.0, (2, h, w)).astype(np.float32)
    dx, dy = (cv2.GaussianBlur(f, (0, 0), ELASTIC_SMOOTH) for f in field)
    scale = amplitude / max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + dx * scale, ys + dy * scale, cv2.INTER_LINEAR)


def warp(image: np.ndarray, style: Style, rng: np.random.Generator, lean: float = 0.0
         ) -> np.ndarray:  # fmt: skip
    """A tight MNIST digit scaled to the style's height, sheared (``lean`` more than the
    writer's slant) and turned a little."""
    tight = _tight(image).astype(np.float32)
    h, w = tight.shape
    sy = style.height * float(rng.uniform(0.88, 1.12)) / max(h, 1)
    if h < 0.5 * 20:  # a flat digit stays flat, rather than growing to full height
        sy = style.height / 20.0
    sx = sy * float(rng.uniform(0.8, 1.2))
    shear = style.slant + lean + float(rng.normal(0.0, 0.06))
    turn = math.radians(float(rng.normal(0.0, 3.0)))
    c, s = math.cos(turn), math.sin(turn)
    # Scale, then shear x by y (upwards is negative y), then rotate, about the centre.
    m = np.array([[c, -s], [s, c]]) @ np.array([[1.0, -shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) - [w / 2, h / 2]
    moved = corners @ m.T
    lo, hi = moved.min(axis=0), moved.max(axis=0)
    size = (math.ceil(hi[0] - lo[0]) + 4, math.ceil(hi[1] - lo[1]) + 4)
    offset = -lo + 2 - m @ np.array([w / 2, h / 2])
    affine = np.hstack([m, offset[:, None]]).astype(np.float32)
    out = cv2.warpAffine(tight, affine, size, flags=cv2.INTER_LINEAR)
    if style.stroke > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (style.stroke + 1,) * 2)
        out = cv2.dilate(out, kernel)
    elif style.stroke < 0:  # pens draw thinner lines than NIST's: thin the digit
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (1 - style.stroke,) * 2)
        thin = cv2.erode(out, kernel)
        out = thin if thin.max() > 0.5 * out.max() else out
    return np.clip(out / 255.0, 0.0, 1.0)
