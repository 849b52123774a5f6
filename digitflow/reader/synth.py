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

import math
from dataclasses import dataclass

import cv2
import numpy as np

# How many digits a string holds: amounts and codes of 3-7 digits are the most common.
_LENGTH_WEIGHTS = np.array([4, 5, 8, 12, 14, 13, 10, 8, 6, 5, 4, 3], np.float64)
LENGTHS = np.arange(1, 13)
LENGTH_SHARES = _LENGTH_WEIGHTS / _LENGTH_WEIGHTS.sum()
MAX_DIGITS = 12
# Writers whose digits are bent by a smooth random displacement, and its smoothness.
ELASTIC_SHARE = 0.6
ELASTIC_SMOOTH = 4.0
# Digits are drawn this many pixels high before the field is brought to its scan size.
_DRAW_HEIGHT = 40.0


@dataclass(frozen=True)
class Digits:
    """Digits to write with: MNIST images (ink bright on black) and their labels."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) integer

    def by_label(self) -> list[np.ndarray]:
        """The indices of each digit's images."""
        return [np.flatnonzero(self.labels == d) for d in range(10)]


@dataclass
class Style:
    """How one writer writes one string."""

    height: float  # digit height in pixels, as drawn
    slant: float  # horizontal shear (x per unit of y going up)
    spacing: float  # mean gap between digits, in digit heights (negative: overlap)
    spacing_jitter: float
    stroke: int  # pixels of thickening (+) or thinning (-), as drawn
    flag_ones: bool
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


def _style(rng: np.random.Generator) -> Style:
    return Style(
        height=_DRAW_HEIGHT * float(rng.uniform(0.85, 1.1)),
        slant=float(rng.normal(0.12, 0.18)),
        spacing=float(rng.choice([rng.uniform(-0.22, 0.0), rng.uniform(0.0, 0.25),
                                  rng.uniform(0.2, 0.7)], p=[0.3, 0.45, 0.25])),
        spacing_jitter=float(rng.uniform(0.02, 0.12)),
        stroke=int(rng.choice([-2, -2, -1, -1, 0, 0, 1, 2])),
        flag_ones=bool(rng.random() < 0.65),
        foot_ones=float(rng.choice([0.0, 0.0, 0.5])),
        barred_sevens=bool(rng.random() < 0.25),
        ticked_sevens=bool(rng.random() < 0.3),
        curly_nines=bool(rng.random() < 0.45),
        looped_twos=bool(rng.random() < 0.3),
        wobble=float(rng.uniform(0.0, 0.07)),
        drift=float(rng.normal(0.0, 0.04)),
        elastic=float(rng.uniform(1.0, 3.0)) if rng.random() < ELASTIC_SHARE else 0.0,
        joined=float(rng.choice([0.0, 0.0, rng.uniform(0.2, 0.8)])),
        small_cents=bool(rng.random() < 0.08),
    )  # fmt: skip


def random_text(rng: np.random.Generator, length: int | None = None) -> str:
    """A random digit string of ``length`` digits (default: 1-12, weighted as documents
    have them)."""
    n = length or int(rng.choice(LENGTHS, p=LENGTH_SHARES))
    digits = rng.integers(0, 10, n)
    if n > 1 and rng.random() < 0.35:  # amounts end in zeros more often than not
        zeros = int(rng.integers(1, min(n, 4) + 1))
        digits[-zeros:] = 0
        if digits[0] == 0:
            digits[0] = int(rng.integers(1, 10))
    return "".join(str(int(d)) for d in digits)


