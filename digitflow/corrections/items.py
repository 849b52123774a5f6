"""What a scoring batch needs a person to look at: its lines (or digits) read with doubt
and its lines read as nothing, largest doubt first, each with its crop."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from digitflow.errors import NotFoundError, SourceError
from digitflow.reader import field
from digitflow.scoring import commits, results
from digitflow.scoring.inputs import BATCH_ID
from digitflow.scoring.resume import read_record, record_key
from digitflow.storage import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewItem:
    """One line, or one digit of a batch read by the classifier, that needs review."""

    id: str  # unique in its batch: "<file slug>-p<page>-l<line>[-d<position>]"
    batch_id: str
    file: str
    page: int
    line: int
    position: int | None  # the digit's place in its line; None: the whole line
    read: str  # what was read ("" for a line read as nothing)
    # A line read whole: the next likeliest string the reader weighed, else (and for a
    # digit) the reading with its least sure digit replaced by its runner-up.
    runner_up: str
    # 1 - the least confidence of what was read (a line read whole: its string's
    # probability, or its least sure digit's if lower); 1 for nothing read
    doubt: float
    crop_key: str  # the review crop (PNG, dark on light, enlarged)

    @property
    def kind(self) -> str:
        """``line`` (read whole) or ``digit`` (read alone by the classifier)."""
        return "line" if self.position is None else "digit"


def item_id(file: str, page: int, line: int, position: int | None = None) -> str:
    """The id of a line (or of a digit in it) in its batch, from where it lies."""
    where = f"{results.slug(file)}-p{page}-l{line}"
    return where if position is None else f"{where}-d{position}"


def batches(store: ObjectStore) -> list[str]:
    """Every scoring batch of the store with something to review, newest first."""
    started = []
    for key in store.list("scoring/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "batch.json":
            started.append(parts[1])
    with_review = [b for b in started if store.list(f"{results.prefix(b)}/review/")]
    return sorted(with_review, key=_started_at(store), reverse=True)


def _started_at(store: ObjectStore) -> Callable[[str], str]:
    def started(batch_id: str) -> str:
        try:
            return read_record(store, batch_id).started_at.isoformat()
        except SourceError as exc:
            log.warning("%s: listed last", exc)
            return ""

    return started


def _runner_up(rows: list[dict]) -> str:
    weakest = min(range(len(rows)), key=lambda k: rows[k]["confidence"])
    return "".join(str(r["runner_up"] if k == weakest else r["digit"]) for k, r in enumerate(rows))


def review_items(store: ObjectStore, batch_id: str) -> list[ReviewItem]:
    """The items of a batch that need review, largest doubt first (then in file order)."""
    if not re.fullmatch(BATCH_ID, batch_id) or not store.exists(record_key(batch_id)):
        raise SourceError(
            f"no scoring batch {batch_id!r} in {store.uri}: give a batch id that "
            "`digitflow score` printed (`digitflow review` lists those with items)"
        )
    ledger, digits = commits.read_batch(store, batch_id)
    if not len(ledger) and not store.exists(f"{results.prefix(batch_id)}/files.parquet"):
        raise SourceError(
            f"batch {batch_id!r} has no results yet: it has not been scored, or its run is "
            "still going. Review it once `digitflow score` has finished it"
        )
    items = _from_digits(batch_id, digits, _read_lines(ledger))
    items += _read_as_nothing(store, batch_id, ledger)
    return sorted(items, key=lambda i: (-i.doubt, i.file, i.page, i.line, i.position or 0))


Where = tuple[str, int, int]  # (file, page, line)


def _read_lines(ledger: pa.Table) -> dict[Where, dict]:
    """Each line read whole, by (file, page, line): its ``confidence`` (the line reader's
    probability of its string) and ``runner_up``, as the ledger keeps them."""
    return {(row["file"], line["page"], line["line"]): line
            for row in ledger.select(["file", "lines"]).to_pylist()
            for line in row["lines"] or [] if line["confidence"] is not None}  # fmt: skip


def _from_digits(batch_id: str, digits: pa.Table, read: dict[Where, dict]) -> list[ReviewItem]:
    by_crop: dict[str, list[dict]] = {}
    lines: dict[tuple[str, int, int], list[dict]] = {}
    for row in digits.to_pylist():
        lines.setdefault((row["file"], row["page"], row["line"]), []).append(row)
        if row["needs_review"]:
            key = row["review"] or results.review_key(batch_id, row)
            by_crop.setdefault(key, []).append(row)
    items = []
    for key, rows in by_crop.items():
        first = rows[0]
        whole = results.line_review_key(batch_id, first["file"], first["page"], first["line"],
                                        "")[: -len(".png")]  # fmt: skip
        least = min(r["confidence"] for r in rows)
        runner_up = None
        if key.startswith(whole):  # a line read whole: every digit of the line
            where = first["file"], first["page"], first["line"]
            rows = lines[where]
            position = None
            line = read.get(where, {})
            least = min([r["confidence"] for r in rows] + [line.get("confidence", 1.0)])
            runner_up = line.get("runner_up")
        else:
            position = first["position"]
        items.append(ReviewItem(
            id=item_id(first["file"], first["page"], first["line"], position),
            batch_id=batch_id, file=first["file"], page=first["page"], line=first["line"],
            position=position, read="".join(str(r["digit"]) for r in rows),
            runner_up=_runner_up(rows) if runner_up is None else runner_up, doubt=1.0 - least,
            crop_key=key,
        ))  # fmt: skip
    return items


def _read_as_nothing(store: ObjectStore, batch_id: str, ledger: pa.Table) -> list[ReviewItem]:
    items = []
    for row in ledger.select(["file", "lines"]).to_pylist():
        for line in row["lines"] or []:
            if line["digits"]:
                continue
            key = results.line_review_key(batch_id, row["file"], line["page"], line["line"], "")
            if store.exists(key):
                items.append(ReviewItem(
                    id=item_id(row["file"], line["page"], line["line"]), batch_id=batch_id,
                    file=row["file"], page=line["page"], line=line["line"], position=None,
                    read="", runner_up=line["runner_up"] or "", doubt=1.0, crop_key=key,
                ))  # fmt: skip
    return items


def read_png(store: ObjectStore, key: str, remedy: str) -> np.ndarray:
    """A crop stored as PNG, greyscale uint8; one cut short or not a PNG is an error that
    names it and says ``remedy``."""
    data = store.read_bytes(key)
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    except (OSError, ValueError) as exc:  # PIL's errors for a file cut short or not a PNG
        raise SourceError(
            f"{store.uri_of(key)} is not a crop ({exc.__class__.__name__}): {remedy}"
        ) from exc


def crop_pixels(store: ObjectStore, item: ReviewItem) -> np.ndarray:
    """The crop an item was read on, as the model saw it: uint8, ink bright on black."""
    try:
        shown = read_png(store, item.crop_key, "score the batch again to write it")
    except NotFoundError as exc:
        raise SourceError(
            f"the review crop of {item.file} page {item.page} line {item.line} is gone "
            f"({store.uri_of(item.crop_key)}): score the batch again to write it"
        ) from exc
    scale = results.review_scale(28 if item.kind == "digit" else field.HEIGHT)
    return 255 - shown[::scale, ::scale]
