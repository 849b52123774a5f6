"""Scoring result tables: digit rows, per-file (ledger) rows and review crops.

How they are committed, one file at a time, is in ``digitflow.scoring.commits``.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from digitflow.scoring.extract import FileDigits
from digitflow.scoring.infer import top_two
from digitflow.storage import ObjectStore

# Each line of a file: where it is, what was read in it, and, for a line read whole, the
# line reader's probability of that string and the next likeliest string where the reader
# weighed others (null where digits were read one by one, and in batches written before
# they were kept).
LINES = pa.list_(pa.struct([
    ("page", pa.int32()), ("line", pa.int32()), ("digits", pa.string()),
    ("confidence", pa.float32()), ("runner_up", pa.string()),
]))  # fmt: skip
LEDGER_SCHEMA = pa.schema([
    ("file", pa.string()), ("status", pa.string()), ("pages", pa.int32()),
    ("digits", pa.int32()), ("needs_review", pa.int32()), ("lines", LINES),
    ("error", pa.string()), ("model_version", pa.string()),
    # The input's bytes as the batch read them (null where they could not be read, and in
    # batches written before they were kept): what a correction read again checks against.
    ("size", pa.int64()), ("sha256", pa.string()),
    # Quarantined by a failure that may pass (the file could not be read, or its reader
    # died): the batch's next run reads it again. False otherwise (null in older batches).
    ("retry", pa.bool_()),
])  # fmt: skip
DIGITS_SCHEMA = pa.schema([
    ("file", pa.string()), ("page", pa.int32()), ("line", pa.int32()),
    ("position", pa.int32()), ("x0", pa.int32()), ("y0", pa.int32()), ("x1", pa.int32()),
    ("y1", pa.int32()), ("digit", pa.uint8()), ("confidence", pa.float32()),
    ("runner_up", pa.uint8()), ("runner_up_confidence", pa.float32()),
    ("needs_review", pa.bool_()), ("model_version", pa.string()),
    # The key of the crop a person reviews this digit on (its 28x28, or its whole line).
    ("review", pa.string()),
])  # fmt: skip
DIGIT_ORDER = [("file", "ascending"), ("page", "ascending"), ("line", "ascending"),
               ("position", "ascending")]  # fmt: skip
# Review crops and per-file commits are small objects: on S3 each is one request, so
# several go at once.
IO_THREADS = 8
_REVIEW_KEY = re.compile(r"^(?P<slug>.+)-p\d+-l\d+(-d\d+)?-read\d*(_[0-9a-f]{8})?\.png$")
# A line's reading in its review crop's name, whole up to this many digits: a name stays
# within what file systems allow (255 bytes), however much a reader reads in a line.
KEY_DIGITS = 40

T = TypeVar("T")
R = TypeVar("R")


def prefix(batch_id: str) -> str:
    """Store prefix of a batch."""
    return f"scoring/{batch_id}"


def in_threads(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work`` on each item, a few at a time (store requests wait on the network)."""
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(work, items))


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as zstd-compressed Parquet bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def read_parquet(store: ObjectStore, key: str, columns: list[str] | None = None) -> pa.Table:
    """A Parquet object of the store as a table.

    Read as one file (``ParquetFile``), not through ``read_table``'s dataset machinery: the
    same table, in half the time for the small per-file commits that every run reads back
    at its end (0.85 against 1.5-1.8 ms each).
    """
    return pq.ParquetFile(pa.BufferReader(store.read_bytes(key))).read(columns=columns)


@dataclass(frozen=True)
class ShardReading:
    """What a shard's files read as: one row per digit (file by file, in order), how many
    rows each file has, and the crops to write for review, by key."""

    digits: pa.Table
    per_file: list[int]
    crops: dict[str, np.ndarray]  # review key -> uint8 image, ink dark on light
    lines: list[list[dict]] | None = None  # each file's lines, where not those of its digits

    def of(self, k: int) -> pa.Table:
        """The rows of the ``k``-th file."""
        start = sum(self.per_file[:k])
        return self.digits.slice(start, self.per_file[k])


