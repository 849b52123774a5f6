"""Decode scanned files (PNG, JPEG, TIFF, BMP, PDF) into greyscale pages."""

from __future__ import annotations

import contextlib
import io
import itertools
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile
from PIL.TiffImagePlugin import TiffImageFile

from digitflow.errors import ImageError

RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
DEFAULT_MAX_PIXELS = 80_000_000
DEFAULT_MIN_SIDE = 8
DEFAULT_PDF_DPI = 200

# EXIF orientations that turn the stored image a quarter round.
_ORIENTATION = 0x0112
_SIDEWAYS = (5, 6, 7, 8)

# Everything Pillow's decoders are known to raise on damaged data; anything else is a bug.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
                  struct.error, zlib.error, MemoryError)  # fmt: skip


@dataclass(frozen=True)
class Page:
    """One page of a file: pixels (greyscale uint8, 0 = black) or why it could not be read;
    ``scale``: the file's page is this many times larger each way than ``pixels`` (a large
    JPEG decoded at a working size, see ``load_pages``)."""

    index: int
    pixels: np.ndarray | None
    error: str | None = None
    scale: int = 1

    @property
    def ok(self) -> bool:
        """True when the page decoded and `pixels` holds it."""
        return self.pixels is not None


# The first bytes of the raster formats read: a file that starts so is no PDF, whatever
# its metadata says (a TIFF's description or a JPEG's comment may hold "%PDF-").
_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*",
                 b"II+\x00", b"MM\x00+", b"BM")  # fmt: skip


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` is a PDF: its header anywhere in the first kilobyte, as PDF readers
    look for it (a mail gateway's or an editor's bytes before it do not make it another
    file), unless it starts as an image does."""
    return not data.startswith(_RASTER_MAGIC) and b"%PDF-" in data[:1024]


def load_pages(
    data: bytes,
    name: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    pdf_dpi: int = DEFAULT_PDF_DPI,
    shrink: Callable[[tuple[int, int]], int] | None = None,
) -> Iterator[Page]:
    """Yield every page of a scanned file as greyscale uint8; raise ImageError if none can be.

    The file is recognised by its content, not its name. A file that cannot be opened, or
    a single-page file whose page is unusable, raises ImageError now. In a multi-page
    TIFF or PDF a bad page is yielded as `Page(index, None, error)` and the rest follow.
    ``shrink`` (a page's shape, height first, to how many times smaller it may be read):
    a one-page JPEG is then decoded that much smaller, at most, in the JPEG's own
    transform (by 2, 4 or 8), far faster than decoding it whole; its Page's ``scale`` says
    by how much.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes); re-export or re-scan it")
    if is_pdf(data):
        return _pdf_pages(data, name, max_pixels=max_pixels, min_side=min_side, dpi=pdf_dpi)
    image = _open_raster(data, name, max_pixels)
    count, broken = _frames(image, data)
    if count == 1 and broken is None:
        # Decode now so that every problem with an ordinary one-page scan raises here.
        scale = _draft(image, shrink) if shrink is not None else 1
        pixels = _decode_frame(image, 0, count, name, max_pixels, min_side)
        if image.format == "PNG" and _last_row_blank(image):
            _check_png_data(data, name)
        return iter([Page(0, pixels, scale=scale)])
    pages = _raster_pages(image, count, name, max_pixels, min_side)
    if broken is None:
        return pages
    lost = Page(count, None, f"{name}: the file breaks off after page {count - 1} (the next "
                f"page cannot be reached: {broken}); it is probably truncated or corrupt: copy "
                "or scan it again")  # fmt: skip
    return itertools.chain(pages, [lost])


def _frames(image: Image.Image, data: bytes) -> tuple[int, str | None]:
    """How many frames of a raster can be reached, and why a next one cannot (None: the
    file ends where its last frame says it does)."""
    if image.format == "MPO":  # a phone's extra frames (previews, depth maps) are no pages
        return 1, None
    try:
        count = int(getattr(image, "n_frames", 1))
    except (*_DECODE_ERRORS, TypeError) as exc:  # a TIFF whose chain of pages breaks off
        count = 0
        with contextlib.suppress(*_DECODE_ERRORS, TypeError):
            while True:
                image.seek(count)
                count += 1
        with contextlib.suppress(*_DECODE_ERRORS, TypeError):
            image.seek(0)
        return max(count, 1), str(exc) or type(exc).__name__
    if not isinstance(image, TiffImageFile):
        return count, None
    # Each page of a TIFF points on to the next (0: none). Where a pointer leads past the
    # file's end, Pillow may count the page before again: the same pointer twice.
    pointers: list[int] = []
    try:
        for index in range(count):
            image.seek(index)
            pointers.append(int(image.tag_v2.next or 0))
            if index and pointers[-1] == pointers[-2]:
                pointers.pop()
                break
        image.seek(0)
    except (*_DECODE_ERRORS, TypeError) as exc:
        return max(len(pointers), 1), str(exc) or type(exc).__name__
    # A last page that points back to a page already read (a loop, which Pillow ends) is no
    # break: the pages are all there.
    if pointers[-1] and pointers[-1] not in (_first_page(data), *pointers[:-1]):
        last = len(pointers) - 1
        return len(pointers), f"page {last} points on to byte {pointers[-1]:,}, which is no page"
    return count, None


def _first_page(data: bytes) -> int:
    """Where a TIFF's first page lies (its header's pointer; 0 if the header is short)."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: an 8-byte pointer after 4 more bytes
    with contextlib.suppress(struct.error):
        return int(struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0])
    return 0


def _open_raster(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open a raster image lazily, refusing unknown formats and oversized headers."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it; we enforce ours below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            # Never quote the file: it may be anything, a secret included.
            f"{name}: not a readable image ({len(data):,} bytes in no format digitflow "
            f"reads); expected {', '.join(RASTER_FORMATS)} or PDF"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{name}: cannot read the image header ({exc})") from exc
    if image.format not in (*RASTER_FORMATS, "MPO"):
        raise ImageError(
            f"{name}: {image.format} images are not supported; "
            f"convert to {', '.join(RASTER_FORMATS)} or PDF"
        )
    _check_size(image.size, f"{name}", max_pixels, min_side=1)
    return image


def _draft(image: Image.Image, shrink: Callable[[tuple[int, int]], int]) -> int:
    """Set a JPEG to decode ``shrink`` times smaller, rounded down to 2, 4 or 8 (what the
    JPEG's transform does alone); the scale it will decode at (1: whole)."""
    if not isinstance(image, JpegImageFile) or image.mode not in ("L", "RGB", "YCbCr"):
        return 1
    width, height = image.size
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except _DECODE_ERRORS:
        return 1  # decoded whole, where its damaged EXIF is reported
    if orientation in _SIDEWAYS:
        width, height = height, width  # the page stands the other way up
    factor = shrink((height, width))
    scale = next(s for s in (8, 4, 2, 1) if s <= max(1, factor))
    if scale > 1:
        full = image.size[0]
        image.draft("L", (image.size[0] // scale, image.size[1] // scale))
        scale = round(full / image.size[0])
    return scale


def _raster_pages(
    image: Image.Image, count: int, name: str, max_pixels: int, min_side: int
) -> Iterator[Page]:
    """Yield each frame of a multi-page raster, reporting bad frames without stopping."""
    for index in range(count):
        try:
            pixels = _decode_frame(image, index, count, name, max_pixels, min_side)
        except ImageError as exc:
            yield Page(index, None, str(exc))
        else:
            yield Page(index, pixels)


def _decode_frame(
    image: Image.Image, index: int, count: int, name: str, max_pixels: int, min_side: int
) -> np.ndarray:
    """Decode one frame to greyscale uint8, upright per its EXIF orientation."""
    where = _where(name, index, count)
    try:
        image.seek(index)
        _check_size(image.size, where, max_pixels, min_side)
        if isinstance(image, JpegImageFile) and image.mode in ("RGB", "YCbCr"):
            # libjpeg decodes the luma alone, skipping the colour planes and the RGB step:
            # twice as fast on colour scans, and the same greys to within a few levels.
            image.draft("L", image.size)
        image.load()
        return to_grey(ImageOps.exif_transpose(image))
    except _NotNumbers as exc:
        raise ImageError(f"{where}: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(
            f"{where}: cannot decode the image data ({exc}); the file is probably "
            "truncated or corrupt: copy or scan it again"
        ) from exc


def _last_row_blank(image: Image.Image) -> bool:
    """Whether the decoded image's last row is all zeros, as Pillow leaves the rows of a
    PNG whose image data ends before them."""
    width, height = image.size
    return not np.asarray(image.crop((0, height - 1, width, height))).any()


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


def _check_png_data(data: bytes, name: str) -> None:
    """ImageError if a PNG's image data (its IDAT chunks, inflated) holds fewer bytes than
    its rows need. Pillow decodes a compressed stream that ends early without a word, its
    missing rows black: a page cut short would be read with a band of ink."""
    width, height, depth, colour, interlace = struct.unpack(">IIBB2xB", data[16:29])
    if colour not in _PNG_CHANNELS:
        return

    def size(w: int, h: int) -> int:
        return 0 if w <= 0 or h <= 0 else h * (1 + (w * _PNG_CHANNELS[colour] * depth + 7) // 8)

    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    wanted = sum(size((width - x + dx - 1) // dx, (height - y + dy - 1) // dy)
                 for x, y, dx, dy in passes)  # fmt: skip
    inflate, got, pos = zlib.decompressobj(), 0, 8
    try:
        while pos + 8 <= len(data) and got < wanted and not inflate.eof:
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                chunk = data[pos + 8 : pos + 8 + length]
                while chunk and got < wanted and not inflate.eof:
                    got += len(inflate.decompress(chunk, 1 << 20))
                    chunk = inflate.unconsumed_tail
            pos += 12 + length
    except zlib.error:
        pass  # counted as far as it goes
    if got < wanted:
        raise ImageError(
            f"{name}: its image data ends early (it holds {got:,} of the {wanted:,} bytes "
            "its rows need); the file is probably truncated or corrupt: copy or scan it again"
        )


def _pdf_pages(
    data: bytes, name: str, *, max_pixels: int, min_side: int, dpi: int
) -> Iterator[Page]:
    """Open a PDF now (raising if it is unreadable) and render its pages lazily."""
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ImageError(f"{name}: not a readable PDF ({exc})") from exc
    count = len(document)
    if count == 0:
        raise ImageError(f"{name}: the PDF has no pages")

    def render(index: int) -> np.ndarray:
        where = _where(name, index, count)
        try:
            page = document[index]
            width, height = page.get_size()
            scale = dpi / 72.0  # PDF sizes are in points
            _check_size((round(width * scale), round(height * scale)), where, max_pixels, min_side)
            pixels = page.render(scale=scale, grayscale=True).to_numpy()
        except pdfium.PdfiumError as exc:
            raise ImageError(f"{where}: cannot render the page ({exc})") from exc
        return np.ascontiguousarray(pixels.reshape(pixels.shape[:2]), dtype=np.uint8)

    if count == 1:
        return iter([Page(0, render(0))])
    return _lazy_pages(render, count)


def _lazy_pages(render: Callable[[int], np.ndarray], count: int) -> Iterator[Page]:
    """Yield `count` pages from `render`, turning a failing page into an error record."""
    for index in range(count):
        try:
            yield Page(index, render(index))
        except ImageError as exc:
            yield Page(index, None, str(exc))


def _where(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name} page {index} (of pages 0..{count - 1})"


def _check_size(size: tuple[int, int], where: str, max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{where}: {width}x{height} pixels exceeds the limit of {max_pixels:,} pixels; "
            "refused as a possible decompression bomb (scan at a lower resolution)"
        )
    if min(width, height) < min_side:
        raise ImageError(
            f"{where}: {width}x{height} pixels is too small to hold a digit "
            f"(need at least {min_side} pixels a side)"
        )


class _NotNumbers(ValueError):
    """Float pixels that are NaN or infinite: no level of grey."""


def to_grey(image: Image.Image) -> np.ndarray:
    """Convert any Pillow image to greyscale uint8, compositing transparency on white."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _scale_wide(np.asarray(image))
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGBA", "RGBa", "La"):
        image = image.convert("RGB")  # CMYK, YCbCr, 1, …: Pillow knows each conversion
    if image.mode in ("LA", "RGBA", "RGBa", "La"):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _scale_wide(values: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit or float pixels to 0..255 by the bit depth the data actually uses.

    Scanners often store 10-, 12- or 14-bit samples in 16-bit files, so shifting right by
    8 would leave a 12-bit scan nearly black. Stretching to the min..max of each page
    would instead blow a blank page's noise up to full contrast, so the white point is
    the smallest 2**bits - 1 that holds the page's bright samples: all but the brightest
    thousandth, so that a hot pixel (a 12-bit scan's one sample at 65535, a float page's
    one at 1.02) does not turn the page black; those few are clipped.
    """
    is_float = np.issubdtype(values.dtype, np.floating)
    if is_float and not np.isfinite(values).all():
        raise _NotNumbers("it holds pixels that are no numbers (NaN or infinite): not a scan")
    values = values.astype(np.float32)  # 24 bits of precision: more than 8 bits need
    top = float(np.percentile(values, 99.9)) if values.size else 0.0
    if is_float and top <= 1.0:
        white = 1.0
    else:
        white = float(2 ** max(8, int(np.ceil(np.log2(top + 1.0)))) - 1)
    np.clip(values, 0.0, white, out=values)
    values *= 255.0 / white
    return np.rint(values, out=values).astype(np.uint8)
