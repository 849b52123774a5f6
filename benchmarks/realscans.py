"""Accuracy on real handwriting that is not MNIST (USPS and Semeion 16×16 scans), per set.

Every image goes through the scorer's own path (file bytes → extract → normalised 28×28 →
the model in one batched call); each image holds one digit, so finding none or several
counts as an error. The baseline resizes the whole image to 28×28 and inverts it (MNIST
ink is bright on black). The model is the champion of --store, or one trained now with
the seed recipe on full MNIST (--model, --epochs).

Usage: python benchmarks/realscans.py [--data DIR] [--store STORE] [--model NAME] [--epochs N]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from champion import REPO, champion_store
from PIL import Image

DATA = REPO.parent / "shared/data/realscans-dev"


def load_labels(data: Path) -> dict[str, list[tuple[Path, int]]]:
    """labels.csv as {set name: [(image path, label), …]}, the set being the folder."""
    sets: dict[str, list[tuple[Path, int]]] = defaultdict(list)
    with open(data / "labels.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            sets[row["path"].split("/")[0]].append((data / row["path"], int(row["label"])))
    return dict(sets)


def ours(images: list[Path]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The scorer's extract path: (digits of images with exactly one, their indices, counts)."""
    from digitflow.scoring.extract import extract

    found = [extract(path.read_bytes(), path.name) for path in images]
    counts = [len(f.boxes) for f in found]
    single = [k for k, count in enumerate(counts) if count == 1]
    digits = np.stack([found[k].digits[0] for k in single]) if single else np.zeros((0, 28, 28))
    return digits.astype(np.uint8), np.array(single, int), counts


def naive(images: list[Path]) -> np.ndarray:
    """Each image resized whole to 28×28 and inverted."""
    return np.stack([
        255 - np.asarray(Image.open(p).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
        for p in images
    ])  # fmt: skip


def evaluate(name: str, items: list[tuple[Path, int]], scorer: object) -> None:
    """Print the accuracy of both paths on one set."""
    images, labels = [p for p, _ in items], np.array([label for _, label in items])
    start = time.perf_counter()
    digits, index, counts = ours(images)
    reads = np.full(len(images), -1)
    if len(index):
        reads[index] = scorer.probabilities(digits).argmax(axis=1)  # type: ignore[attr-defined]
    ours_s = time.perf_counter() - start
    baseline = scorer.probabilities(naive(images)).argmax(axis=1)  # type: ignore[attr-defined]
    none, several = counts.count(0), sum(c > 1 for c in counts)
    print(f"{name:<9}{len(images):>7}{100 * np.mean(reads == labels):>11.1f}%"
          f"{100 * np.mean(baseline == labels):>11.1f}%{none:>9}{several:>10}"
          f"{len(images) / ours_s:>11.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with labels.csv")
    parser.add_argument("--store", help="a store with a champion [default: train one now]")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    if not (args.data / "labels.csv").is_file():
        raise SystemExit(f"{args.data / 'labels.csv'} not found: give --data")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from digitflow.scoring.infer import resolve_model, scorer_for
    from digitflow.storage import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = champion_store(args.store, Path(tmp), args.model, args.epochs)
        scorer = scorer_for(resolve_model(open_store(store)))
        print(f"model {scorer.version}")
        print(f"{'set':<9}{'images':>7}{'digitflow':>12}{'naive':>12}{'no digit':>9}"
              f"{'>1 digit':>10}{'images/s':>11}")  # fmt: skip
        for name, items in sorted(load_labels(args.data).items()):
            evaluate(name, items, scorer)


if __name__ == "__main__":
    main()
