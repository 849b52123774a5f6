"""Each input file of a batch committed once, by one conditional write, whatever overlaps.

``scoring/<batch_id>/digits/part-<file key>.parquet`` holds one file's digit rows, with its
per-file row in the Parquet metadata. It is written only if absent: the first run to write
it commits the file, and a run that finds it there (another run of the same batch, or a
retry of its own shard) drops its own reading. A run killed mid-shard has committed each of
its files or not, never half of one. So a batch holds one row per file and per digit
whatever runs overlap, crash or retry, and ``digits/`` can be read as it stands.

A file quarantined for a reason that may pass (it could not be read) is read again by the
batch's next run, whose commit replaces the quarantine's by a write conditional on its
ETag: of two runs that read it again, one replaces it and the other drops its reading.

``files.parquet`` is rebuilt from the commits at the end of every run, and written only if
it has not changed since that run began reading them: of two runs finishing at once, the
one that read fewer commits cannot have the last word.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from digitflow.errors import NotFoundError, PreconditionFailed, StoreError, StoreUnavailable
from digitflow.scoring import results
from digitflow.scoring.extract import FileDigits
from digitflow.scoring.results import (
    DIGITS_SCHEMA,
    ShardReading,
    in_threads,
    prefix,
    read_parquet,
)
from digitflow.storage import ObjectStore

LEDGER_META = b"digitflow.file"
# Shards committed before per-file commits: digits/part-<shard>.parquet and, as the
# commit marker, ledger/part-<shard>.parquet. Still read, so such a batch resumes exactly.
_LEGACY_PART = re.compile(r"/part-[0-9a-f]{16}\.parquet$")
PUBLISH_ATTEMPTS = 20


class ShardCommit(NamedTuple):
    """What a shard committed: the per-file rows of its files, and the files it lost."""

    ledger: pa.Table
    digits: int
    lost: list[str]  # committed first by another run


def file_key(name: str) -> str:
    """The object name of one input file's commit: readable, and unique per file name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-60:]
    return f"part-{readable}-{hashlib.sha256(name.encode()).hexdigest()[:32]}.parquet"


def commit_key(batch_id: str, name: str) -> str:
    """Key of one input file's commit in a batch."""
    return f"{prefix(batch_id)}/digits/{file_key(name)}"


def commit(
    store: ObjectStore, batch_id: str, name: str, digits: pa.Table, row: dict,
    replaces: str | None = None,
) -> bool:  # fmt: skip
    """Commit one file's rows unless a run did first; True when this call committed it.

    With ``replaces`` (the ETag of the file's commit: a quarantined file read again), that
    commit is replaced unless another run has replaced it first.
    """
    key = commit_key(batch_id, name)
    meta = {LEDGER_META: json.dumps(row).encode()}
    data = results.parquet_bytes(digits.replace_schema_metadata(meta))
    if replaces is not None:
        try:
            store.write_bytes(key, data, if_match=replaces)
            return True
        except (PreconditionFailed, NotFoundError):  # replaced, or removed, by another run
            return False
    for _ in range(3):
        try:
            store.write_bytes(key, data, if_absent=True)
            return True
        except PreconditionFailed:
            if store.exists(key):
                return False
            # S3 refuses both of two conditional writes that race for one key (409
            # ConditionalRequestConflict): neither committed, so try again.
    raise StoreUnavailable(f"cannot commit {store.uri_of(key)}: conditional writes kept colliding")


def to_replace(
    store: ObjectStore, batch_id: str, names: list[str], listed: dict[str, int]
) -> dict[str, str]:  # fmt: skip
    """Of ``names``, the files whose commit, as it stands now, is a quarantine to read again
    (``retry``, or a file whose size is not what it was read at), each with that commit's
    ETag. Read from the commits themselves: ``files.parquet`` may be older than they are
    (another run read the file again since, and has not rewritten it yet)."""

    def current(name: str) -> str | None:
        try:
            data, etag = store.read_with_etag(commit_key(batch_id, name))
        except NotFoundError:
            return None
        meta = pq.read_schema(pa.BufferReader(data)).metadata or {}
        row = json.loads(meta.get(LEDGER_META, b"{}"))
        if row.get("status") != "quarantined":
            return None
        replaced = row.get("size") is not None and listed.get(name, -1) not in (-1, row["size"])
        return etag if row.get("retry") or replaced else None

    found = in_threads(current, names)
    return {name: tag for name, tag in zip(names, found, strict=True) if tag is not None}


def read_commit(store: ObjectStore, key: str) -> tuple[dict, pa.Table]:
    """One commit: the file's per-file row and its digit rows."""
    try:
        table = read_parquet(store, key)
    except pa.ArrowException as exc:  # cut short (a disk full, a crash), or not Parquet
        raise StoreError(
            f"{store.uri_of(key)} is not a readable commit ({exc}): remove it, and score the "
            "batch again (its file is read again)"
        ) from exc
    meta = table.schema.metadata or {}
    if LEDGER_META not in meta:
        raise StoreError(
            f"{store.uri_of(key)} is not a digitflow commit (it has no per-file row): "
            "remove it, and score the batch again"
        )
    return json.loads(meta[LEDGER_META]), results.conform(table.replace_schema_metadata(None))


