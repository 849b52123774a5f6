"""Digit rows of lines read whole: each digit's place on its page from the reader's
alignment, its doubt and the line's, and the line's crop for review; a field that is one
lone digit read by the classifier and the reader together, and a digit that stands alone
on its page weighed by the classifier too."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from digitflow.imaging.fields import LineImage, Piece
from digitflow.reader.decode import ReadDigit, ReadLine, softmax
from digitflow.reader.infer import SURE, one_digit_logs, span_logs
from digitflow.scoring.extract import FileDigits
from digitflow.scoring.infer import Scorer, top_two
from digitflow.scoring.results import ShardReading, line_review_key, table

# Input rows whose ink is this strong belong to a digit's height.
_INKED = 0.3 * 255
# A digit of a page's line that is one piece of ink of its own is read by the classifier
# too, and the two weighed: the reader's log-probabilities of the digit's columns holding
# each digit alone (``reader.infer.span_logs``) plus this times the classifier's. Half: the
# reader, which sees the digit's neighbours, leads; the classifier tips the digits it
# doubts. On generated form pages it set right a 7 read as 1, a 9 read as 7 and the like;
# weighed with the reader's probabilities at the one step that read the digit instead of
# over its columns, 1,047 of 1,126 lines read exactly, against 1,053
# (docs/record/reading.md). Weights 0.35-0.75 read 1,052-1,054, 0.25 and 1 read 1,046 and
# 1,047; the classifier alone lost lines.
_CLASSIFIER_WEIGHT = 0.5
# A piece reaching this share of a digit's width past its columns holds more than it.
_SPILL = 0.25


def _box(line: LineImage, digit: ReadDigit) -> tuple[int, int, int, int]:
    """A digit's box on its page: its columns, and the rows its ink spans there, inside
    the page (a line's margins of paper may reach past its edges)."""
    left, right = int(digit.x0), max(int(np.ceil(digit.x1)), int(digit.x0) + 1)
    rows = np.flatnonzero(line.pixels[:, max(left, 0) : right].max(axis=1, initial=0) >= _INKED)
    top, bottom = (rows[0], rows[-1] + 1) if rows.size else (0, line.pixels.shape[0])
    height, width = line.page or (2**31 - 1, 2**31 - 1)
    x0 = min(max(int(line.x0 + left * line.x_scale), 0), width - 1)
    y0 = min(max(int(line.y0 + top * line.y_scale), 0), height - 1)
    x1 = min(max(int(np.ceil(line.x0 + right * line.x_scale)), x0 + 1), width)
    y1 = min(max(int(np.ceil(line.y0 + bottom * line.y_scale)), y0 + 1), height)
    return x0, y0, x1, y1


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
            found[-1].append({
                "page": page, "line": image.line, "digits": read.text,
                "confidence": read.confidence, "runner_up": read.runner_up,
            })  # fmt: skip
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
    files: list[FileDigits], reads: list[ReadLine], classifier: Scorer, reader: Scorer
) -> list[ReadLine]:
    """The reads of the files' lines (in order), where a field holds one lone digit (the
    segmentation cut out just one) and the line reader read at most two (a flagged 1 read
    as "11", a broken digit as two): that digit read by the classifier and the reader
    together, each digit's probability the product of theirs, so that one model's doubt
    is settled by the other. The reader's is its probability of the field being that
    digit alone (``reader.infer.one_digit_logs``), not what it read. Two digits the reader
    is sure of (their string at least ``SURE`` likely) stay as read: the segmentation's
    one piece is then two digits joined, as a rule under them joins them."""
    out, picked, digits = list(reads), [], []
    k = 0
    for f in files:
        alone = {page: (box, f.digits[j]) for j, (page, box) in enumerate(f.boxes)}
        for page, line in f.lines:
            if page in alone and _may_be_one(reads[k]):
                picked.append((k, line, alone[page][0]))
                digits.append(alone[page][1])
            k += 1
    if not picked:
        return out
    logs = np.log(np.maximum(classifier.probabilities(np.stack(digits)), 1e-6))
    steps = [reads[k].steps for k, _, _ in picked]
    own = None if any(p is None for p in steps) else [p for p in steps if p is not None]
    logs += one_digit_logs(reader.run, [line.inputs() for _, line, _ in picked], own=own)
    best, sure, second, second_sure = top_two(softmax(logs))
    for j, (k, line, box) in enumerate(picked):
        x0, x1 = (box.x0 - line.x0) / line.x_scale, (box.x1 - line.x0) / line.x_scale
        digit = ReadDigit(int(best[j]), float(sure[j]), int(second[j]), float(second_sure[j]),
                          max(0.0, x0), max(x0 + 1, x1))  # fmt: skip
        out[k] = ReadLine([digit], float(sure[j]), f"{reader.version}+{classifier.version}")
    return out


