"""Small synthetic pages for imaging tests: printed digits on paper, drawn in memory."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAPER = 235
INK = 30


def glyph(char: str, size: int = 40) -> np.ndarray:
    """One character as ink alpha (0..1), cropped tight."""
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), char, font=font, fill=255)
    alpha = np.asarray(canvas, np.float32) / 255.0
    rows = np.flatnonzero(alpha.max(axis=1) > 0.1)
    cols = np.flatnonzero(alpha.max(axis=0) > 0.1)
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def ink_lines(
    lines: list[str], size: int = 40, gap: float = 0.4, pitch: float = 2.5, margin: int = 40
) -> np.ndarray:
    """Ink alpha of several lines of digits; a space in a string is an extra-wide gap.

    A '+' joins its neighbours: the next digit is drawn overlapping the previous one.
    """
    width = margin * 2 + max(len(t) for t in lines) * size
    height = int(margin * 2 + len(lines) * pitch * size)
    ink = np.zeros((height, width), np.float32)
    for k, text in enumerate(lines):
        x, baseline, touch = margin, int(margin + (k + 0.8) * pitch * size), False
        for char in text:
            if char == "+":
                touch = True
                continue
            if char == " ":
                x += size
                continue
            alpha = glyph(char, size)
            h, w = alpha.shape
            if touch:
                x -= int(0.03 * size) + int(gap * size)  # overlap by a pixel or so
            region = ink[baseline - h : baseline, x : x + w]
            np.maximum(region, alpha, out=region)
            x += w + int(gap * size)
            touch = False
    return ink


def on_paper(ink: np.ndarray, paper: float = PAPER, level: float = INK, noise: float = 3.0,
             seed: int = 0) -> np.ndarray:  # fmt: skip
    """Dark ink on light paper with a little sensor noise, as uint8."""
    rng = np.random.default_rng(seed)
    page = paper - ink * (paper - level) + rng.normal(0, noise, ink.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def lit_unevenly(page: np.ndarray, darkest: float = 0.45) -> np.ndarray:
    """The page under light that falls off from the top left to `darkest` at bottom right."""
    ys, xs = np.mgrid[0 : page.shape[0], 0 : page.shape[1]]
    ramp = (ys / page.shape[0] + xs / page.shape[1]) / 2
    light = 1.0 - (1.0 - darkest) * ramp
    return np.clip(page * light, 0, 255).astype(np.uint8)


def rotated(page: np.ndarray, degrees: float) -> np.ndarray:
    """The page rotated about its centre, corners filled with paper."""
    image = Image.fromarray(page).rotate(degrees, Image.Resampling.BILINEAR, fillcolor=PAPER)
    return np.asarray(image)


def line_counts(boxes: list) -> list[int]:
    """How many digit boxes each line holds, in line order."""
    lines = [b.line for b in boxes]
    return [lines.count(k) for k in range(max(lines) + 1)] if lines else []