def write_shard(
    store: ObjectStore, batch_id: str, files: list[FileDigits], reading: ShardReading,
    version: str, again: dict[str, str] | None = None,
) -> ShardCommit:  # fmt: skip
    """Write a shard's review crops, then commit each of its files (replacing the commits
    of those read ``again``, as ``commit`` does); return what it committed."""
    again = again or {}
    # Crops first: once a file is committed, every crop its rows call for exists.
    written = results.write_review(store, reading, batch_id, [f.name for f in files])
    rows = results.ledger_rows(files, reading.digits, version, reading.lines)

    def commit_one(k: int) -> bool:
        name = files[k].name
        if commit(store, batch_id, name, reading.of(k), rows[k], again.get(name)):
            return True
        with contextlib.suppress(NotFoundError):  # a commit to replace removed meanwhile
            _drop_crops(store, batch_id, name, written.get(name, set()))
        return False

    won = in_threads(commit_one, range(len(files)))
    mine = [row for row, ok in zip(rows, won, strict=True) if ok]
    return ShardCommit(
        ledger=results.ledger_table(mine),
        digits=sum(row["digits"] for row in mine),
        lost=[f.name for f, ok in zip(files, won, strict=True) if not ok],
    )


def _drop_crops(store: ObjectStore, batch_id: str, name: str, mine: set[str]) -> None:
    """Delete the crops this run wrote for a file another run committed, unless that run's
    rows call for them too (it may have read the file with another review threshold)."""
    row, theirs = read_commit(store, commit_key(batch_id, name))
    if row["status"] == "quarantined":  # a third run may be reading it again, these its crops
        return
    for key in mine - results.review_keys(batch_id, theirs, [row]):
        store.delete(key)


def committed(store: ObjectStore, batch_id: str, names: list[str]) -> set[str]:
    """Which of ``names`` a batch has committed (one listing of its commits)."""
    keys = {key.rsplit("/", 1)[1] for key in store.list(f"{prefix(batch_id)}/digits/")}
    done = {name for name in names if file_key(name) in keys}
    legacy = {row["file"] for row in _legacy_rows(store, batch_id)}
    return done | (legacy & set(names))


def committed_now(store: ObjectStore, batch_id: str, names: list[str]) -> set[str]:
    """Which of ``names`` are committed right now (one lookup each: a shard's few files)."""
    found = in_threads(lambda name: store.exists(commit_key(batch_id, name)), names)
    return {name for name, exists in zip(names, found, strict=True) if exists}


def _legacy_rows(store: ObjectStore, batch_id: str) -> list[dict]:
    keys = store.list(f"{prefix(batch_id)}/ledger/")
    return [row for key in keys for row in read_parquet(store, key).to_pylist()]


def _legacy_committed(store: ObjectStore, batch_id: str) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in store.list(f"{prefix(batch_id)}/ledger/")}


def read_batch(store: ObjectStore, batch_id: str) -> tuple[pa.Table, pa.Table]:
    """Every committed per-file row (by file) and digit row (by file, page, line, position)."""
    keys = store.list(f"{prefix(batch_id)}/digits/")
    commits = in_threads(lambda key: read_commit(store, key),
                         [k for k in keys if not _LEGACY_PART.search(k)])  # fmt: skip
    legacy_parts = _legacy_committed(store, batch_id)
    legacy = [results.conform(read_parquet(store, k)) for k in keys
              if _LEGACY_PART.search(k) and k.rsplit("/", 1)[1] in legacy_parts]  # fmt: skip
    ledger = results.ledger_table([row for row, _ in commits] + _legacy_rows(store, batch_id))
    tables = [DIGITS_SCHEMA.empty_table(), *(table for _, table in commits), *legacy]
    return ledger, pa.concat_tables(tables).sort_by(results.DIGIT_ORDER)


def read_ledger(store: ObjectStore, batch_id: str) -> pa.Table:
    """Every committed per-file row of a batch, by file name."""
    return read_batch(store, batch_id)[0]


def read_digits(store: ObjectStore, batch_id: str) -> pa.Table:
    """Every committed digit row of a batch."""
    return read_batch(store, batch_id)[1]


def drop_legacy_uncommitted(store: ObjectStore, batch_id: str) -> list[str]:
    """Delete old-layout digit parts whose shard never committed; return their keys."""
    parts = _legacy_committed(store, batch_id)
    stale = [k for k in store.list(f"{prefix(batch_id)}/digits/")
             if _LEGACY_PART.search(k) and k.rsplit("/", 1)[1] not in parts]  # fmt: skip
    for key in stale:
        store.delete(key)
    return stale


def _etag(store: ObjectStore, key: str) -> str | None:
    try:
        return store.read_with_etag(key)[1]
    except NotFoundError:
        return None


def publish(store: ObjectStore, batch_id: str) -> tuple[pa.Table, pa.Table]:
    """Write ``files.parquet`` from every commit; return the per-file and digit rows."""
    key = f"{prefix(batch_id)}/files.parquet"
    for _ in range(PUBLISH_ATTEMPTS):
        etag = _etag(store, key)
        ledger, digits = read_batch(store, batch_id)
        try:
            data = results.parquet_bytes(ledger)
            store.write_bytes(key, data, if_match=etag, if_absent=etag is None)
            return ledger, digits
        except PreconditionFailed:
            continue  # another run wrote it since, maybe from fewer commits: read them again
    raise StoreUnavailable(
        f"cannot write {store.uri_of(key)}: other runs of batch {batch_id} kept rewriting it; "
        "run the same command again once they are done"
    )
