"""How one writer writes one digit: its style, and the strokes and bends it adds.

An MNIST digit is restyled (a 1 with a flag, some as steep as a Λ, or a foot, a 7 with a
bar or a tick, a 9 with a curled tail, a 2 with a loop or a curled start), bent as another
hand bends it, then scaled, sheared (some writers' 1s lean like a slash), turned and
thickened or thinned to the writer's pen. Some writers write their zeros small, on the
line, like the letter o. Some write a 1, a 2, a 9, a 4, a 5 or a 7 in a shape MNIST hardly
has, and those are drawn stroke by stroke: a 1 looped like a cursive l, a 2 whose top is a
closed loop like a 9's, a 9 whose stem drops from the bottom of its loop (like a ρ), its
tail often curled out to the left, a 4 open at the top whose right stroke is short (like
an L with a tick), a 5 in one sweep like a check mark with a bar on top, a 7 whose stem
bows and sweeps left like a 2's, often crossed by a long bar, its top bar sometimes short.
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
# Writers who flag their 1s, and who lean them like a slash. With more of them (0.65 and
# 0.3), a plain 1 close against its neighbour went unread: 29 of the 104 generated form
# lines that a reader misread had lost just a 1 (docs/record/reading.md, "Plain 1s").
FLAG_ONES_SHARE = 0.5
SLASHED_ONES_SHARE = 0.2
# Of the writers who flag their 1s, those whose flag is steep and almost as long as the
# stem (a Λ): the 1s of the real check amounts that a reader read as "11" are written so.
STEEP_FLAGS_SHARE = 0.4
# Writers whose 4s, 7s and 9s (and some 1s) reach below the line, taller than their other
# digits: on the real check amounts those digits stand a median 1.04-1.07 times the
# field's digit height and a tenth of them 1.25-1.42 times, their feet lower.
DESCENDERS_SHARE = 0.4
DESCENDING = {1: 0.5, 4: 1.0, 7: 1.0, 9: 1.0}


@dataclass
class Style:
    """How one writer writes one string."""

    height: float  # digit height in pixels, as drawn
    slant: float  # horizontal shear (x per unit of y going up)
    spacing: float  # mean gap between digits' ink, in digit heights (negative: overlap)
    spacing_jitter: float
    stroke: int  # pixels of thickening (+) or thinning (-), as drawn
    flag_ones: bool
    steep_flags: bool  # a 1's flag steep and almost as long as its stem, like a Λ
    slashed_ones: bool  # 1s leaning far more than the other digits, like a slash
    looped_ones: bool  # a 1 written like a cursive l: up from its foot, a loop, and down
    foot_ones: float  # probability that a 1 gets a foot
    barred_sevens: bool
    drawn_sevens: bool  # a 7 whose stem bows and sweeps to the left, crossed or not
    drawn_fives: bool  # a 5 written like a check mark with a bar on top (a √ with its bar)
    ticked_sevens: bool
    curly_nines: bool  # a 9 whose tail curls to the left, as in much of Latin America
    drawn_nines: bool  # a 9 whose stem drops from the bottom of its loop, like a ρ
    looped_twos: bool
    curled_twos: bool  # a 2 that starts with a curl at its top left
    drawn_twos: bool  # a 2 whose top is a closed loop, like a 9's, above its foot
    open_fours: bool  # a 4 open at the top, its right stroke short
    wobble: float  # baseline jitter, in digit heights
    drift: float  # baseline slope across the string
    elastic: float  # largest bend of a digit's strokes, in pixels of its 28x28 (0: none)
    joined: float  # probability that a digit is joined to the next by a stroke
    small_cents: bool  # the last two digits written small and high, as cents often are
    small_zeros: float  # probability that a 0 is written small, on the line, like an o
    descenders: float  # probability that a 4, 7 or 9 (a 1 half as often) reaches below the line


def random_style(rng: np.random.Generator) -> Style:
    """A random writer's style."""
    return Style(
        height=DRAW_HEIGHT * float(rng.uniform(0.85, 1.1)),
        slant=float(rng.normal(0.12, 0.18)),
        # The gap between two digits' ink: on the real check amounts 36 % of neighbouring
        # digits touch or overlap (their boxes) and the median gap is 0.07 of their
        # height; these writers' gaps give about as many (tests/reader/test_synth.py).
        spacing=float(rng.choice([rng.uniform(-0.15, 0.0), rng.uniform(0.0, 0.2),
                                  rng.uniform(0.2, 0.6)], p=[0.35, 0.4, 0.25])),
        spacing_jitter=float(rng.uniform(0.02, 0.12)),
        stroke=int(rng.choice([-2, -2, -1, -1, 0, 0, 1, 2])),
        flag_ones=bool(rng.random() < FLAG_ONES_SHARE),
        steep_flags=bool(rng.random() < STEEP_FLAGS_SHARE),
        slashed_ones=bool(rng.random() < SLASHED_ONES_SHARE),
        looped_ones=bool(rng.random() < 0.12),
        foot_ones=float(rng.choice([0.0, 0.0, 0.5])),
        # The hands MNIST hardly has, each a writer's in three to one in two, as cheque
        # writers write them more often than MNIST's (measured with more of them: "Λ 1s,
        # curled 9s" in docs/record/reading.md).
        barred_sevens=bool(rng.random() < 0.55),
        drawn_sevens=bool(rng.random() < 0.4),
        drawn_fives=bool(rng.random() < 0.35),
        ticked_sevens=bool(rng.random() < 0.3),
        curly_nines=bool(rng.random() < 0.45),
        drawn_nines=bool(rng.random() < 0.45),
        looped_twos=bool(rng.random() < 0.4),
        curled_twos=bool(rng.random() < 0.3),
        drawn_twos=bool(rng.random() < 0.4),
        open_fours=bool(rng.random() < 0.45),
        wobble=float(rng.uniform(0.0, 0.07)),
        drift=float(rng.normal(0.0, 0.04)),
        elastic=float(rng.uniform(1.0, 3.0)) if rng.random() < ELASTIC_SHARE else 0.0,
        joined=float(rng.choice([0.0, 0.0, rng.uniform(0.2, 0.8)])),
        small_cents=bool(rng.random() < 0.08),
        small_zeros=float(rng.choice([0.0, 0.0, 0.0, 0.0, rng.uniform(0.5, 1.0)])),
        descenders=float(rng.uniform(0.5, 1.0)) if rng.random() < DESCENDERS_SHARE else 0.0,
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
    a 7 with a bar or a tick, a 9 with a curled tail or drawn like a ρ, a 2 with a loop or a
    curled start or drawn with a closed loop on top, a 4 drawn open, a 5 drawn like a check
    mark, a 1 drawn like a cursive l. The result is padded for the strokes a style adds."""
    if label == 9 and style.drawn_nines:
        return _drawn_nine(rng)
    if label == 4 and style.open_fours:
        return _open_four(rng)
    if label == 7 and style.drawn_sevens:
        return _drawn_seven(style.barred_sevens, rng)
    if label == 5 and style.drawn_fives:
        return _drawn_five(rng)
    if label == 1 and style.looped_ones:
        return _looped_one(rng)
    if label == 2 and style.drawn_twos:
        return _drawn_two(style.looped_twos, rng)
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
            _flag(out, top_x, top, height, thick, style.steep_flags, rng)
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
        # From a hook to a curl back up towards the loop (where it looks most like an 8).
        _curve(out, (x, bottom), (x - 0.2 * height, bottom + 0.08 * height),
               (x - rng.uniform(0.2, 0.5) * height, bottom - rng.uniform(0.05, 0.45) * height),
               thick)  # fmt: skip
    elif label == 2 and style.looped_twos:
        base = ink[ink[:, 0] >= top + 0.7 * height]
        x, y = int(base[:, 1].min()), int(base[np.argmin(base[:, 1]), 0])
        axes = (int(rng.integers(3, 8)), int(rng.integers(2, 6)))
        cv2.ellipse(out, (x + axes[0] - 1, y - axes[1]), axes, 0, 0, 360, 255, 1, cv2.LINE_AA)
    if label == 2 and style.curled_twos:  # the pen's start rolls inwards, a little loop
        upper = ink[ink[:, 0] <= top + 0.4 * height]
        y, x = (int(v) for v in upper[np.argmin(upper[:, 1])])
        r = float(rng.uniform(1.5, 3.5))
        centre = (x + r * rng.uniform(0.3, 0.8), y + r * rng.uniform(0.4, 0.9))
        start = math.atan2(y - centre[1], x - centre[0])
        _arc(out, centre, (r, r), 0.0, start, start + rng.uniform(1.4, 2.0) * math.pi, thick)
    return out


# The drawn digits: their height, as MNIST's digits are about 20 pixels of a 28x28 box,
# and the box, as restyle's output is padded.
_DRAWN = 20.0
_BOX = 28 + 2 * _PAD


def _pen(rng: np.random.Generator) -> int:
    return int(rng.choice([2, 2, 3]))


def _soft(image: np.ndarray) -> np.ndarray:
    """A drawn digit's edges softened as a scanned pen stroke's are."""
    return cv2.GaussianBlur(image, (0, 0), 0.6)


def _arc(image: np.ndarray, centre: tuple[float, float], axes: tuple[float, float],
         tilt: float, start: float, stop: float, thick: int) -> None:  # fmt: skip
    """A stroke along an ellipse (angles in radians, y down) from ``start`` to ``stop``."""
    a = np.linspace(start, stop, max(8, int(abs(stop - start) * 6)))
    x, y = axes[0] * np.cos(a), axes[1] * np.sin(a)
    c, s = math.cos(tilt), math.sin(tilt)
    points = np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)
    cv2.polylines(image, [np.rint(points).astype(np.int32)], False, 255, thick, cv2.LINE_AA)


def _sheet(rng: np.random.Generator) -> tuple[np.ndarray, float, float, int]:
    """A blank box for a digit drawn stroke by stroke, the digit's height and top (it is
    centred), and the pen's width."""
    height = _DRAWN * rng.uniform(0.9, 1.1)
    return np.zeros((_BOX, _BOX), np.uint8), height, (_BOX - height) / 2, _pen(rng)


