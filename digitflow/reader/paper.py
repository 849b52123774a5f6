"""The paper a field is written on, and how the scanner sees it.

Ink is put on unevenly lit paper with textures and security patterns (guilloche, hatching,
rosettes, dot screens), printed rules and box edges, stray ink from neighbouring text,
noise, blur, a scan's low resolution and JPEG.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


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


def to_scan(ink: np.ndarray, rng: np.random.Generator, d: float) -> np.ndarray:
    """Put ink (digits ``d`` pixels high) on patterned, unevenly lit paper at a scan's
    resolution: uint8, dark ink."""
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
