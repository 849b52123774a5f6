"""Evaluation reports as PNG bytes, drawn with Pillow alone (no matplotlib)."""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

CELL = 44
MARGIN = 64
GALLERY_COLUMNS = 8
GALLERY_MAX = 64
GALLERY_SCALE = 3
CAPTION = 18
PAD = 6


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, AttributeError):
        return ImageFont.load_default()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _heat(fraction: float) -> tuple[int, int, int]:
    """White (0) to deep blue (1); the square root keeps a few errors visible."""
    t = float(np.sqrt(np.clip(fraction, 0.0, 1.0)))
    return (int(255 - 247 * t), int(255 - 207 * t), int(255 - 148 * t))


def _vertical_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """``text`` drawn black on white and turned 90° counter-clockwise, for a y-axis title."""
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGB", (int(right - left) + 4, int(bottom - top) + 4), "white")
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill="black", font=font)
    return label.rotate(90, expand=True)


def confusion_matrix_png(matrix: np.ndarray | list[list[int]]) -> bytes:
    """A heat-map of a 10x10 confusion matrix (rows true, columns predicted) with its counts."""
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {counts.shape}")
    k = counts.shape[0]
    size = (MARGIN + k * CELL + PAD, MARGIN + k * CELL + PAD)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    small, title = _font(13), _font(15)
    row_totals = np.maximum(counts.sum(axis=1), 1)
    for true in range(k):
        for pred in range(k):
            x, y = MARGIN + pred * CELL, MARGIN + true * CELL
            fill = _heat(counts[true, pred] / row_totals[true])
            draw.rectangle((x, y, x + CELL, y + CELL), fill=fill, outline=(200, 200, 200))
            ink = "white" if sum(fill) < 400 else "black"
            centre = (x + CELL // 2, y + CELL // 2)
            draw.text(centre, str(counts[true, pred]), fill=ink, font=small, anchor="mm")
    for i in range(k):
        draw.text(
            (MARGIN + i * CELL + CELL // 2, MARGIN - 10),
            str(i),
            fill="black",
            font=title,
            anchor="mb",
        )
        draw.text(
            (MARGIN - 10, MARGIN + i * CELL + CELL // 2),
            str(i),
            fill="black",
            font=title,
            anchor="rm",
        )
    draw.text((MARGIN + k * CELL // 2, 6), "predicted", fill="black", font=title, anchor="mt")
    label = _vertical_text("true", title)
    image.paste(label, (6, MARGIN + (k * CELL - label.height) // 2))
    return _png(image)


def misclassified_gallery_png(
    images: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    max_items: int = GALLERY_MAX,
) -> bytes:
    """A grid of enlarged digits, each captioned 'true->pred p=0.93' (the first ``max_items``)."""
    pixels = np.asarray(images)
    if pixels.ndim != 3 or pixels.shape[1:] != (28, 28) or pixels.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (k, 28, 28), got {pixels.dtype} {pixels.shape}")
    k = len(pixels)
    if not len(true) == len(predicted) == len(confidence) == k:
        raise ValueError(
            f"images, true, predicted and confidence differ in length: "
            f"{k}, {len(true)}, {len(predicted)}, {len(confidence)}"
        )
    shown = min(k, max_items)
    font = _font(13)
    if shown == 0:
        image = Image.new("RGB", (320, 60), "white")
        ImageDraw.Draw(image).text(
            (160, 30), "no misclassified examples", fill="black", font=font, anchor="mm"
        )
        return _png(image)
    side = 28 * GALLERY_SCALE
    tile_w, tile_h = side + 2 * PAD, side + CAPTION + 2 * PAD
    columns = min(GALLERY_COLUMNS, shown)
    rows = -(-shown // columns)
    image = Image.new("RGB", (columns * tile_w, rows * tile_h), "white")
    draw = ImageDraw.Draw(image)
    for i in range(shown):
        x, y = (i % columns) * tile_w + PAD, (i // columns) * tile_h + PAD
        digit = Image.fromarray(pixels[i], mode="L").resize((side, side), Image.Resampling.NEAREST)
        image.paste(digit.convert("RGB"), (x, y))
        caption = f"{int(true[i])}->{int(predicted[i])} p={float(confidence[i]):.2f}"
        draw.text((x + side // 2, y + side + 3), caption, fill="black", font=font, anchor="mt")
    if shown < k:
        logger.info("gallery shows %d of %d misclassified examples", shown, k)
    return _png(image)


def misread_strings_png(
    lines: list[np.ndarray], truth: list[str], read: list[str], max_items: int = 24
) -> bytes:
    """Line images (uint8 or float (32, w), ink bright) each captioned 'truth -> read', in
    one column (the first ``max_items``)."""
    if not len(lines) == len(truth) == len(read):
        raise ValueError(f"lines, truth and read differ in length: {len(lines)}, "
                         f"{len(truth)}, {len(read)}")  # fmt: skip
    shown = min(len(lines), max_items)
    font = _font(13)
    if shown == 0:
        image = Image.new("RGB", (320, 60), "white")
        ImageDraw.Draw(image).text((160, 30), "no misread strings", fill="black", font=font,
                                   anchor="mm")  # fmt: skip
        return _png(image)
    tiles = []
    for k in range(shown):
        pixels = np.asarray(lines[k])
        grey = pixels if pixels.dtype == np.uint8 else np.rint(pixels * 255).astype(np.uint8)
        tile = Image.fromarray(255 - grey, mode="L")
        tiles.append(tile.resize((tile.width * 2, tile.height * 2), Image.Resampling.NEAREST))
    width = max(320, max(t.width for t in tiles) + 2 * PAD)
    height = sum(t.height + CAPTION + 2 * PAD for t in tiles)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    y = PAD
    for tile, want, got in zip(tiles, truth[:shown], read[:shown], strict=True):
        image.paste(tile.convert("RGB"), (PAD, y))
        draw.text((PAD, y + tile.height + 2), f"{want} -> {got or '(nothing)'}", fill="black",
                  font=font)  # fmt: skip
        y += tile.height + CAPTION + 2 * PAD
    return _png(image)