def _drawn_nine(rng: np.random.Generator) -> np.ndarray:
    """A 9 whose stem drops from the bottom or left of its loop (like a ρ, as much of Latin
    America writes it): the loop upright or leaning like a teardrop, the stem straight or
    bowed, most ending in a tail curled out to the left, from a tick to a curl back up."""
    out, height, top, thick = _sheet(rng)
    rx, ry = height * rng.uniform(0.22, 0.4), height * rng.uniform(0.18, 0.28)
    centre = (_BOX / 2 + rng.uniform(0.0, 0.15) * height, top + ry)
    tilt = float(rng.uniform(-0.9, 0.5))  # a loop leaning like a teardrop, or upright
    # Where the stem leaves the loop: from its bottom (pi/2) round to its left (pi).
    leave = float(rng.uniform(0.5, 1.0) * math.pi)
    begin = leave + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 0.3)
    turn = float(rng.choice([-1.0, 1.0]))  # the pen goes round either way
    _arc(out, centre, (rx, ry), tilt, begin, begin + turn * rng.uniform(2.0, 2.3) * math.pi,
         thick)  # fmt: skip
    c, s = math.cos(tilt), math.sin(tilt)
    ex, ey = rx * math.cos(leave), ry * math.sin(leave)
    start = (centre[0] + c * ex - s * ey, centre[1] + s * ex + c * ey)
    bottom = top + height
    end = (start[0] + rng.uniform(-0.25, 0.15) * height, bottom)
    middle = ((start[0] + end[0]) / 2 + rng.uniform(-0.15, 0.15) * height, (start[1] + bottom) / 2)
    _curve(out, start, middle, end, thick)
    if rng.random() < 0.65:  # the hook at the foot, from a tick to a curl back up
        hook = (end[0] - rng.uniform(0.15, 0.45) * height, end[1] - rng.uniform(0.0, 0.5) * height)
        _curve(out, end, (end[0] - 0.05 * height, end[1] + 0.08 * height), hook, thick)
    return _soft(out)


