"""Decoding scanned files: every supported format, and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps, TiffImagePlugin

from digitflow.errors import ImageError
from digitflow.imaging import Page, load_pages


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def ramp(width: int = 64, height: int = 48) -> np.ndarray:
    """A left-to-right grey ramp: easy to check for orientation and scaling."""
    return np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))


def only_page(data: bytes, name: str = "scan.png", **options: int) -> np.ndarray:
    pages = list(load_pages(data, name, **options))
    assert len(pages) == 1 and pages[0].ok, pages
    assert pages[0].pixels is not None
    return pages[0].pixels


# --- formats that load --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF"])
def test_greyscale_formats_load_as_uint8_pages(fmt: str) -> None:
    pixels = only_page(encode(Image.fromarray(ramp()), fmt), f"scan.{fmt.lower()}")
    assert pixels.dtype == np.uint8 and pixels.shape == (48, 64)
    assert abs(int(pixels[10, 0]) - 0) < 8 and abs(int(pixels[10, -1]) - 255) < 8


def test_colour_image_becomes_grey() -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 20:] = (255, 255, 255)
    pixels = only_page(encode(Image.fromarray(rgb), "PNG"))
    assert pixels[0, 0] == 0 and pixels[0, -1] == 255


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])
def test_colour_jpeg_decodes_to_the_grey_of_its_colours(fmt: str) -> None:
    """Colour JPEGs are decoded to their luma directly: the grey Pillow would make of them."""
    rng = np.random.default_rng(0)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (12, 16, 3), np.uint8), 8, 0), 8, 1)
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated on the phone: still applied
    data = encode(image, fmt, quality=95, exif=exif.tobytes())
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "RGB"
    expected = np.asarray(ImageOps.exif_transpose(decoded).convert("L"), dtype=int)
    pixels = only_page(data, "photo.jpg")
    assert pixels.shape == expected.shape == (128, 96)
    difference = np.abs(pixels.astype(int) - expected)
    print(f"{fmt}: greys off by {difference.mean():.3f} on average, {difference.max()} at most")
    assert difference.max() <= 12  # only where saturated colours meet (clipped in RGB)
    assert difference.mean() < 0.5


def test_palette_image_becomes_grey() -> None:
    image = Image.fromarray(ramp()).convert("P")
    pixels = only_page(encode(image, "PNG"))
    assert pixels[5, 0] < 10 and pixels[5, -1] > 245


def test_png_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)  # black, but fully transparent…
    rgba[8:24, 8:24] = (0, 0, 0, 255)  # …except an opaque black square
    pixels = only_page(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert pixels[0, 0] == 255, "transparent background must read as white paper"
    assert pixels[16, 16] == 0


def test_cmyk_jpeg_keeps_dark_ink_dark() -> None:
    cmyk = np.zeros((40, 40, 4), np.uint8)
    cmyk[10:30, 10:30, 3] = 255  # full black ink (K) in the middle, bare paper around
    pixels = only_page(encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95), "s.jpg")
    assert pixels[20, 20] < 40 and pixels[2, 2] > 215


def test_exif_orientation_is_applied() -> None:
    image = Image.fromarray(ramp(64, 32))  # wide, dark on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    pixels = only_page(encode(image, "JPEG", exif=exif.tobytes(), quality=95), "phone.jpg")
    assert pixels.shape == (64, 32), "the page should come out upright (tall)"
    assert pixels[0, 16] < 40 and pixels[-1, 16] > 215, "the dark side is now at the top"


def test_phone_jpeg_with_extra_frames_is_one_page() -> None:
    """Phones save MPO files: a JPEG followed by previews or depth maps, not more pages."""
    frames = [Image.fromarray(ramp()), Image.fromarray(ramp(32, 24))]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert only_page(data, "phone.jpg").shape == (48, 64)


def test_sixteen_bit_tiff_is_scaled_by_its_range() -> None:
    full = (ramp().astype(np.uint16) * 257).astype(np.uint16)
    pixels = only_page(encode(Image.fromarray(full), "TIFF"), "scan.tif")
    assert pixels[5, 0] == 0 and pixels[5, -1] == 255


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_float_tiff_with_pixels_that_are_no_numbers_is_refused_saying_so(bad: float) -> None:
    values = ramp().astype(np.float32) / 255.0
    values[3, 4] = bad
    with pytest.raises(ImageError, match="scan.tif: it holds pixels that are no numbers"):
        only_page(encode(Image.fromarray(values, mode="F"), "TIFF"), "scan.tif")


def test_twelve_bit_data_in_a_sixteen_bit_file_is_not_darkened() -> None:
    """A 12-bit scanner stores 0..4095: shifting right by 8 would make paper black."""
    twelve = (ramp().astype(np.uint16) * 16).astype(np.uint16)  # white is 4080
    pixels = only_page(encode(Image.fromarray(twelve), "TIFF"), "scan.tif")
    assert pixels[5, -1] >= 250 and pixels[5, 0] == 0


def test_a_hot_pixel_does_not_set_a_wide_page_s_white() -> None:
    """One sample past the rest (a 12-bit scan's stuck pixel at 65535, a float page's at
    1.02) is clipped; the page keeps the white of its other samples, not black paper."""
    twelve = (ramp().astype(np.uint16) * 16).astype(np.uint16)
    twelve[0, 0] = 65535
    pixels = only_page(encode(Image.fromarray(twelve), "TIFF"), "scan.tif")
    assert pixels[5, -1] >= 250 and pixels[5, 0] == 0 and pixels[0, 0] == 255
    values = ramp().astype(np.float32) / 255.0
    values[0, 0] = 1.02
    pixels = only_page(encode(Image.fromarray(values, mode="F"), "TIFF"), "scan.tif")
    assert pixels[5, -1] == 255 and pixels[5, 0] == 0


def test_sixteen_bit_png_loads() -> None:
    image = Image.fromarray((ramp().astype(np.uint16) * 257).astype(np.uint16))
    pixels = only_page(encode(image, "PNG"))
    assert pixels[5, -1] == 255


def test_multipage_tiff_yields_every_page_in_order() -> None:
    frames = [Image.fromarray(np.full((30, 40), level, np.uint8)) for level in (10, 120, 240)]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    pages = list(load_pages(data, "batch.tif"))
    assert [p.index for p in pages] == [0, 1, 2]
    assert [int(p.pixels[0, 0]) for p in pages if p.pixels is not None] == [10, 120, 240]


def test_pdf_pages_are_rendered_at_200_dpi() -> None:
    frames = [Image.fromarray(ramp(144, 72)), Image.fromarray(ramp(72, 144))]
    data = encode(frames[0], "PDF", save_all=True, append_images=frames[1:], resolution=72.0)
    pages = list(load_pages(data, "batch.pdf"))
    assert [p.index for p in pages] == [0, 1]
    shapes = [p.pixels.shape for p in pages if p.pixels is not None]
    assert shapes == [(200, 400), (400, 200)], "1 inch x 2 inches at 200 dpi"
    assert pages[0].pixels is not None and pages[0].pixels[100, 380] > 230


@pytest.mark.parametrize("before", [b"\xef\xbb\xbf", b"From a mail gateway\r\n"])
def test_a_pdf_with_bytes_before_its_header_is_read_as_pdf_readers_read_it(before: bytes) -> None:
    pdf = encode(Image.fromarray(ramp()), "PDF", resolution=200.0)
    assert only_page(before + pdf, "scan.pdf").shape == only_page(pdf, "scan.pdf").shape


def test_format_is_recognised_by_content_not_name() -> None:
    png = encode(Image.fromarray(ramp()), "PNG")
    assert only_page(png, "misnamed.jpg").shape == (48, 64)
    pdf = encode(Image.fromarray(ramp()), "PDF", resolution=200.0)
    height, width = only_page(pdf, "misnamed.png").shape
    assert abs(height - 48) <= 1 and abs(width - 64) <= 1


# --- inputs that must be refused with a reason ---------------------------------------


def refused(data: bytes, name: str, **options: int) -> str:
    with pytest.raises(ImageError) as caught:
        list(load_pages(data, name, **options))
    message = str(caught.value)
    assert name in message, "the message must say which file"
    return message


def test_empty_file_is_refused() -> None:
    assert "empty" in refused(b"", "blank.png")


def test_text_file_named_png_is_refused() -> None:
    message = refused(b"hello, this is not an image\n", "notes.png")
    assert "not a readable image" in message and "PNG" in message
    assert "hello" not in message  # the file's content is never quoted


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused(fmt: str) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
    data = encode(Image.fromarray(noisy), fmt)
    assert "truncated or corrupt" in refused(data[: len(data) // 2], "cut." + fmt.lower())


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares the given size, with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def png_of_rows(page: np.ndarray, rows: int) -> bytes:
    """A greyscale PNG of ``page`` whose compressed image data, whole and valid, holds only
    its first ``rows`` rows (as an encoder stopped short, or a file cut and mended, has)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", page.shape[1], page.shape[0], 8, 0, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in page[:rows]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_png_whose_image_data_ends_early_is_refused_not_read_with_a_band_of_ink() -> None:
    page = np.full((120, 90), 250, np.uint8)
    page[20:60, 30:40] = 10  # a stroke
    assert (only_page(png_of_rows(page, 120), "whole.png") == page).all()
    for rows in (119, 60):
        message = refused(png_of_rows(page, rows), "short.png")
        assert "short.png: its image data ends early" in message, message
        assert f"holds {rows * 91:,} of the {120 * 91:,} bytes" in message
    page[-1] = 0  # a page whose last row really is black reads as it is
    assert (only_page(png_of_rows(page, 120), "edge.png") == page).all()


