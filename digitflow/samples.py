"""Generate a folder of realistic scanned forms from MNIST test digits, with ground truth.

Each page is a form (title bar, rules or a frame) with lines of handwritten digit strings
pasted from MNIST at natural spacing, on textured, unevenly lit paper with noise, a slight
rotation and JPEG compression. Most pages are JPEG files, some PNG, two share a multi-page
TIFF and two a multi-page PDF; a few single-digit crops follow. `truth.csv` lists, for
every file, page and line (all counted from 0), the digits of that line left to right.

From a shell: ``python scripts/make_scans.py --mnist DIR --out DIR --pages 20 --seed 0``.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"


@dataclass(frozen=True)
class Mnist:
    """MNIST digits (ink bright on black) and their labels."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8


@dataclass(frozen=True)
class PageStyle:
    """How the forms of a folder are written: the digits' height in pixels (from the
    scanner's resolution and the hand) and the share of digits that touch the next."""

    digit_height: tuple[float, float] = (36.0, 60.0)  # about 5-8 mm at 200 dpi
    touching: float = 0.03


# Forms as they often come: 150 dpi scans of small hands, a third of the digits touching.
HARD = PageStyle(digit_height=(24.0, 48.0), touching=0.35)


@dataclass(frozen=True)
class Scan:
    """One generated page: pixels (dark ink on light paper) and its lines' digit strings."""

    pixels: np.ndarray  # (H, W) uint8
    lines: list[str]


def read_idx(path: Path, header: int) -> np.ndarray:
    """The payload of a gzip IDX file after its `header` bytes, as uint8."""
    with gzip.open(path, "rb") as stream:
        return np.frombuffer(stream.read(), dtype=np.uint8)[header:]


def load_mnist(mnist_dir: Path) -> Mnist:
    """Read the MNIST test images and labels from a directory of the canonical .gz files."""
    images = read_idx(Path(mnist_dir) / IMAGES, 16).reshape(-1, 28, 28)
    labels = read_idx(Path(mnist_dir) / LABELS, 8)
    if len(images) != len(labels):
        raise ValueError(f"{mnist_dir}: {len(images)} images but {len(labels)} labels")
    return Mnist(images, labels)


def render_digit(image: np.ndarray, scale: float, stroke: int) -> np.ndarray:
    """An MNIST digit cut to its ink, scaled up, thickened (+) or thinned (-): alpha 0..1."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    tight = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    size = (max(1, round(tight.shape[1] * scale)), max(1, round(tight.shape[0] * scale)))
    alpha = np.asarray(Image.fromarray(tight).resize(size, Image.Resampling.BICUBIC), np.float32)
    if stroke > 0:
        alpha = ndimage.grey_dilation(alpha, size=(stroke + 1, stroke + 1))
    elif stroke < 0:
        alpha = ndimage.grey_erosion(alpha, size=(1 - stroke, 1 - stroke))
    return np.clip(alpha / 255.0, 0.0, 1.0)


def make_page(mnist: Mnist, rng: np.random.Generator, style: PageStyle | None = None) -> Scan:
    """One scanned form: a title bar, then 3-8 lines of 4-10 digits on rules or in a frame."""
    style = style or PageStyle()
    width = int(rng.integers(1100, 1400))
    height = int(width * 1.3)
    digit = float(rng.uniform(*style.digit_height))
    ink = np.zeros((height, width), np.float32)
    margin = int(0.08 * width)
    bar_top, bar = int(0.04 * height), int(0.05 * height)
    ink[bar_top : bar_top + bar, margin : width - margin] = rng.uniform(0.3, 0.9)
    top = bar_top + bar + 2 * digit
    count = int(rng.integers(3, 9))
    pitch = min(3.5 * digit, (height - top - 2 * digit) / count)
    ruled = rng.random() < 0.6
    lines = []
    for k in range(count):
        baseline = int(top + (k + 1) * pitch - 0.6 * digit)
        lines.append(_write_line(ink, mnist, rng, margin, baseline, digit, style.touching))
        if ruled:  # people write on the line, so digits often touch it
            thick = int(rng.integers(1, 4))
            ink[baseline + 2 : baseline + 2 + thick, margin // 2 : width - margin // 2] = 0.8
    if not ruled and count >= 2:
        _frame(ink, margin // 2, int(top), width - margin // 2, int(top + count * pitch + digit))
    return Scan(_to_paper(ink, rng), lines)


def _write_line(
    ink: np.ndarray, mnist: Mnist, rng: np.random.Generator, x: int, baseline: int, digit: float,
    touching: float,
) -> str:  # fmt: skip
    """Paste 4-10 random digits along a baseline; return their labels as a string."""
    scale = digit / 20.0  # MNIST fits each digit in a 20-pixel box
    strength = float(rng.uniform(0.75, 1.0))
    stroke = int(rng.integers(-1, 3)) if digit > 44 else int(rng.integers(0, 2))
    text = ""
    for _ in range(int(rng.integers(4, 11))):
        index = int(rng.integers(len(mnist.labels)))
        alpha = render_digit(mnist.images[index], scale * rng.uniform(0.9, 1.1), stroke)
        h, w = alpha.shape
        y = baseline - h + int(rng.normal(0, 0.05 * digit))
        if x + w >= ink.shape[1] - 10:
            break
        region = ink[y : y + h, x : x + w]
        np.maximum(region, alpha * strength * rng.uniform(0.85, 1.0), out=region)
        text += str(int(mnist.labels[index]))
        # Mostly clear gaps, now and then digits that touch.
        gap = rng.uniform(-0.05, 0.0) if rng.random() < touching else rng.uniform(0.12, 0.6)
        x += w + int(gap * digit)
    return text


def _frame(ink: np.ndarray, x0: int, y0: int, x1: int, y1: int, thick: int = 2) -> None:
    """Draw a printed rectangle round a block of fields."""
    y1 = min(y1, ink.shape[0] - thick - 1)
    ink[y0 : y0 + thick, x0:x1] = ink[y1 : y1 + thick, x0:x1] = 0.9
    ink[y0:y1, x0 : x0 + thick] = ink[y0:y1, x1 - thick : x1] = 0.9


def _to_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put ink on unevenly lit, textured paper with sensor noise and a slight rotation."""
    height, width = ink.shape
    paper_level = float(rng.uniform(200, 245))
    ys, xs = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    light = (np.cos(angle) * xs + np.sin(angle) * ys) * rng.uniform(0, 50)
    light += rng.normal(0, rng.uniform(0, 4), light.shape)  # blotchy paper texture
    field = Image.fromarray(light.astype(np.float32), mode="F").resize((width, height))
    paper = paper_level - np.asarray(field) + float(light.mean())
    ink_level = float(rng.uniform(20, 90))
    page = paper - ink * (paper - ink_level)
    page += rng.normal(0, rng.uniform(2, 8), page.shape).astype(np.float32)
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    image = image.rotate(rng.uniform(-2, 2), Image.Resampling.BILINEAR, fillcolor=int(paper_level))
    return np.asarray(image)