def _open_four(rng: np.random.Generator) -> np.ndarray:
    """A 4 open at the top: a stroke down to the left, a bar to the right, and a short
    right stroke that starts below the top (an L with a tick), crossing the bar or not."""
    out, height, top, thick = _sheet(rng)
    bottom = top + height
    width = height * rng.uniform(0.45, 0.7)
    left = _BOX / 2 - width / 2
    # Its bar from a little below the middle to near the foot, the stroke down to it
    # from straight to leaning far over.
    bar = top + height * rng.uniform(0.55, 0.85)
    start = (left + width * rng.uniform(0.1, 0.45), top)
    corner = (left, bar)
    _curve(out, start, ((start[0] + corner[0]) / 2, (top + bar) / 2), corner, thick)
    right = (left + width, bar - height * rng.uniform(-0.03, 0.05))
    _curve(out, corner, ((left + right[0]) / 2, bar + rng.uniform(-1.0, 1.0)), right, thick)
    x = left + width * rng.uniform(0.6, 0.85)
    tick_top = top + height * rng.uniform(0.15, 0.6)
    tick_end = bar + rng.uniform(0.0, 1.0) * (bottom - bar) if rng.random() < 0.7 else bar
    _curve(out, (x, tick_top), (x - 0.5, (tick_top + tick_end) / 2),
           (x - rng.uniform(0.0, 0.1) * height, tick_end), thick)  # fmt: skip
    return _soft(out)


