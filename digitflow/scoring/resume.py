"""A scoring batch's record and its reruns: ``scoring/<batch_id>/batch.json`` holds what
the batch reads and which model reads it, so a rerun resumes with the same model on the
same input and never mixes two; the batch's ``files.parquet`` tells a rerun which files to
read again, and other batches of the same input which files they need not read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyarrow as pa
from pydantic import BaseModel

from digitflow.errors import ModelError, NotFoundError, PreconditionFailed, SourceError
from digitflow.imaging.fields import Layout
from digitflow.layout import LAYOUTS
from digitflow.scoring import commits, results
from digitflow.scoring.infer import ModelRef
from digitflow.scoring.inputs import canonical_input
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)


class BatchRecord(BaseModel):
    """``batch.json``: what a batch reads and which model reads it."""

    input: str
    model_key: str
    sha256: str
    model_version: str
    started_at: datetime
    layout: Layout = "auto"  # how its images are read: pages, fields, or by their size
    reading: str = ""  # every model that reads (a line reader's lone digits' too)
    review_threshold: float | None = None  # None: not recorded (a batch started before it was)


def record_key(batch_id: str) -> str:
    """Where a batch's record lies in the store."""
    return f"{results.prefix(batch_id)}/batch.json"


def read_record(store: ObjectStore, batch_id: str) -> BatchRecord:
    """A batch's record; a SourceError that names it where it is damaged."""
    key = record_key(batch_id)
    data = store.read_bytes(key)
    try:
        return BatchRecord.model_validate_json(data)
    except ValueError as exc:
        raise SourceError(
            f"{store.uri_of(key)} is damaged ({str(exc).splitlines()[-1].strip()[:120]}): "
            f"batch {batch_id!r} cannot be resumed or reviewed; its results stand as they are"
        ) from exc


def open_batch(
    store: ObjectStore, batch_id: str, input_root: str, ref: ModelRef, layout: Layout = "auto",
    review_threshold: float | None = None,
) -> None:  # fmt: skip
    """Record the batch's input, model, layout and review threshold, or check a rerun
    matches them."""
    key = record_key(batch_id)
    record = BatchRecord(
        input=canonical_input(input_root), model_key=ref.model_key, sha256=ref.sha256,
        model_version=ref.version, started_at=datetime.now(UTC), layout=layout,
        reading=ref.reading, review_threshold=review_threshold,
    )  # fmt: skip
    try:
        store.write_bytes(key, record.model_dump_json(indent=2).encode(), if_absent=True)
        return
    except PreconditionFailed:
        try:
            started = read_record(store, batch_id)
        except SourceError as exc:
            raise SourceError(f"{exc}: give another --batch-id (or none)") from exc
    if started.input != record.input:
        raise SourceError(
            f"batch {batch_id!r} in {store.uri} scores {started.input}, not {record.input}: "
            "give another --batch-id (or none) for another input"
        )
    if started.sha256 != ref.sha256:
        raise ModelError(
            f"batch {batch_id!r} was started with model {started.model_version}; finishing "
            f"it with {ref.version} would mix two models: give another --batch-id (or none), "
            f"or --model {started.model_version.split('@')[0]}"
        )
    if started.reading and started.reading != ref.reading:
        raise ModelError(
            f"batch {batch_id!r} was started with {started.reading}, which read its lone "
            f"digits; finishing it with {ref.reading} would mix two models: give another "
            "--batch-id (or none)"
        )
    if started.layout != layout:
        raise SourceError(
            f"batch {batch_id!r} was started with --layout {started.layout}; finishing it "
            f"with --layout {layout} would read its files two ways: give another --batch-id "
            f"(or none), or --layout {started.layout}"
        )
    if None not in (started.review_threshold, review_threshold) and (
        started.review_threshold != review_threshold
    ):
        raise SourceError(
            f"batch {batch_id!r} was started with --review-threshold "
            f"{started.review_threshold:g}; finishing it with {review_threshold:g} would send "
            "its digits to review two ways: give another --batch-id (or none), or "
            f"--review-threshold {started.review_threshold:g}"
        )


def read_rows(store: ObjectStore, batch_id: str) -> dict[str, dict]:
    """Each file's row of a batch's ``files.parquet`` (its status, the size it was read at,
    whether a rerun reads it again), by file name; files not yet in it are left out.

    That table is rebuilt from the commits at the end of every run: one that cannot be read
    tells nothing (and the batch's next run writes it again), it stops nothing.
    """
    key = f"{results.prefix(batch_id)}/files.parquet"
    try:
        table = results.read_parquet(store, key)
    except NotFoundError:
        return {}
    except (pa.ArrowException, OSError) as exc:
        logger.warning(
            "%s cannot be read (%s): changed files are not told apart", store.uri_of(key), exc
        )
        return {}
    wanted = [c for c in ("file", "status", "size", "retry") if c in table.column_names]
    return {row["file"]: row for row in table.select(wanted).to_pylist()}


def sizes_of(rows: dict[str, dict]) -> dict[str, int]:
    """The size each file had when it was read (files read before sizes were kept, and
    those that could not be read, are left out)."""
    return {name: row["size"] for name, row in rows.items() if row.get("size") is not None}


def to_read_again(rows: dict[str, dict], listed: dict[str, int], names: set[str]) -> set[str]:
    """Which of ``names`` (files a batch committed) a rerun reads again: those quarantined
    by a failure that may pass (the file could not be read: gone for a moment, a broken link
    since fixed, no permission; or its reader process died, in one run only), and those
    quarantined whose size has changed since (replaced by a good copy). A file read is never
    read again."""
    quarantined = {n for n in names if rows.get(n, {}).get("status") == "quarantined"}
    may_pass = {n for n in quarantined if rows[n].get("retry")}
    return may_pass | changed_since(sizes_of(rows), listed, quarantined)


def changed_since(read: dict[str, int], listed: dict[str, int], names: set[str]) -> set[str]:
    """Which of ``names`` are listed now at another size than they were read at (files whose
    size is not known either way are taken as unchanged)."""
    return {n for n in names if n in read and listed.get(n, -1) >= 0 and read[n] != listed[n]}


def _reader_of(record: BatchRecord) -> str:
    """How a batch's files were read: in lines by a line reader, or cut into digits."""
    return "line" if record.model_key.startswith(f"{LAYOUTS['reader'].base}/") else "classifier"


def scored_elsewhere(
    store: ObjectStore, batch_id: str, input_root: str, listed: dict[str, int], ref: ModelRef,
    layout: Layout,
) -> set[str]:  # fmt: skip
    """Files of this input already committed by other batches that read it the same way
    (an earlier model of the same reader, the same layout), as they are now: a file changed
    since (its size differs), or quarantined by a failure that may pass, is not among them."""
    where = canonical_input(input_root)
    names = list(listed)
    done: set[str] = set()
    for key in store.list("scoring/"):
        other = key.split("/")[1]
        if key.endswith("/batch.json") and key.count("/") == 2 and other != batch_id:
            try:
                record = read_record(store, other)
            except SourceError as exc:
                logger.warning("%s; files it read are read again here", exc)
                continue
            same_way = _reader_of(record) == ref.reader and record.layout == layout
            if record.input == where and same_way:
                read = commits.committed(store, other, names)
                rows = read_rows(store, other)
                stale = changed_since(sizes_of(rows), listed, read)
                done |= read - stale - to_read_again(rows, listed, read)
    return done
