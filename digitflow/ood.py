"""Out-of-domain evaluation: accuracy on a labelled folder of real scans, per source group.

The folder holds image files and a CSV labels file with columns ``path,label[,source]``
(paths relative to the folder). Each file is read through the scorer's own path
(``load_pages`` → ``page_to_digits``: segmentation and MNIST normalisation), so the number
measures what scoring would read. Each file should hold one digit: when segmentation
finds several boxes the one with the most ink is read; when it finds none, or the file
cannot be decoded, the example counts as wrong. Both cases are counted in the result.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from digitflow.errors import ImageError, SourceError
from digitflow.fitting import to_inputs
from digitflow.imaging import load_pages, page_to_digits

logger = logging.getLogger(__name__)

CHUNK = 2048
LABELS_FILE = "labels.csv"


class GroupResult(BaseModel):
    """A model's accuracy on one group of a labelled folder, and why examples were missed."""

    n: int
    accuracy: float
    no_digit: int  # segmentation found nothing: counted wrong
    several: int  # segmentation found more than one box: the one with the most ink was read
    unreadable: int  # the file could not be decoded: counted wrong


@dataclass(frozen=True)
class Example:
    """One labelled image file."""

    path: Path
    label: int
    group: str


def read_labels(folder: Path, labels_file: Path | None = None) -> list[Example]:
    """The examples a labels CSV lists; a row's group is the first folder of its path,
    else its ``source``, else ``all``."""
    labels_path = labels_file or folder / LABELS_FILE
    try:
        with open(labels_path, newline="") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as exc:
        raise SourceError(f"cannot read the labels file {labels_path}: {exc}") from exc
    examples = []
    for line, row in enumerate(rows, start=2):
        path, label = row.get("path"), row.get("label")
        if not path or label is None or not label.strip().isdigit() or int(label) > 9:
            raise SourceError(
                f"{labels_path} line {line}: expected columns path,label[,source] with a "
                f"label 0-9, got {row}"
            )
        parts = Path(path).parts
        group = parts[0] if len(parts) > 1 else (row.get("source") or "all")
        examples.append(Example(folder / path, int(label), group))
    return examples


def read_digit(data: bytes, name: str) -> tuple[np.ndarray | None, int]:
    """The file's digit as MNIST-normalised 28×28 uint8 (None if unreadable or blank) and
    how many digit boxes segmentation found (-1: the file could not be decoded)."""
    try:
        page = next(iter(load_pages(data, name)))
    except ImageError as exc:
        logger.warning("%s", exc)
        return None, -1
    if page.pixels is None:
        return None, -1
    boxes, digits = page_to_digits(page.pixels)
    if not boxes:
        return None, 0
    largest = int(np.argmax([int(box.mask.sum()) for box in boxes]))
    return digits[largest], len(boxes)


def predict(model: Any, digits: np.ndarray) -> np.ndarray:
    """Most probable class of each uint8 (N, 28, 28) digit, in large batched calls."""
    import keras

    out = [
        keras.ops.convert_to_numpy(model(to_inputs(digits[i : i + CHUNK]), training=False))
        for i in range(0, len(digits), CHUNK)
    ]
    return np.concatenate(out).argmax(axis=1) if out else np.zeros(0, np.int64)


def evaluate_folder(
    model: Any, folder: Path, labels_file: Path | None = None, limit: int | None = None
) -> dict[str, GroupResult]:
    """Accuracy of ``model`` per group of a labelled folder (``limit``: first N per group)."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in read_labels(Path(folder), labels_file):
        if limit is None or len(groups[example.group]) < limit:
            groups[example.group].append(example)
    return {name: _evaluate_group(model, items) for name, items in sorted(groups.items())}


def _evaluate_group(model: Any, items: list[Example]) -> GroupResult:
    """Read every file of one group, classify the digits found in one batch, count hits."""
    found = [read_digit(_read_bytes(e.path), e.path.name) for e in items]
    readable = {k: digit for k, (digit, _) in enumerate(found) if digit is not None}
    reads = np.full(len(items), -1)
    if readable:
        reads[list(readable)] = predict(model, np.stack(list(readable.values())))
    labels = np.array([e.label for e in items])
    counts = [count for _, count in found]
    return GroupResult(
        n=len(items),
        accuracy=float(np.mean(reads == labels)),
        no_digit=counts.count(0),
        several=sum(count > 1 for count in counts),
        unreadable=counts.count(-1),
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}, listed in the labels file: {exc}") from exc