def _drawn_seven(barred: bool, rng: np.random.Generator) -> np.ndarray:
    """A 7 whose stem bows out and sweeps down to the left, as a 2's diagonal does, crossed
    (``barred``) by a long bar at its middle; its top bar half the digit's width to all of
    it, or a mere stub where it is crossed (it then looks much like a +)."""
    out, height, top, thick = _sheet(rng)
    bottom = top + height
    width = height * rng.uniform(0.5, 0.75)
    corner = (_BOX / 2 + width / 2, top + rng.uniform(0.0, 0.06) * height)
    # A stub of a top bar only where the crossing bar tells the 7 from a flagged 1.
    reach = rng.uniform(0.25 if barred else 0.5, 1.0)
    start = (corner[0] - width * reach, top + rng.uniform(0.0, 0.12) * height)
    _curve(out, start, ((start[0] + corner[0]) / 2, top + rng.uniform(-0.04, 0.04) * height),
           corner, thick)  # fmt: skip
    foot = (corner[0] - width * rng.uniform(0.5, 1.0), bottom)
    bow = rng.uniform(0.0, 0.25) * height  # out to the right of the straight stem
    middle = ((corner[0] + foot[0]) / 2 + bow, (corner[1] + bottom) / 2)
    _curve(out, corner, middle, foot, thick)
    if barred:
        row = top + height * rng.uniform(0.4, 0.6)
        share = (row - corner[1]) / (bottom - corner[1])  # the stem's x there, near enough
        x = (1 - share) ** 2 * corner[0] + 2 * (1 - share) * share * middle[0] + share**2 * foot[0]
        half = height * rng.uniform(0.2, 0.35)
        tilt = rng.uniform(-0.08, 0.04) * height
        _curve(out, (x - half, row - tilt), (x, row), (x + half, row + tilt), thick)
    return _soft(out)


def _drawn_five(rng: np.random.Generator) -> np.ndarray:
    """A 5 written in one sweep like a check mark, as many cheque writers write it: a short
    stroke down from its left side (a third to four fifths of the way down) to its foot, a
    long one up to its top, and the top bar out to the right (a √ with its bar), the bar
    short or long; most narrower than they are high."""
    out, height, top, thick = _sheet(rng)
    width = height * rng.uniform(0.5, 1.0)
    left = _BOX / 2 - width / 2
    start = (left + width * rng.uniform(0.0, 0.15), top + height * rng.uniform(0.35, 0.8))
    foot = (left + width * rng.uniform(0.15, 0.35), top + height * rng.uniform(0.88, 1.0))
    _curve(out, start, ((start[0] + foot[0]) / 2 - 0.5, (start[1] + foot[1]) / 2), foot, thick)
    corner = (left + width * rng.uniform(0.4, 0.65), top + height * rng.uniform(0.0, 0.08))
    bow = rng.uniform(-0.08, 0.08) * height
    _curve(out, foot, ((foot[0] + corner[0]) / 2 + bow, (foot[1] + corner[1]) / 2), corner,
           thick)  # fmt: skip
    end = (left + width * rng.uniform(0.85, 1.1), corner[1] + height * rng.uniform(-0.04, 0.1))
    _curve(out, corner, ((corner[0] + end[0]) / 2, (corner[1] + end[1]) / 2 - 0.5), end, thick)
    return _soft(out)


def _looped_one(rng: np.random.Generator) -> np.ndarray:
    """A 1 written like a cursive l: a stroke up from near its foot on the left to its top,
    a narrow loop there, and the stem down, leaning, maybe with a tail out to the right."""
    out, height, top, thick = _sheet(rng)
    bottom = top + height
    lean = height * rng.uniform(0.05, 0.45)  # how far right its top is of its foot

    def axis(y: float) -> float:
        return _BOX / 2 - lean / 2 + lean * (bottom - y) / height

    crest = (axis(top), top)
    foot = (axis(bottom), bottom)
    loop = top + height * rng.uniform(0.4, 0.75)  # the loop's lower end, where strokes cross
    width = height * rng.uniform(0.15, 0.3)
    entry_y = top + height * rng.uniform(0.6, 1.0)
    entry = (axis(entry_y) - height * rng.uniform(0.05, 0.4), entry_y)
    _curve(out, entry, (axis(loop) + 2 * width, loop), crest, thick)
    _curve(out, crest, (axis((top + loop) / 2) - width, (top + loop) / 2 + height * 0.1), foot,
           thick)  # fmt: skip
    if rng.random() < 0.4:
        tail = (foot[0] + height * rng.uniform(0.1, 0.25), foot[1] - 0.08 * height)
        _curve(out, foot, (foot[0] + 0.05 * height, foot[1] + 0.03 * height), tail, thick)
    return _soft(out)