def _may_be_one(read: ReadLine) -> bool:
    """Whether a lone piece's reading may be one digit: none or one read, or two not surely.
    On the real single digits of USPS and Semeion the reader read two (mostly "11") at most
    0.70 likely; of the 1,080 real check amounts, two underlined 60s were cut out as one
    piece, one read 0.9996 likely, and read "6" by the two models together
    (docs/record/reading.md)."""
    return len(read.digits) <= 1 or (len(read.digits) == 2 and read.confidence < SURE)


def _alone(line: LineImage, digit: ReadDigit) -> Piece | None:
    """The one piece of ink of the line that lies in the digit's columns, if it is all of
    the digit and no more: no other piece's centre falls there, and it spills little."""
    left, right = line.x0 + digit.x0 * line.x_scale, line.x0 + digit.x1 * line.x_scale
    inside = [p for p in line.pieces if left <= (p.x0 + p.x1) / 2 < right]
    if len(inside) != 1:
        return None
    spill = _SPILL * (right - left)
    piece = inside[0]
    return piece if piece.x0 >= left - spill and piece.x1 <= right + spill else None


def _weighed_digit(digit: ReadDigit, read: np.ndarray, classified: np.ndarray) -> ReadDigit:
    """The digit as the reader's log-probabilities (``read``) and the classifier's
    probabilities weighed together."""
    logs = read + _CLASSIFIER_WEIGHT * np.log(np.maximum(classified, 1e-6))
    both = np.exp(logs - logs.max())
    both /= both.sum()
    best, second = (int(k) for k in np.argsort(-both)[:2])
    return replace(
        digit, digit=best, confidence=float(both[best]), runner_up=second,
        runner_up_confidence=float(both[second]),
    )  # fmt: skip


def second_opinion(
    files: list[FileDigits], reads: list[ReadLine], classifier: Scorer
) -> list[ReadLine]:
    """The reads of the files' lines (in order), each digit of a page's line that is one
    piece of ink of its own weighed with the classifier's reading of that piece.

    The reader reads a digit in the context of its line, which is what it needs where
    digits touch or break; where one stands alone, the classifier, which learnt from lone
    digits, is the better judge of its shape. Confidences become the weighed ones, so a
    digit the two disagree on is doubted. A line read without its step probabilities
    kept (``ReadLine.steps``) stays as read.
    """
    picked: list[tuple[int, int, Piece]] = []
    steps: list[np.ndarray] = []  # each picked digit's line's step probabilities
    lines = [line for f in files for _, line in f.lines]
    for k, (line, read) in enumerate(zip(lines, reads, strict=True)):
        if read.steps is None or not line.pieces:
            continue
        for j, digit in enumerate(read.digits):
            piece = _alone(line, digit)
            if piece is not None:
                picked.append((k, j, piece))
                steps.append(read.steps)
    out = list(reads)
    if not picked:
        return out
    classified = classifier.probabilities(np.stack([piece.digit for _, _, piece in picked]))
    spans = [(reads[k].digits[j].x0, reads[k].digits[j].x1) for k, j, _ in picked]
    weighed: dict[int, list[ReadDigit]] = {}
    for (k, j, _), mine, theirs in zip(picked, span_logs(steps, spans), classified, strict=True):
        digits = weighed.setdefault(k, list(reads[k].digits))
        digits[j] = _weighed_digit(digits[j], mine, theirs)
    for k, digits in weighed.items():
        out[k] = replace(reads[k], digits=digits)
    return out
