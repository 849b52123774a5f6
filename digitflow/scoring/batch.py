"""A scoring batch from start to end: pin its model, plan shards, score one, finalise.

``scoring/<batch_id>/batch.json`` records the batch's input and model when it starts,
so a rerun resumes with the same model on the same input, and never mixes two.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel

from digitflow.errors import ModelError, PreconditionFailed, SourceError
from digitflow.scoring import readers, results
from digitflow.scoring.infer import ModelRef, prefetch, resolve_model, scorer_for
from digitflow.scoring.inputs import canonical_input, default_batch_id, list_inputs
from digitflow.storage import ObjectStore, open_store

__all__ = ["BatchPlan", "BatchSummary", "ShardResult", "finalize", "open_batch", "plan_batch",
           "resolve_model", "score_shard", "start_batch", "warm_up"]  # fmt: skip

logger = logging.getLogger(__name__)


class BatchRecord(BaseModel):
    """``batch.json``: what a batch reads and which model reads it."""

    input: str
    model_key: str
    sha256: str
    model_version: str
    started_at: datetime


class BatchPlan(BaseModel):
    """The work left in a batch: its files still to score, in shards."""

    batch_id: str
    files: int
    already_done: int
    shards: list[list[str]]


class ShardResult(BaseModel):
    """Counts of one scored shard."""

    shard: str
    files: int
    quarantined: int
    pages: int
    digits: int
    needs_review: int
    seconds: float
    problems: dict[str, str]  # file -> why it was quarantined or only partly read


class BatchSummary(BaseModel):
    """Counts of a scoring batch and where its results are."""

    batch_id: str
    model_version: str
    files: int
    scored: int
    partial: int
    quarantined: int
    pages: int
    digits: int
    needs_review: int
    already_done: int
    files_uri: str
    digits_uri: str
    review_uri: str


def open_batch(store: ObjectStore, batch_id: str, input_root: str, ref: ModelRef) -> None:
    """Record the batch's input and model, or check a rerun matches what it started with."""
    key = f"{results.prefix(batch_id)}/batch.json"
    record = BatchRecord(
        input=canonical_input(input_root), model_key=ref.model_key, sha256=ref.sha256,
        model_version=ref.version, started_at=datetime.now(UTC),
    )  # fmt: skip
    try:
        store.write_bytes(key, record.model_dump_json(indent=2).encode(), if_absent=True)
        return
    except PreconditionFailed:
        started = BatchRecord.model_validate_json(store.read_bytes(key))
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


def scored_elsewhere(store: ObjectStore, batch_id: str, input_root: str) -> set[str]:
    """Files of this input already committed by other batches (earlier models)."""
    where = canonical_input(input_root)
    done: set[str] = set()
    for key in store.list("scoring/"):
        other = key.split("/")[1]
        if key.endswith("/batch.json") and key.count("/") == 2 and other != batch_id:
            record = BatchRecord.model_validate_json(store.read_bytes(key))
            if record.input == where:
                done |= results.done_files(store, other)
    return done


def warm_up(ref: ModelRef, reader_count: int | None = None) -> None:
    """Load the model and start the reader processes while the batch is being planned."""
    readers.start(reader_count)
    prefetch(ref)


def plan_batch(
    store: ObjectStore, batch_id: str, input_root: str, shard_size: int, rescore: bool = True
) -> BatchPlan:
    """List the input, leave out files already committed, and cut the rest into shards.

    Without ``rescore``, files that another batch of the same input already read (with an
    earlier champion) count as done too: only new scans are read.
    """
    names = [f.name for f in list_inputs(input_root)]
    done = results.done_files(store, batch_id)
    if not rescore:
        done |= scored_elsewhere(store, batch_id, input_root)
    todo = [n for n in names if n not in done]
    shards = [todo[k : k + shard_size] for k in range(0, len(todo), shard_size)]
    return BatchPlan(
        batch_id=batch_id, files=len(names), already_done=len(names) - len(todo), shards=shards
    )


def start_batch(
    store: ObjectStore, input_root: str, batch_id: str | None, ref: ModelRef, shard_size: int,
    rescore: bool = True,
) -> BatchPlan:  # fmt: skip
    """Open (or resume) a batch: its id defaults to one derived from the input and model."""
    batch_id = batch_id or default_batch_id(input_root, ref.version)
    open_batch(store, batch_id, input_root, ref)
    return plan_batch(store, batch_id, input_root, shard_size, rescore)


def score_shard(
    store_uri: str, batch_id: str, input_root: str, names: list[str], ref: ModelRef,
    threshold: float, reader_count: int | None = None,
) -> ShardResult:  # fmt: skip
    """Read, extract and score a shard's files in one inference call (finding digits on
    ``reader_count`` reader processes); commit its results."""
    start = time.perf_counter()
    files = readers.read_files(input_root, names, reader_count)
    digits = np.concatenate([np.zeros((0, 28, 28), np.uint8), *(f.digits for f in files)])
    probs = scorer_for(ref).probabilities(digits) if len(digits) else np.zeros((0, 10))
    ledger = results.write_shard(
        open_store(store_uri), batch_id, files, probs, ref.version, threshold
    )
    return ShardResult(
        shard=results.shard_id(names), files=len(files),
        quarantined=sum(f.status == "quarantined" for f in files),
        pages=sum(f.pages for f in files), digits=len(digits),
        needs_review=results.column_sum(ledger, "needs_review"),
        seconds=time.perf_counter() - start,
        problems={f.name: f.error or "; ".join(f.page_errors)
                  for f in files if f.status != "scored"},
    )  # fmt: skip


def finalize(store: ObjectStore, batch_id: str, already_done: int = 0) -> BatchSummary:
    """Drop uncommitted digit parts and write ``files.parquet`` from the ledger parts."""
    base = results.prefix(batch_id)
    for key in results.drop_uncommitted(store, batch_id):
        logger.info("dropped %s: its shard never committed and was scored again", key)
    # No rows is a result too: an empty inbox, or every scan read by an earlier batch.
    ledger = results.read_ledger(store, batch_id)
    store.write_bytes(f"{base}/files.parquet", results.parquet_bytes(ledger))
    status = ledger.column("status").to_pylist()
    versions = sorted(set(ledger.column("model_version").to_pylist()))
    return BatchSummary(
        batch_id=batch_id, model_version=", ".join(versions), files=len(ledger),
        scored=status.count("scored"), partial=status.count("partial"),
        quarantined=status.count("quarantined"),
        pages=results.column_sum(ledger, "pages"), digits=results.column_sum(ledger, "digits"),
        needs_review=results.column_sum(ledger, "needs_review"), already_done=already_done,
        files_uri=store.uri_of(f"{base}/files.parquet"),
        digits_uri=store.uri_of(f"{base}/digits"), review_uri=store.uri_of(f"{base}/review"),
    )  # fmt: skip