def _drawn_two(looped: bool, rng: np.random.Generator) -> np.ndarray:
    """A 2 whose top is a closed loop, as many cheque writers write it: the pen goes round
    a loop like a 9's, sweeps from its right side down to the bottom left, and draws the
    foot out to the right, through a small loop at the corner where the writer
    ``looped`` (what tells it from a 9 is the foot)."""
    out, height, top, thick = _sheet(rng)
    bottom = top + height
    width = height * rng.uniform(0.6, 0.9)
    left = _BOX / 2 - width / 2
    rx, ry = width * rng.uniform(0.3, 0.45), height * rng.uniform(0.18, 0.3)
    centre = (left + width * rng.uniform(0.4, 0.55), top + ry)
    tilt = float(rng.uniform(-0.3, 0.3))
    # Once round, either way, to leave the loop at its lower right (angles y down).
    leave = float(math.pi * rng.uniform(0.1, 0.45))
    begin = leave - float(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 2.3) * math.pi)
    _arc(out, centre, (rx, ry), tilt, begin, leave, thick)
    c, s = math.cos(tilt), math.sin(tilt)
    ex, ey = rx * math.cos(leave), ry * math.sin(leave)
    start = (centre[0] + c * ex - s * ey, centre[1] + s * ex + c * ey)
    corner = (left + width * rng.uniform(0.0, 0.15), bottom - rng.uniform(0.0, 0.05) * height)
    bow = rng.uniform(0.0, 0.15) * height  # the sweep bows out to the right and down
    middle = ((start[0] + corner[0]) / 2 + bow, (start[1] + corner[1]) / 2 + bow / 2)
    _curve(out, start, middle, corner, thick)
    if looped:  # a small loop at the corner before the foot
        r = height * rng.uniform(0.06, 0.12)
        _arc(out, (corner[0] + r, corner[1] - r), (r, r), 0.0, math.pi * 0.75, math.pi * 2.6,
             thick)  # fmt: skip
    end = (left + width * rng.uniform(0.85, 1.15), bottom + rng.uniform(-0.08, 0.04) * height)
    _curve(out, corner, ((corner[0] + end[0]) / 2, (corner[1] + end[1]) / 2 + rng.uniform(-1, 1)),
           end, thick)  # fmt: skip
    return _soft(out)


def _bar(image: np.ndarray, row: int, thick: int, rng: np.random.Generator) -> None:
    """A bar across the digit's stroke at ``row`` (a 7's, as in much of Europe and Latin
    America), reaching 3 to 12 pixels either side."""
    cols = np.flatnonzero(image[row] > 100)
    if cols.size:
        centre = int(cols.mean())
        half = int(rng.integers(3, 13))
        cv2.line(image, (centre - half, row), (centre + half, row), 255, thick, cv2.LINE_AA)


def _curve(image: np.ndarray, start: tuple[float, float], middle: tuple[float, float],
           end: tuple[float, float], thick: int) -> None:  # fmt: skip
    """A quadratic Bezier stroke from ``start`` through near ``middle`` to ``end``."""
    t = np.linspace(0.0, 1.0, 10)[:, None]
    a, b, c = (np.array(p, np.float64) for p in (start, middle, end))
    points = (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c
    cv2.polylines(image, [np.rint(points).astype(np.int32)], False, 255, thick, cv2.LINE_AA)


def _flag(image: np.ndarray, x: int, y: int, height: int, thick: int, steep: bool,
          rng: np.random.Generator) -> None:  # fmt: skip
    """Draw the flag of a 1 from its top (x, y) down to the left: straight or hooked, short
    or as long as most of the digit (as in much of Europe and Latin America); a ``steep``
    one is almost as long as the stem, like a Λ."""
    degrees = rng.uniform(45, 70) if steep else rng.uniform(25, 70)
    length = height * (rng.uniform(0.6, 0.95) if steep else rng.uniform(0.25, 0.65))
    angle = math.radians(degrees)
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