def table(columns: dict[str, object]) -> pa.Table:
    """Digit rows from their columns (``review`` may be left out: none to review)."""
    columns.setdefault("review", [None] * len(columns["file"]))  # type: ignore[arg-type]
    return pa.table(
        [pa.array(columns[f.name], f.type) for f in DIGITS_SCHEMA], schema=DIGITS_SCHEMA
    )


def conform(digits: pa.Table) -> pa.Table:
    """Digit rows in today's schema: rows written before the review column get a null one."""
    if "review" not in digits.column_names:
        digits = digits.append_column("review", pa.nulls(len(digits), pa.string()))
    return digits.select(DIGITS_SCHEMA.names).cast(DIGITS_SCHEMA)


def digit_table(
    files: list[FileDigits], probs: np.ndarray, version: str, threshold: float,
    batch_id: str = "",
) -> pa.Table:  # fmt: skip
    """One row per digit of ``files`` (in order), given their probabilities."""
    rows = [(f.name, page, box) for f in files for page, box in f.boxes]
    if len(rows) != len(probs):
        raise ValueError(f"{len(rows)} digits but {len(probs)} rows of probabilities")
    digit, conf, runner, runner_conf = top_two(probs.reshape(-1, 10))
    boxes = [r[2] for r in rows]
    columns: dict[str, object] = {
        "file": [r[0] for r in rows],
        "page": [r[1] for r in rows],
        **{k: [getattr(b, k) for b in boxes] for k in ("line", "position", "x0", "y0", "x1", "y1")},
        "digit": digit, "confidence": conf, "runner_up": runner,
        "runner_up_confidence": runner_conf, "needs_review": conf < threshold,
        "model_version": [version] * len(rows),
    }  # fmt: skip
    columns["review"] = [
        review_key(batch_id, {"file": r[0], "page": r[1], "line": b.line,
                              "position": b.position, "digit": int(d)}) if doubt else None
        for r, b, d, doubt in zip(rows, boxes, digit, conf < threshold, strict=True)
    ]  # fmt: skip
    return table(columns)


def classified(
    files: list[FileDigits], probs: np.ndarray, version: str, threshold: float, batch_id: str
) -> ShardReading:
    """A shard's digits as the classifier read them; crops: the 28x28 each was read on."""
    digits = digit_table(files, probs, version, threshold, batch_id)
    images = np.concatenate([np.zeros((0, 28, 28), np.uint8), *(f.digits for f in files)])
    keys = digits.column("review").to_pylist()
    crops = {key: 255 - images[k] for k, key in enumerate(keys) if key is not None}
    return ShardReading(digits, [len(f.boxes) for f in files], crops)


def _lines(rows: list[dict]) -> list[dict]:
    """Digit strings per (page, line); rows come in page, line, position order."""
    lines: dict[tuple[int, int], str] = {}
    for r in rows:
        lines[r["page"], r["line"]] = lines.get((r["page"], r["line"]), "") + str(r["digit"])
    return [{"page": p, "line": ln, "digits": s, "confidence": None, "runner_up": None}
            for (p, ln), s in lines.items()]  # fmt: skip


def ledger_rows(
    files: list[FileDigits], digits: pa.Table, version: str,
    lines: list[list[dict]] | None = None,
) -> list[dict]:  # fmt: skip
    """One row per file: status, pages, digits, digit strings per line, error. The lines
    are those of the digit rows, or, where given, each file's own (lines read whole list
    every line found, one read as nothing too)."""
    by_file: dict[str, list[dict]] = {}
    for row in digits.select(["file", "page", "line", "digit", "needs_review"]).to_pylist():
        by_file.setdefault(row["file"], []).append(row)
    records = []
    for k, f in enumerate(files):
        rows = by_file.get(f.name, [])
        records.append({
            "file": f.name, "status": f.status, "pages": f.pages, "digits": len(rows),
            "needs_review": sum(r["needs_review"] for r in rows),
            "lines": lines[k] if lines is not None else _lines(rows),
            "error": f.problem, "model_version": version,
            "size": f.size, "sha256": f.sha256, "retry": f.retry,
        })  # fmt: skip
    return records


