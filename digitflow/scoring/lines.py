"""Digit rows of lines read whole: each digit's place on its page from the reader's
alignment, its doubt and the line's, and the line's crop for review; a line that is one
lone digit read by the classifier."""

from __future__ import annotations

import numpy as np

from digitflow.imaging.fields import LineImage
from digitflow.reader.decode import ReadDigit, ReadLine
from digitflow.scoring.extract import FileDigits
from digitflow.scoring.infer import Scorer, top_two
from digitflow.scoring.results import ShardReading, line_review_key, table

# Input rows whose ink is this strong belong to a digit's height.
_INKED = 0.3 * 255


def _box(line: LineImage, digit: ReadDigit) -> tuple[int, int, int, int]:
    """A digit's box on its page: its columns, and the rows its ink spans there."""
    left, right = int(digit.x0), max(int(np.ceil(digit.x1)), int(digit.x0) + 1)
    rows = np.flatnonzero(line.pixels[:, left:right].max(axis=1, initial=0) >= _INKED)
    top, bottom = (rows[0], rows[-1] + 1) if rows.size else (0, line.pixels.shape[0])
    return (
        int(line.x0 + left * line.x_scale), int(line.y0 + top * line.y_scale),
        int(np.ceil(line.x0 + right * line.x_scale)),
        int(np.ceil(line.y0 + bottom * line.y_scale)),
    )  # fmt: skip


def line_reading(
    files: list[FileDigits], reads: list[ReadLine], version: str, threshold: float,
    batch_id: str,
) -> ShardReading:  # fmt: skip
    """A shard's digit rows from its files' lines (in order) and what the reader read in
    each. A line read with less confidence than ``threshold`` needs review, every digit of
    it, on one crop of the whole line; so does a digit read with less, and a line read as
    nothing. Every line found is listed for the per-file table, one read as nothing too."""
    columns: dict[str, list] = {name: [] for name in (
        "file", "page", "line", "position", "x0", "y0", "x1", "y1", "digit", "confidence",
        "runner_up", "runner_up_confidence", "needs_review", "model_version", "review",
    )}  # fmt: skip
    per_file: list[int] = []
    crops: dict[str, np.ndarray] = {}
    found: list[list[dict]] = []
    lines = iter(reads)
    for f in files:
        count = 0
        found.append([])
        for page, image in f.lines:
            read = next(lines)
            found[-1].append({"page": page, "line": image.line, "digits": read.text})
            doubts = [read.confidence < threshold or d.confidence < threshold for d in read.digits]
            key = line_review_key(batch_id, f.name, page, image.line, read.text)
            if any(doubts) or not read.digits:  # a line read as nothing is in doubt too
                crops[key] = 255 - image.pixels
            for position, (digit, doubt) in enumerate(zip(read.digits, doubts, strict=True)):
                x0, y0, x1, y1 = _box(image, digit)
                for name, value in (
                    ("file", f.name), ("page", page), ("line", image.line),
                    ("position", position), ("x0", x0), ("y0", y0), ("x1", x1), ("y1", y1),
                    ("digit", digit.digit), ("confidence", digit.confidence),
                    ("runner_up", digit.runner_up),
                    ("runner_up_confidence", digit.runner_up_confidence),
                    ("needs_review", doubt), ("model_version", read.model or version),
                    ("review", key if doubt else None),
                ):  # fmt: skip
                    columns[name].append(value)
            count += len(read.digits)
        per_file.append(count)
    return ShardReading(table(dict(columns)), per_file, crops, found)


def read_lone_digits(
    files: list[FileDigits], reads: list[ReadLine], classifier: Scorer
) -> list[ReadLine]:
    """The reads of the files' lines (in order), where a field holds one lone digit (the
    segmentation cut out just one) and the line reader read at most two (a flagged 1 read
    as "11", a broken digit as two): the classifier's reading of that digit instead, since
    a digit alone is what the classifier reads best."""
    out, picked, digits = list(reads), [], []
    k = 0
    for f in files:
        alone = {page: (box, f.digits[j]) for j, (page, box) in enumerate(f.boxes)}
        for page, line in f.lines:
            if page in alone and len(reads[k].digits) <= 2:
                picked.append((k, line, alone[page][0]))
                digits.append(alone[page][1])
            k += 1
    if not picked:
        return out
    best, sure, second, second_sure = top_two(classifier.probabilities(np.stack(digits)))
    for j, (k, line, box) in enumerate(picked):
        x0, x1 = (box.x0 - line.x0) / line.x_scale, (box.x1 - line.x0) / line.x_scale
        digit = ReadDigit(int(best[j]), float(sure[j]), int(second[j]), float(second_sure[j]),
                          max(0.0, x0), max(x0 + 1, x1))  # fmt: skip
        out[k] = ReadLine([digit], float(sure[j]), classifier.version)
    return out