def _tight(image: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(image.max(axis=1) > 30)
    cols = np.flatnonzero(image.max(axis=0) > 30)
    if rows.size == 0:
        return image
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


_PAD = 6  # room round a 28x28 digit for the strokes a style adds


def _restyle(image: np.ndarray, label: int, style: Style, rng: np.random.Generator) -> np.ndarray:
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
        if style.barred_sevens:
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
        axes = (int(rng.integers(3, 6)), int(rng.integers(2, 4)))
        cv2.ellipse(out, (x + axes[0] - 1, y - axes[1]), axes, 0, 0, 360, 255, 1, cv2.LINE_AA)
    return out


def _bar(image: np.ndarray, row: int, thick: int, rng: np.random.Generator) -> None:
    """A short bar across the digit's stroke at ``row`` (a 7's, as in much of Europe)."""
    cols = np.flatnonzero(image[row] > 100)
    if cols.size:
        centre = int(cols.mean())
        half = int(rng.integers(3, 6))
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


def _elastic(image: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """The digit bent by a smooth random displacement (pixels), as another hand bends it."""
    h, w = image.shape
    field = rng.normal(0.0, 1.0, (2, h, w)).astype(np.float32)
    dx, dy = (cv2.GaussianBlur(f, (0, 0), ELASTIC_SMOOTH) for f in field)
    scale = amplitude / max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + dx * scale, ys + dy * scale, cv2.INTER_LINEAR)


def _warp(image: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """A tight MNIST digit scaled to the style's height, sheared and turned a little."""
    tight = _tight(image).astype(np.float32)
    h, w = tight.shape
    sy = style.height * float(rng.uniform(0.88, 1.12)) / max(h, 1)
    if h < 0.5 * 20:  # a flat digit stays flat, rather than growing to full height
        sy = style.height / 20.0
    sx = sy * float(rng.uniform(0.8, 1.2))
    shear = style.slant + float(rng.normal(0.0, 0.06))
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


def _mark(kind: str, style: Style, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A separator or stroke that is not a digit: its ink and its vertical place.

    The place is where its top sits, as a share of the digit height below the top line.
    """
    d = style.height
    t = max(2, round(d * rng.uniform(0.06, 0.12)))
    if kind in ".,":
        r = max(1, round(d * rng.uniform(0.04, 0.09)))
        tail = int(d * rng.uniform(0.15, 0.3)) if kind == "," else 0
        img = np.zeros((2 * r + tail + 4, 2 * r + tail // 2 + 4), np.float32)
        cv2.circle(img, (r + 2 + tail // 2, r + 2), r, 1.0, -1, cv2.LINE_AA)
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
    length = int(d * rng.uniform(0.4, 1.6))
    lines = 2 if kind == "=" else 1
    gap = int(d * rng.uniform(0.15, 0.3))
    img = np.zeros((lines * gap + t + 4, length + 4), np.float32)
    for k in range(lines):
        y = 2 + k * gap + t // 2
        cv2.line(img, (2, y + int(rng.integers(-1, 2))), (length + 1, y), 1.0, t, cv2.LINE_AA)
    return img, float(rng.uniform(0.3, 0.6))


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
    trail = str(rng.choice(["", "", "", "-", "=", ".", ".-", "/", "--", ","]))
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
    style = _style(rng)
    d = style.height
    after, lead, trail = _marks_for(text, rng)
    pieces: list[tuple[np.ndarray, float, bool]] = []  # (ink, top as a share of d, digit?)
    for kind in lead:
        pieces.append((*_mark(kind, style, rng), False))
    small = len(text) - 2 if style.small_cents and len(text) >= 3 else len(text)
    for k, ch in enumerate(text):
        label = int(ch)
        image = digits.images[int(rng.choice(by_label[label]))]
        if label in (1, 2, 7, 9):
            image = _restyle(image, label, style, rng)
        if style.elastic:
            image = _elastic(image, style.elastic, rng)
        ink = _warp(image, style, rng)
        top = 1.0 - ink.shape[0] / d + float(rng.normal(0, style.wobble))
        if k >= small:  # cents: smaller, and up against the top line
            ink = cv2.resize(ink, None, fx=rng.uniform(0.55, 0.8), fy=rng.uniform(0.55, 0.8))
            top = float(rng.uniform(-0.05, 0.15))
        pieces.append((ink, top, True))
        if k in after:
            pieces.append((*_mark(after[k], style, rng), False))
    for kind in trail:
        pieces.append((*_mark(kind, style, rng), False))
    placed = _place(pieces, style, rng)
    canvas = np.zeros((int(3 * d), placed[-1][0] + int(2 * d)), np.float32)
    for (x, y), (ink, _, _) in zip(placed, pieces, strict=True):
        _paste(canvas, ink, x, y)
    for k in range(len(pieces) - 1):
        if pieces[k][2] and pieces[k + 1][2] and rng.random() < style.joined:
            _join(canvas, placed[k], pieces[k][0], placed[k + 1], pieces[k + 1][0], d, rng)
    return _crop_ink(canvas, rng, d)


def _place(pieces: list[tuple[np.ndarray, float, bool]], style: Style,
           rng: np.random.Generator) -> list[tuple[int, int]]:  # fmt: skip
    """Where each piece's top-left corner goes on the canvas, left to right."""
    d = style.height
    x, right = int(d * 0.5), 0
    placed = []
    for k, (ink, top, _) in enumerate(pieces):
        placed.append((x, int(d + top * d + style.drift * x)))
        right = max(right, x + ink.shape[1])
        gap = style.spacing + float(rng.normal(0, style.spacing_jitter))
        if k + 1 < len(pieces) and min(ink.shape[1], pieces[k + 1][0].shape[1]) < 0.3 * d:
            gap = max(gap, 0.0) * 0.5  # marks are written beside digits, not over them
        x += ink.shape[1] + int(gap * d)
        x = max(x, int(right - 0.5 * ink.shape[1]))
    return placed


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
    pad = int(d)
    padded = np.pad(canvas, pad)
    return padded[top + pad : bottom + pad + 1, left + pad : right + pad + 1]


def _pattern(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A security or paper pattern (0..1 darkness): wavy lines, hatching, rosettes, dots."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(0, 4))
    period = float(rng.uniform(3.0, 9.0))
    sharp = float(rng.uniform(2.0, 8.0))
    if kind == 0:  # families of wavy lines (guilloche)
        angle = rng.uniform(-0.6, 0.6)
        u = ys * math.cos(angle) + xs * math.sin(angle)
        v = xs * math.cos(angle) - ys * math.sin(angle)
        wave = rng.uniform(1.0, 8.0) * np.sin(v / rng.uniform(8.0, 40.0) + rng.uniform(0, 6.3))
        phase = (u + wave) / period
    elif kind == 1:  # straight hatching, sometimes crossed
        angle = rng.uniform(0, math.pi)
        phase = (ys * math.cos(angle) + xs * math.sin(angle)) / period
    elif kind == 2:  # concentric rings round a point off the field
        cy, cx = rng.uniform(-2 * h, 3 * h), rng.uniform(-w, 2 * w)
        phase = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2) / period
    else:  # a dot screen
        phase = np.sin(xs / period * 2.0) * np.sin(ys / period * 2.0)
        return (np.maximum(phase, 0) ** sharp).astype(np.float32)
    lines = (0.5 + 0.5 * np.cos(2 * math.pi * phase)) ** sharp
    if kind == 1 and rng.random() < 0.4:
        angle2 = rng.uniform(0, math.pi)
        phase2 = (ys * math.cos(angle2) + xs * math.sin(angle2)) / period
        lines = np.maximum(lines, (0.5 + 0.5 * np.cos(2 * math.pi * phase2)) ** sharp)
    return lines.astype(np.float32)


def _rules(ink: np.ndarray, rng: np.random.Generator, d: float) -> np.ndarray:
    """Printed furniture: a rule under (or over) the field, box edges at its ends."""
    h, w = ink.shape
    furniture = np.zeros_like(ink)
    t = int(rng.integers(1, 4))
    if rng.random() < 0.3:
        y = int(h * rng.uniform(0.75, 1.0)) - t
        furniture[max(y, 0) : y + t, :] = rng.uniform(0.4, 1.0)
    if rng.random() < 0.1:
        y = int(h * rng.uniform(0.0, 0.15))
        furniture[y : y + t, :] = rng.uniform(0.4, 1.0)
    if rng.random() < 0.08:
        for x in (int(rng.integers(0, 3)), w - t - int(rng.integers(0, 3))):
            furniture[:, max(x, 0) : x + t] = rng.uniform(0.4, 1.0)
    return furniture


def _stray(ink: np.ndarray, rng: np.random.Generator, d: float) -> None:
    """Ink from the neighbouring text reaching into the crop, at its top or bottom edge."""
    h, w = ink.shape
    for _ in range(int(rng.integers(1, 3))):
        x = int(rng.integers(0, w))
        y = 0 if rng.random() < 0.5 else h - 1
        end = (
            x + int(rng.normal(0, d * 0.5)),
            y + int((1 if y == 0 else -1) * d * rng.uniform(0.1, 0.3)),
        )
        cv2.line(
            ink, (x, y), end, float(rng.uniform(0.5, 1.0)), int(rng.integers(1, 4)), cv2.LINE_AA
        )


def to_scan(ink: np.ndarray, rng: np.random.Generator, d: float = _DRAW_HEIGHT) -> np.ndarray:
    """Put ink on patterned, unevenly lit paper at a scan's resolution: uint8, dark ink."""
    if rng.random() < 0.15:
        _stray(ink, rng, d)
    furniture = _rules(ink, rng, d)
    # The scan's resolution: fields 26-100 pixels high, so digits of about 12-60 pixels.
    target_h = float(rng.uniform(26, 100))
    scale = min(1.0, target_h / ink.shape[0])
    h = max(8, round(ink.shape[0] * scale))
    w = max(8, round(ink.shape[1] * scale))
    ink = cv2.resize(ink, (w, h), interpolation=cv2.INTER_AREA)
    furniture = cv2.resize(furniture, (w, h), interpolation=cv2.INTER_AREA)
    paper = float(rng.uniform(110, 245))
    gy, gx = rng.normal(0, 15, 2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    page = paper + gy * (ys / h - 0.5) + gx * (xs / w - 0.5)
    if rng.random() < 0.8:
        strength = float(rng.uniform(0.03, 0.3)) * paper
        page -= strength * _pattern((h, w), rng)
        if rng.random() < 0.3:
            page -= float(rng.uniform(0.05, 0.3)) * paper * _pattern((h, w), rng)
    page += cv2.GaussianBlur(
        rng.normal(0, rng.uniform(0, 8), (h, w)).astype(np.float32), (0, 0), 1.5
    )
    ink_level = float(rng.uniform(0, min(100, paper - 50)))
    pressure = float(rng.uniform(0.7, 1.0))
    alpha = np.clip(ink * pressure, 0, 1)
    page = page - alpha * (page - ink_level)
    page = page - furniture * (page - rng.uniform(ink_level, paper - 30))
    page += rng.normal(0, rng.uniform(1, 6), (h, w))
    if rng.random() < 0.5:
        page = cv2.GaussianBlur(page, (0, 0), float(rng.uniform(0.3, 1.0)))
    grey = np.clip(page, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        quality = int(rng.integers(25, 95))
        ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return grey


def make_field(
    digits: Digits, by_label: list[np.ndarray], rng: np.random.Generator, text: str | None = None
) -> tuple[np.ndarray, str]:
    """One generated field scan (uint8, dark ink on paper) and its digits."""
    text = text or random_text(rng)
    ink = write_ink(text, digits, by_label, rng)
    return to_scan(ink, rng), text