def ledger_table(records: list[dict]) -> pa.Table:
    """Per-file rows as a table, by file name."""
    return pa.Table.from_pylist(records, schema=LEDGER_SCHEMA).sort_by("file")


def slug(name: str) -> str:
    """A file name as a readable, collision-free piece of an object key."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[-60:]}-{digest}"


def review_scale(height: int) -> int:
    """How much a review crop of this height is enlarged for a person."""
    return 4 if height <= 28 else 2


def _png(image: np.ndarray) -> bytes:
    """A crop (dark on light) enlarged for a person: a digit 4x, a line 2x."""
    buffer = io.BytesIO()
    scale = review_scale(image.shape[0])
    size = (image.shape[1] * scale, image.shape[0] * scale)
    Image.fromarray(image).resize(size, Image.Resampling.NEAREST).save(
        buffer,
        "PNG",
        compress_level=1,  # 4x faster than the default level, 8 % larger
    )
    return buffer.getvalue()


def review_key(batch_id: str, row: dict) -> str:
    """Key of the review crop of one digit row (read by the classifier)."""
    where = f"p{row['page']}-l{row['line']}-d{row['position']}-read{row['digit']}"
    return f"{prefix(batch_id)}/review/{slug(row['file'])}-{where}.png"


def line_review_key(batch_id: str, name: str, page: int, line: int, text: str) -> str:
    """Key of the review crop of one line read whole (the line reader's)."""
    if len(text) > KEY_DIGITS:
        text = f"{text[:KEY_DIGITS]}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return f"{prefix(batch_id)}/review/{slug(name)}-p{page}-l{line}-read{text}.png"


def review_keys(batch_id: str, digits: pa.Table, files: list[dict] | None = None) -> set[str]:
    """Keys of the review crops that a table of digit rows calls for, and per-file rows
    (``files``) for their lines read as nothing."""
    rows = digits.filter(digits.column("needs_review")).to_pylist()
    # Rows committed before the review column existed name no key: theirs is derived.
    keys = {row.get("review") or review_key(batch_id, row) for row in rows}
    for f in files or []:
        for line in f["lines"] or []:
            if not line["digits"]:
                keys.add(line_review_key(batch_id, f["file"], line["page"], line["line"], ""))
    return keys


def write_review(
    store: ObjectStore, reading: ShardReading, batch_id: str, names: list[str]
) -> dict[str, set[str]]:
    """One PNG per crop a person should look at; the keys written, by file (``names``: the
    shard's files, in order)."""
    crops = list(reading.crops.items())
    in_threads(lambda item: store.write_bytes(item[0], _png(item[1])), crops)
    written: dict[str, set[str]] = {}
    for row in reading.digits.filter(reading.digits.column("needs_review")).to_pylist():
        if row["review"] is not None:
            written.setdefault(row["file"], set()).add(row["review"])
    for name, lines in zip(names, reading.lines or [], strict=False):
        for line in lines:
            if not line["digits"]:
                key = line_review_key(batch_id, name, line["page"], line["line"], "")
                written.setdefault(name, set()).add(key)
    return written


def stray_review(
    store: ObjectStore, batch_id: str, digits: pa.Table, ledger: pa.Table
) -> list[str]:
    """Review crops of the ``ledger``'s committed files that their committed rows do not
    call for.

    A run that lost a file to another run (which read it with another threshold) may have
    written them; crops of files not committed yet, or committed as quarantined (a run may
    be reading them again), may still be wanted, and are kept.
    """
    files = ledger.select(["file", "lines", "status"]).to_pylist()
    # A quarantined file calls for no crop, but one may be on its way: another run reading
    # it again writes its crops before it commits.
    slugs = {slug(f["file"]) for f in files if f["status"] != "quarantined"}
    wanted = review_keys(batch_id, digits, files)
    strays = []
    for key in store.list(f"{prefix(batch_id)}/review/"):
        match = _REVIEW_KEY.match(key.rsplit("/", 1)[1])
        if match and match["slug"] in slugs and key not in wanted:
            strays.append(key)
    return strays


def column_sum(table: pa.Table, name: str) -> int:
    """Sum of an integer column (0 for an empty table)."""
    return int(pc.sum(table.column(name)).as_py() or 0)
