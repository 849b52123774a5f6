"""From file bytes to digits: every kind of bad scan is kept, with a reason, never raised."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from digitflow.samples import load_mnist
from digitflow.scoring import extract as extract_module
from digitflow.scoring.extract import Reading, extract
from tests.scoring.files import bad_and_good, multipage_tiff, page, png

CASES = bad_and_good()


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_gets_its_status_and_a_reason(name: str) -> None:
    data, status, phrase = CASES[name]
    result = extract(data, name)
    assert result.status == status
    reasons = [result.error] if result.error else result.page_errors
    if status == "scored":
        assert reasons == [] and result.pages == 1
    else:
        assert phrase in " ".join(reasons)
        assert all(name in reason for reason in reasons)  # each reason names its file
    assert result.digits.shape == (len(result.boxes), 28, 28)
    assert result.digits.dtype == np.uint8


@pytest.mark.parametrize("name", ["cmyk.jpg", "alpha.png", "wide.tif", "three pages.tif"])
def test_unusual_encodings_yield_the_digits_on_the_page(name: str) -> None:
    result = extract(CASES[name][0], name)
    per_page = 4  # the test page holds one line of four digits
    readable_pages = result.pages - len(result.page_errors)
    assert len(result.boxes) == per_page * readable_pages
    assert {box.line for _, box in result.boxes} == {0}
    # Ink is bright on black, as in MNIST, whatever the file's encoding.
    assert all(d.max() > 200 and d[0].max() == 0 for d in result.digits)


def test_blank_page_is_scored_with_no_digits() -> None:
    result = extract(CASES["blank.png"][0], "blank.png")
    assert (result.status, result.pages, len(result.boxes)) == ("scored", 1, 0)


def test_good_pages_of_a_multipage_tiff_are_kept_around_a_corrupt_one() -> None:
    text = page()
    result = extract(multipage_tiff([text, text, text], corrupt=(1,)), "scan.tif")
    assert result.status == "partial" and result.pages == 3
    assert sorted({p for p, _ in result.boxes}) == [0, 2]
    assert len(result.page_errors) == 1 and "scan.tif page 1" in result.page_errors[0]


def test_a_tiff_with_every_page_corrupt_is_quarantined() -> None:
    text = page()
    data = multipage_tiff([text, text], corrupt=(0, 1))
    result = extract(data, "gone.tif")
    assert result.status == "quarantined" and result.pages == 2
    assert "gone.tif page 0" in (result.error or "") and "gone.tif page 1" in (result.error or "")


def test_an_unexpected_error_on_one_page_is_recorded_as_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(pixels: np.ndarray) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(extract_module, "segment_page", broken)
    # Read as a page: a field of several digits is cut by field_digits instead.
    result = extract(png(page()), "odd.png", extract_module.Reading(layout="page"))
    assert result.status == "quarantined"
    assert "ZeroDivisionError" in (result.error or "") and "bug" in (result.error or "")


def test_a_field_holding_one_digit_keeps_it_for_the_classifier_when_read_in_lines() -> None:
    from digitflow.scoring.extract import Reading

    digit = np.full((40, 30), 230, np.uint8)
    digit[8:32, 13:17] = 20  # a 1
    lone = extract(png(digit), "one.png", Reading("line"))
    assert len(lone.lines) == 1 and len(lone.boxes) == 1 and lone.digits.shape == (1, 28, 28)
    amount = np.full((40, 120), 230, np.uint8)
    for x in (10, 40, 70, 100):
        amount[8:32, x : x + 4] = 20
    several = extract(png(amount), "four.png", Reading("line"))
    assert len(several.lines) == 1 and several.boxes == [] and len(several.digits) == 0
    page = extract(png(amount), "four.png", Reading("line", "page"))
    assert page.boxes == []  # pages are read in lines only


def _field(mnist_dir: Path, labels: str, closing: bool) -> np.ndarray:
    """A light field holding MNIST training digits side by side, and a dash closing it."""
    mnist = load_mnist(mnist_dir)
    field = np.full((48, 40 + 28 * len(labels) + 40), 225, np.uint8)
    for k, label in enumerate(labels):
        image = mnist.images[int(np.flatnonzero(mnist.labels == int(label))[0])]
        x = 12 + 28 * k
        field[10:38, x : x + 28] = np.minimum(field[10:38, x : x + 28], 225 - image * 0.85)
    if closing:
        x = 20 + 28 * len(labels)
        field[25:29, x : x + 22] = 30
    return field


def test_a_field_read_by_the_classifier_is_cut_into_its_digits_without_its_closing_stroke(
    mnist_dir: Path,
) -> None:
    from digitflow.scoring.extract import Reading

    result = extract(png(_field(mnist_dir, "305", closing=True)), "amount.png", Reading())
    assert len(result.boxes) == 3 and result.digits.shape == (3, 28, 28)
    boxes = [box for _, box in result.boxes]
    assert [b.position for b in boxes] == [0, 1, 2] and {b.line for b in boxes} == {0}
    assert [b.x0 for b in boxes] == sorted(b.x0 for b in boxes)
    assert all(b.mask.shape == (b.y1 - b.y0, b.x1 - b.x0) for b in boxes)
    # Each box lies on the field's own pixels, round its digit.
    for k, b in enumerate(boxes):
        assert 10 + 28 * k <= b.x0 + 4 and b.x1 <= 12 + 28 * (k + 1) + 4, (k, b)
    lone = extract(png(_field(mnist_dir, "7", closing=False)), "one.png", Reading())
    assert len(lone.boxes) == 1


def test_the_classifier_finds_the_digits_of_textured_generated_fields(mnist_dir: Path) -> None:
    """Security patterns, separators and touching digits: a field's ink is taken as the line
    reader's is before it is cut (the page binariser found no digit in most of them)."""
    from digitflow.reader import synth
    from digitflow.scoring.extract import Reading

    mnist = load_mnist(mnist_dir)
    digits = synth.Digits(mnist.images[:5000], mnist.labels[:5000])
    rng = np.random.default_rng(5)
    found = []
    for _ in range(40):
        grey, text = synth.make_field(digits, digits.by_label(), rng)
        result = extract(png(grey), "field.png", Reading("classifier", "field"))
        found.append((len(text), len(result.boxes)))
        assert all(0 <= b.x0 < b.x1 <= grey.shape[1] for _, b in result.boxes)
        assert all(0 <= b.y0 < b.y1 <= grey.shape[0] for _, b in result.boxes)
    # Cut as the page binariser cut them, 3 of these 40 had as many boxes as digits.
    assert sum(n == m for n, m in found) >= 12, found
    # Neither most digits lost nor the patterns' specks taken for digits.
    assert 0.8 <= sum(m for _, m in found) / sum(n for n, _ in found) <= 1.2, found