def make_single(mnist: Mnist, rng: np.random.Generator, kind: int) -> tuple[np.ndarray, str]:
    """A crop of one digit: plain 28×28, light-on-dark 28×28, 16×16, or a lit 240×240 photo."""
    index = int(rng.integers(len(mnist.labels)))
    label, digit = str(int(mnist.labels[index])), mnist.images[index]
    if kind == 0:
        return 255 - digit, label
    if kind == 1:
        return digit.copy(), label  # the MNIST original: light ink on black
    if kind == 2:
        small = Image.fromarray(255 - digit).resize((16, 16), Image.Resampling.BOX)
        return np.asarray(small), label
    ink = np.zeros((240, 240), np.float32)
    alpha = render_digit(digit, 8.0, 3)
    h, w = alpha.shape
    ink[120 - h // 2 : 120 - h // 2 + h, 120 - w // 2 : 120 - w // 2 + w] = alpha
    return _to_paper(ink, rng), label


def _save_single(pixels: np.ndarray, path: Path, rng: np.random.Generator) -> None:
    """Save one page as JPEG (varied quality; sometimes a tinted colour scan) or PNG."""
    image = Image.fromarray(pixels)
    if path.suffix == ".png":
        image.save(path)
        return
    if rng.random() < 0.25:
        tint = Image.merge("RGB", [image.point(lambda v, k=k: v * k) for k in (1.0, 0.97, 0.88)])
        image = tint
    image.save(path, quality=int(rng.integers(50, 96)))


def _save_tiff(pages: list[np.ndarray], path: Path) -> None:
    """Save pages as one multi-page TIFF, 16-bit like a high-end scanner's output."""
    wide = [Image.fromarray(p.astype(np.uint16) * 257) for p in pages]
    wide[0].save(path, save_all=True, append_images=wide[1:], compression="tiff_deflate")


def _save_pdf(pages: list[np.ndarray], path: Path) -> None:
    """Save pages as one multi-page PDF at 200 dpi."""
    images = [Image.fromarray(p) for p in pages]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=200.0)


def make_sample_folder(
    mnist: Mnist | Path | str,
    out_dir: Path | str,
    pages: int,
    seed: int,
    truth_csv: Path | str | None = None,
    style: PageStyle | None = None,
) -> Path:
    """Write `pages` scanned form pages plus four single-digit crops and truth.csv; return out_dir.

    ``mnist`` is the digits to draw from, or a directory of the canonical MNIST files.
    ``truth_csv`` defaults to ``out_dir/truth.csv``; put it elsewhere to keep the folder
    to scans only. With six pages or more, the last two pages share a TIFF and the two
    before them a PDF. ``style`` is how the forms are written (default ``PageStyle()``).
    """
    mnist = mnist if isinstance(mnist, Mnist) else load_mnist(Path(mnist))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scans = [make_page(mnist, rng, style) for _ in range(pages)]
    grouped = 4 if pages >= 6 else 0
    rows: list[tuple[str, int, int, str]] = []
    for k, scan in enumerate(scans[: pages - grouped]):
        name = f"scan_{k:03d}.{'png' if k % 5 == 4 else 'jpg'}"
        _save_single(scan.pixels, out / name, rng)
        rows += [(name, 0, line, text) for line, text in enumerate(scan.lines)]
    if grouped:
        pdf, tiff = scans[-4:-2], scans[-2:]
        _save_pdf([s.pixels for s in pdf], out / "batch.pdf")
        _save_tiff([s.pixels for s in tiff], out / "batch.tif")
        for name, group in (("batch.pdf", pdf), ("batch.tif", tiff)):
            for page, scan in enumerate(group):
                rows += [(name, page, line, text) for line, text in enumerate(scan.lines)]
    for kind in range(4):
        pixels, label = make_single(mnist, rng, kind)
        name = f"single_{kind}.{'jpg' if kind == 3 else 'png'}"
        Image.fromarray(pixels).save(out / name)
        rows.append((name, 0, 0, label))
    with open(truth_csv or out / "truth.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "page", "line", "digits"])
        writer.writerows(rows)
    return out
