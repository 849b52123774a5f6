"""Scanned files for the scoring tests, good and bad, made in memory from one MNIST page."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# One line of digits ("3141") drawn as fat strokes on light paper; enough for segmentation.
GLYPHS = {
    "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "3": [".###.", "#...#", "....#", "..##.", "....#", "#...#", ".###."],
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
}


def page(text: str = "3141", cell: int = 8) -> np.ndarray:
    """A greyscale page (dark ink on light paper) with ``text`` written once, large."""
    height, width = 7 * cell + 80, len(text) * 7 * cell + 80
    pixels = np.full((height, width), 235, np.uint8)
    for k, char in enumerate(text):
        for row, line in enumerate(GLYPHS[char]):
            for col, mark in enumerate(line):
                if mark == "#":
                    y, x = 40 + row * cell, 40 + k * 7 * cell + col * cell
                    pixels[y : y + cell, x : x + cell] = 30
    return pixels


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """An image's file bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    """A greyscale PNG."""
    return encode(Image.fromarray(pixels), "PNG")


def jpeg(pixels: np.ndarray) -> bytes:
    """A greyscale JPEG."""
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def cmyk_jpeg(pixels: np.ndarray) -> bytes:
    """A CMYK JPEG, as some print workflows and scanners write them."""
    return encode(Image.fromarray(pixels).convert("CMYK"), "JPEG", quality=90)


def alpha_png(pixels: np.ndarray) -> bytes:
    """Black ink on a fully transparent black background: only the alpha shows the page."""
    rgba = np.zeros((*pixels.shape, 4), np.uint8)
    rgba[..., 3] = 255 - pixels  # ink opaque, paper transparent
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def tiff16(pixels: np.ndarray) -> bytes:
    """A 16-bit greyscale TIFF (a high-end scanner's output)."""
    return encode(Image.fromarray(pixels.astype(np.uint16) * 257), "TIFF")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 100_000) -> bytes:
    """A 100-byte PNG whose header declares ``side``×``side`` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def multipage_tiff(pages: list[np.ndarray], corrupt: tuple[int, ...] = ()) -> bytes:
    """A deflate-compressed multi-page TIFF; the pages ``corrupt`` have scrambled data."""
    images = [Image.fromarray(p) for p in pages]
    data = bytearray(encode(images[0], "TIFF", save_all=True, append_images=images[1:],
                            compression="tiff_deflate"))  # fmt: skip
    for index in corrupt:
        with Image.open(io.BytesIO(bytes(data))) as tiff:
            tiff.seek(index)
            offset, count = tiff.tag_v2[273][0], tiff.tag_v2[279][0]
        data[offset : offset + count] = np.random.default_rng(index).bytes(count)
    return bytes(data)


def bad_and_good() -> dict[str, tuple[bytes, str, str]]:
    """Files by name: (bytes, expected status, a phrase the error must hold, or '')."""
    text = page()
    good = png(text)
    return {
        "empty.png": (b"", "quarantined", "empty (0 bytes)"),
        "truncated.png": (good[: len(good) // 2], "quarantined", "truncated"),
        "truncated.jpg": (jpeg(text)[:600], "quarantined", "truncated"),
        "notes.png": (b"call Bob about the 3141 invoice\n", "quarantined", "not a readable image"),
        "bomb.png": (bomb_png(), "quarantined", "decompression bomb"),
        "dot.png": (png(np.zeros((1, 1), np.uint8)), "quarantined", "too small"),
        "blank.png": (png(np.full((400, 300), 235, np.uint8)), "scored", ""),
        "cmyk.jpg": (cmyk_jpeg(text), "scored", ""),
        "alpha.png": (alpha_png(text), "scored", ""),
        "wide.tif": (tiff16(text), "scored", ""),
        "three pages.tif": (multipage_tiff([text, text, text], corrupt=(1,)), "partial", "page 1"),
        "sub dir/ünïcødé 数字 scan.png": (good, "scored", ""),
    }


def stalling_pdf(step: float) -> bytes:
    """A PDF of one page, under a kilobyte, filled with a pattern repeated every ``step``
    points: rendering it takes about (0.1 / step)^2 times a fifth of a second."""
    cell = b"0 0 0.5 0.5 re f"
    pattern = (b"<< /Type /Pattern /PatternType 1 /PaintType 1 /TilingType 1 /BBox [0 0 1 1] "
               b"/XStep %g /YStep %g /Resources << >> /Length %d >>\nstream\n%s\nendstream"
               % (step, step, len(cell), cell))  # fmt: skip
    fill = b"/Pattern cs /P scn 0 0 100 100 re f"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] /Contents 4 0 R "
        b"/Resources << /Pattern << /P 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(fill), fill),
        pattern,
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for k, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (k, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)  # fmt: skip
    return bytes(out)