@pytest.mark.parametrize("side", [12_000, 100_000])  # above our limit; above Pillow's own
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    message = refused(png_declaring(side, side), "bomb.png")
    assert "decompression bomb" in message


def test_pixel_limit_is_configurable() -> None:
    data = encode(Image.fromarray(ramp(100, 100)), "PNG")
    assert "exceeds the limit of 5,000 pixels" in refused(data, "big.png", max_pixels=5_000)
    assert only_page(data, max_pixels=10_000).shape == (100, 100)


def test_tiny_image_is_refused() -> None:
    message = refused(encode(Image.new("L", (1, 1), 0), "PNG"), "dot.png")
    assert "too small to hold a digit" in message


def test_unsupported_format_is_refused() -> None:
    assert "GIF images are not supported" in refused(
        encode(Image.fromarray(ramp()), "GIF"), "anim.gif"
    )


def test_damaged_pdf_is_refused() -> None:
    assert "not a readable PDF" in refused(b"%PDF-1.4\nthis is not really a pdf\n", "x.pdf")


def tiff_with_corrupt_second_page() -> bytes:
    frames = [Image.fromarray(ramp(64, 64)) for _ in range(3)]
    data = bytearray(
        encode(
            frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate"
        )
    )
    with Image.open(io.BytesIO(bytes(data))) as image:
        assert isinstance(image, TiffImagePlugin.TiffImageFile)
        image.seek(1)
        start, length = image.tag_v2[273][0], image.tag_v2[279][0]  # strip offset and size
    data[start : start + length] = b"\xff" * length  # not a deflate stream any more
    return bytes(data)


