"""End to end on real handwriting: generated scanned forms, MNIST itself, USPS and Semeion."""

from __future__ import annotations

import csv
import gzip
import random
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from digitflow.imaging import load_pages, page_to_digits, segment_page


def read_truth(folder: Path) -> dict[tuple[str, int], dict[int, str]]:
    truth: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    with open(folder / "truth.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            truth[row["file"], int(row["page"])][int(row["line"])] = row["digits"]
    return truth


def test_sample_folder_holds_every_format_with_truth(sample_folder: Path) -> None:
    truth = read_truth(sample_folder)
    suffixes = Counter(path.suffix for path in sample_folder.iterdir())
    assert {".jpg", ".png", ".tif", ".pdf", ".csv"} <= set(suffixes)
    pages_per_file = Counter(name for name, _ in truth)
    assert pages_per_file["batch.tif"] == 2 and pages_per_file["batch.pdf"] == 2
    for name, count in pages_per_file.items():
        pages = list(load_pages((sample_folder / name).read_bytes(), name))
        assert len(pages) == count and all(page.ok for page in pages)
    lines = [text for page in truth.values() for text in page.values()]
    assert all(text.isdigit() for text in lines)


def test_generator_is_deterministic(
    make_scans: ModuleType, mnist_dir: Path, tmp_path: Path
) -> None:
    first = make_scans.make_sample_folder(mnist_dir, tmp_path / "a", 2, 7)
    second = make_scans.make_sample_folder(mnist_dir, tmp_path / "b", 2, 7)
    assert (first / "truth.csv").read_bytes() == (second / "truth.csv").read_bytes()
    assert (first / "scan_000.jpg").read_bytes() == (second / "scan_000.jpg").read_bytes()


def test_generator_command_line(make_scans: ModuleType, mnist_dir: Path, tmp_path: Path) -> None:
    assert make_scans.main(["--mnist", str(mnist_dir), "--out", str(tmp_path), "--pages", "1"]) == 0
    assert (tmp_path / "truth.csv").read_text().startswith("file,page,line,digits")
    with pytest.raises(SystemExit):
        make_scans.main(["--mnist", str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_digits_found_per_line_match_the_truth(sample_folder: Path) -> None:
    truth = read_truth(sample_folder)
    right, wrong = 0, []
    for (name, index), lines in sorted(truth.items()):
        page = list(load_pages((sample_folder / name).read_bytes(), name))[index]
        assert page.pixels is not None
        found = Counter(box.line for box in segment_page(page.pixels).boxes)
        for line, text in lines.items():
            if found[line] == len(text):
                right += 1
            else:
                wrong.append(f"{name} p{index} line {line}: {found[line]} for {text}")
    assert right / (right + len(wrong)) >= 0.95, wrong


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path) as stream:
        return np.frombuffer(stream.read(), np.uint8)[header:]


def test_mnist_digits_come_back_as_mnist(mnist_dir: Path) -> None:
    """An MNIST digit printed dark on light and normalised again must look like itself."""
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:200]
    differences = []
    for image in images:
        boxes, digits = page_to_digits(255 - image)
        assert len(boxes) == 1
        differences.append(np.abs(digits[0].astype(float) - image).mean())
    assert np.mean(differences) < 6, "mean grey-level difference from the original"


def test_real_single_digit_scans_each_yield_one_digit(realscans_dir: Path) -> None:
    with open(realscans_dir / "labels.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    sample = random.Random(0).sample(rows, 200)
    counts = []
    for row in sample:
        pixels = np.asarray(Image.open(realscans_dir / row["path"]).convert("L"))
        boxes, digits = page_to_digits(pixels)
        counts.append(len(boxes))
        assert digits.shape == (len(boxes), 28, 28)
    assert counts.count(1) / len(counts) >= 0.99, Counter(counts)
