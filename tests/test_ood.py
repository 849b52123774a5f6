"""Out-of-domain evaluation on a labelled folder of scans, through the scorer's imaging path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitflow import ood
from digitflow.errors import SourceError

REALSCANS = Path(__file__).resolve().parents[2] / "shared/data/realscans-dev"
ONE_AND_SEVEN = [(36, 30, 36, 80), (60, 20, 96, 20), (96, 20, 72, 80)]


def png(strokes: list[tuple[int, int, int, int]], size: tuple[int, int] = (64, 64)) -> bytes:
    """A white page with a thick dark line for each (x0, y0, x1, y1)."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=5)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Always:
    """A stand-in model that reads every digit as ``digit``."""

    def __init__(self, digit: int) -> None:
        self.digit = digit

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return np.tile(np.eye(10, dtype=np.float32)[self.digit], (len(x), 1))


def write_folder(root: Path) -> Path:
    """A labelled folder: two groups, a blank page, two digits on one page, a broken file."""
    one, seven = png([(32, 10, 32, 54)]), png([(14, 12, 50, 12), (50, 12, 26, 54)])
    files = {
        "a/one.png": one,
        "a/seven.png": seven,
        "a/blank.png": png([]),
        "b/two-blobs.png": png(ONE_AND_SEVEN, (128, 100)),
        "b/broken.png": b"not an image",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    rows = ["path,label,source", "a/one.png,1,x", "a/seven.png,7,x", "a/blank.png,3,x"]
    rows += ["b/two-blobs.png,7,y", "b/broken.png,7,y"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_read_digit_normalises_one_digit_and_reports_what_segmentation_found() -> None:
    digit, count = ood.read_digit(png([(32, 10, 32, 54)]), "one.png")
    assert count == 1 and digit is not None and digit.shape == (28, 28)
    assert digit.dtype == np.uint8 and digit.max() == 255 and digit[0].max() == 0  # MNIST-like
    assert ood.read_digit(png([]), "blank.png") == (None, 0)
    assert ood.read_digit(b"garbage", "broken.png") == (None, -1)
    digit, count = ood.read_digit(png(ONE_AND_SEVEN, (128, 100)), "two.png")
    assert count == 2 and digit is not None
    seven, _ = ood.read_digit(png(ONE_AND_SEVEN[1:], (128, 100)), "seven.png")
    np.testing.assert_array_equal(digit, seven)  # the box with the most ink, not the 1


def test_evaluate_folder_counts_misses_per_group(tmp_path: Path) -> None:
    folder = write_folder(tmp_path)
    results = ood.evaluate_folder(Always(7), folder)
    assert set(results) == {"a", "b"}
    a, b = results["a"], results["b"]
    assert (a.n, a.no_digit, a.several, a.unreadable) == (3, 1, 0, 0)
    assert a.accuracy == pytest.approx(1 / 3)  # only the seven; the blank counts as wrong
    assert (b.n, b.several, b.unreadable) == (2, 1, 1)
    assert b.accuracy == pytest.approx(1 / 2)  # the largest box is read; broken is wrong
    assert ood.evaluate_folder(Always(7), folder, limit=1)["a"].n == 1


def test_labels_file_errors_say_where(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,label\nx.png,12\n")
    with pytest.raises(SourceError, match=r"labels.csv line 2: expected columns path,label"):
        ood.read_labels(tmp_path)
    with pytest.raises(SourceError, match="cannot read the labels file"):
        ood.read_labels(tmp_path / "missing")
    (tmp_path / "labels.csv").write_text("path,label,source\nx.png,4,scanner\n")
    assert ood.read_labels(tmp_path)[0].group == "scanner"  # no folder: the source names it


@pytest.mark.slow
def test_quickly_trained_model_reads_real_scans_well_above_chance(
    mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    if not (REALSCANS / "labels.csv").is_file():
        pytest.skip(f"{REALSCANS} not found")
    from digitflow.model_files import load_model
    from digitflow.storage import LocalStore
    from digitflow.training import TrainConfig, train_model
    from tests.conftest import clone_store

    uri, version = mnist_store
    store = LocalStore(clone_store(uri, tmp_path / "store"))
    config = TrainConfig(model="simple_cnn", epochs=2, limit=5000)
    record = train_model(store, version, config, "run-ood")
    model = load_model(store, record.model_key, record.sha256)
    results = ood.evaluate_folder(model, REALSCANS, limit=100)
    assert {name: r.n for name, r in results.items()} == {"semeion": 100, "usps": 100}
    assert results["usps"].accuracy > 0.7 and results["semeion"].accuracy > 0.4  # chance: 0.1