def test_corrupt_page_in_multipage_tiff_is_reported_and_others_still_load() -> None:
    pages = list(load_pages(tiff_with_corrupt_second_page(), "batch.tif"))
    assert [p.index for p in pages] == [0, 1, 2]
    assert [p.ok for p in pages] == [True, False, True]
    bad = pages[1]
    assert bad == Page(1, None, bad.error) and bad.error is not None
    assert "batch.tif page 1" in bad.error and "corrupt" in bad.error


@pytest.mark.parametrize(("kept", "reached"), [(0.4, 1), (0.6, 1), (0.9, 2)])
def test_a_multipage_tiff_cut_short_yields_the_pages_it_holds_and_says_where_it_breaks_off(
    kept: float, reached: int
) -> None:
    """Cut where its chain of pages breaks off, Pillow cannot count its pages (0.4, 0.9),
    or counts the first twice, its pointer to the next leading past the end (0.6; before,
    that page was read twice and the file said whole)."""
    frames = [Image.fromarray(np.full((60, 80), level, np.uint8)) for level in (10, 120, 240)]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:],
                  compression="tiff_deflate")  # fmt: skip
    pages = list(load_pages(data[: int(len(data) * kept)], "batch.tif"))
    assert [p.index for p in pages] == list(range(reached + 1))
    assert [int(p.pixels[0, 0]) for p in pages if p.pixels is not None] == [10, 120][:reached]
    assert pages[-1].error is not None and not pages[-1].ok
    assert f"batch.tif: the file breaks off after page {reached - 1}" in pages[-1].error
    assert "truncated or corrupt" in pages[-1].error


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG"])
def test_an_image_whose_metadata_says_pdf_is_read_as_the_image_it_is(fmt: str) -> None:
    image = Image.fromarray(ramp())
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", "%PDF-1.4 companion")
        data = encode(image, fmt, pnginfo=info)
    elif fmt == "TIFF":
        data = encode(image, fmt, tiffinfo={270: "%PDF-1.4 companion"})  # ImageDescription
    else:
        data = encode(image, fmt, comment=b"%PDF-1.4 companion")
    assert b"%PDF-" in data[:1024]
    assert only_page(data, f"scan.{fmt.lower()}").shape == (48, 64)


def test_a_tiff_whose_last_page_points_back_to_its_first_is_read_whole() -> None:
    """A loop in the chain of pages (Pillow ends it) is not a file cut short."""
    frames = [Image.fromarray(np.full((30, 40), level, np.uint8)) for level in (10, 120, 240)]
    data = bytearray(encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]))
    assert data[:2] == b"II"
    first = at = struct.unpack_from("<I", data, 4)[0]
    while True:  # the pointer after the last page's entries, which is 0
        (entries,) = struct.unpack_from("<H", data, at)
        pointer = at + 2 + 12 * entries
        (at,) = struct.unpack_from("<I", data, pointer)
        if at == 0:
            break
    struct.pack_into("<I", data, pointer, first)
    pages = list(load_pages(bytes(data), "loop.tif"))
    assert [(p.index, p.ok) for p in pages] == [(0, True), (1, True), (2, True)]