def test_a_blank_field_and_a_field_too_long_for_digits_give_the_classifier_nothing() -> None:
    """A blank form cell's scanner noise is no digit; a dotted rule thousands of times
    longer than high is no line of digits (cut at 64 rows, each dot was one, and a 2 KB
    PNG took gigabytes)."""
    import cv2

    from digitflow.scoring.extract import Reading

    rng = np.random.default_rng(0)
    for shape in [(60, 300), (120, 400), (30, 200)]:
        noise = np.clip(225 + rng.normal(0, 7, shape), 0, 255).astype(np.uint8)
        blank = cv2.imdecode(cv2.imencode(".jpg", cv2.blur(noise, (3, 3)))[1], 0)
        assert extract(png(blank), "blank.png", Reading()).boxes == []
    dotted = np.full((8, 50_000), 255, np.uint8)
    dotted[4, ::10] = 0
    assert extract(png(dotted), "dotted.png", Reading()).boxes == []


def test_a_file_of_thousands_of_bad_pages_says_the_first_few_and_how_many_more() -> None:
    import io

    from PIL import Image

    tiny = [Image.fromarray(np.full((4, 4), 200, np.uint8)) for _ in range(2000)]
    buffer = io.BytesIO()
    tiny[0].save(buffer, "TIFF", save_all=True, append_images=tiny[1:])
    result = extract(buffer.getvalue(), "many.tif")
    assert result.status == "quarantined" and result.pages == 2000
    assert result.error is not None and len(result.error) < 2000
    assert result.error.count("many.tif page") == extract_module.PAGE_ERRORS_TOLD
    assert result.error.endswith("; and 1,995 more pages that could not be read")


def test_a_strip_of_millions_of_columns_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 78 KB PNG 10,000,000 x 8 (the pixel limit's worth), read as a field: squeezed to
    the reader's width in one step. Brought to the reader's height first, it took 6.5 GB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    packer = zlib.compressobj(9)
    row = b"\0" + b"\xff" * 10_000_000
    body = b"".join(packer.compress(row) for _ in range(8)) + packer.flush()
    header = struct.pack(">IIBBBBB", 10_000_000, 8, 8, 0, 0, 0, 0)
    strip = tmp_path / "strip.png"
    strip.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                      + chunk(b"IEND", b""))  # fmt: skip
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from digitflow.scoring.extract import Reading, extract\n"
        f"found = extract(open({str(strip)!r}, 'rb').read(), 'strip.png', Reading('line'))\n"
        "print(found.status, found.error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.split() == ["scored", "None"], done.stderr


def test_a_page_of_more_marks_than_a_page_of_digits_holds_is_not_read() -> None:
    """A grid of thousands of small marks (a pattern, or a file made to multiply the work):
    the page is refused with why, not turned into thousands of digits for the scoring
    process to hold and write out."""
    grid = np.full((1800, 1800), 255, np.uint8)
    for y in range(20, 1780, 22):
        for x in range(20, 1780, 16):
            grid[y : y + 14, x : x + 3] = grid[y : y + 3, x : x + 8] = 0
    result = extract(png(grid), "grid.png", Reading("classifier"))
    assert result.status == "quarantined" and result.boxes == []
    assert result.error is not None and "digits, more than a page of digits holds" in result.error


def test_a_file_stops_giving_digits_past_what_a_file_of_scans_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(extract_module, "MAX_FILE_DIGITS", 6)  # pages of four digits each
    result = extract(multipage_tiff([page()] * 4), "many.tif")
    assert (result.status, result.pages, len(result.boxes)) == ("partial", 2, 8)
    assert result.page_errors == [
        "many.tif pages 2 and after: not read, as the pages before gave 6 digits or 10,000 "
        "lines, more than a file of scans holds; split the file to read them"
    ]
