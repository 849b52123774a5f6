"""A scoring batch from start to end: check and pin its model, plan shards, score, finalise.

The batch's record and what its reruns read again are ``digitflow.scoring.resume``'s. Each
file is committed once (``digitflow.scoring.commits``), so runs of one batch may overlap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time

import numpy as np
from pydantic import BaseModel

from digitflow.errors import (
    DigitflowError,
    ModelError,
    PreconditionFailed,
)
from digitflow.imaging.fields import Layout
from digitflow.model_files import verify_model as verify_checksum
from digitflow.scoring import REVIEW_THRESHOLD, commits, readers, results
from digitflow.scoring.extract import FileDigits, Reading
from digitflow.scoring.infer import Inference, ModelRef, ReaderChoice, resolve_model, scorer_for
from digitflow.scoring.inputs import (
    check_input,
    default_batch_id,
    list_inputs,
    store_inside,
)
from digitflow.scoring.lines import line_reading, read_lone_digits, second_opinion
from digitflow.scoring.results import ShardReading
from digitflow.scoring.resume import (
    changed_since,
    open_batch,
    read_rows,
    scored_elsewhere,
    sizes_of,
    to_read_again,
)
from digitflow.storage import ObjectStore, open_store

__all__ = ["BatchPlan", "BatchSummary", "ShardResult", "finalize", "plan_batch",
           "resolve_model", "score_shard", "start_batch", "verify_model", "warm_up"]  # fmt: skip

logger = logging.getLogger(__name__)


class BatchPlan(BaseModel):
    """The work left in a batch: its files still to score, in shards."""

    batch_id: str
    files: int
    already_done: int
    shards: list[list[str]]
    # Files this batch read whose size has changed since (a re-scan under the same name):
    # what it read of them stands, and they are not read again in it.
    changed: list[str] = []
    # The size each file to read was listed at (-1: not known), to tell one being written.
    sizes: dict[str, int] = {}
    # Quarantined files this batch reads again (their failure may pass, or they were
    # replaced since), each with the ETag of the commit its new reading replaces.
    again: dict[str, str] = {}
    # Entries quarantined for a reason that may pass and no longer in the input (a folder
    # listable since, whose files are listed instead; a broken link removed): their rows
    # are dropped, each commit as it was read (its ETag), unless another run has since
    # replaced it.
    gone: dict[str, str] = {}
    # Of those, the ones another run has read again since the plan was made (it listed them
    # before they went): their rows stay.
    gone_kept: list[str] = []
    # The store's folder, where it lies inside the input: the batch's output, not listed.
    store_inside: str | None = None


class ShardResult(BaseModel):
    """Counts of the files one shard committed, and of those another run committed first."""

    shard: str
    files: int
    by_other_runs: int
    quarantined: int
    pages: int
    digits: int
    needs_review: int
    seconds: float
    problems: dict[str, str]  # file -> why it was quarantined or only partly read
    unsettled: list[str] = []  # files whose size changed while they were read: left for later


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
    needs_review: int  # digits read with less confidence than the threshold
    # Crops in review/ for a person: a digit each where the classifier read, a line each
    # where the line reader did (a line read as nothing too, with no digit to count).
    review_crops: int = 0
    already_done: int
    by_other_runs: int = 0  # files another run of the batch committed while this one ran
    changed_since_read: int = 0  # files of the input changed since this batch read them
    unsettled: int = 0  # files still being written when read: the next run reads them
    files_uri: str
    digits_uri: str
    review_uri: str


def warm_up(reader_count: int | None = None) -> None:
    """Start the reader processes now, so that they load while the model is checked."""
    readers.start(reader_count)


def prepare(
    store_uri: str, model: str | None, choice: ReaderChoice, inference: Inference,
    reader_count: int | None,
) -> None:  # fmt: skip
    """Start the readers and load the models a batch will use, ahead of its flow (a command
    does it while Prefect's server starts). A model that cannot be found or loaded is left
    to the flow, which stops on it and says why."""
    warm_up(reader_count)
    with contextlib.suppress(DigitflowError):
        for ref in resolve_model(open_store(store_uri), model, choice, inference).models():
            scorer_for(ref)


def _advice(ref: ModelRef) -> str:
    if ref.champion:
        return (
            "roll back to the previous champion (`digitflow models rollback`), or train and "
            "promote a new one (`digitflow retrain`), then score again"
        )
    return "name another candidate with --model, or train a new one (`digitflow train`)"


def verify_model(ref: ModelRef, load: bool = True) -> None:
    """Check the model's checksums (and load it) before any file is read: its Keras file's
    and, where it runs on ONNX, its export's. A tampered or missing file of either stops
    the run.

    Without ``load`` (shards scored elsewhere, on Dask) only the checksums are checked here.
    """
    for model in ref.models():
        try:
            store = open_store(model.store_uri)
            if model.engine == "onnx" or not load:
                verify_checksum(store, model.model_key, model.sha256)
            if load:
                scorer_for(model)  # verifies the file that it loads
            elif model.onnx_key is not None and model.onnx_sha256 is not None:
                verify_checksum(store, model.onnx_key, model.onnx_sha256)
        except ModelError as exc:
            raise ModelError(f"{exc}. Nothing was read or scored: {_advice(model)}") from exc


def plan_batch(
    store: ObjectStore, batch_id: str, input_root: str, shard_size: int, rescore: bool = True,
    ref: ModelRef | None = None, layout: Layout = "auto",
) -> BatchPlan:  # fmt: skip
    """List the input, leave out files already committed, and cut the rest into shards.

    Without ``rescore``, files that another batch of the same input already read the same
    way (an earlier champion of ``ref``'s reader, with ``layout``) count as done too, unless
    their size has changed since: only new scans, and scans replaced since, are read. A file
    this batch read is not read again in it; one that has changed since is listed in the
    plan. A file it quarantined is read again where the failure may pass, or where it was
    replaced since (``to_read_again``).
    """
    inside = store_inside(input_root, store.uri)
    listed = {f.name: f.size for f in list_inputs(input_root, leave_out=inside)}
    names = list(listed)
    done = commits.committed(store, batch_id, names)
    rows = read_rows(store, batch_id)
    # files.parquet names the candidates; their commits, as they stand now, decide.
    again = commits.to_replace(store, batch_id, sorted(to_read_again(rows, listed, done)), listed)
    left = sorted(n for n, row in rows.items() if row.get("retry") and n not in listed)
    gone = commits.to_replace(store, batch_id, left, listed)
    changed = changed_since(sizes_of(rows), listed, done) - again.keys()
    if not rescore:
        if ref is None:
            raise ValueError("without rescore, the plan needs the model that reads")
        done |= scored_elsewhere(store, batch_id, input_root, listed, ref, layout)
    todo = [n for n in names if n not in done or n in again]
    shards = [todo[k : k + shard_size] for k in range(0, len(todo), shard_size)]
    return BatchPlan(
        batch_id=batch_id, files=len(names), already_done=len(names) - len(todo), shards=shards,
        changed=sorted(changed), sizes={name: listed[name] for name in todo}, again=again,
        gone=gone, store_inside=inside,
    )  # fmt: skip


def start_batch(
    store: ObjectStore, input_root: str, batch_id: str | None, ref: ModelRef, shard_size: int,
    rescore: bool = True, layout: Layout = "auto", review_threshold: float | None = None,
) -> BatchPlan:  # fmt: skip
    """Open (or resume) a batch: its id defaults to one derived from the input, the model,
    the layout and the review threshold (each of the last two where it is not the default)."""
    reading = ref.reading if layout == "auto" else f"{ref.reading}\n{layout}"
    if review_threshold not in (None, REVIEW_THRESHOLD):
        reading = f"{reading}\nreview below {review_threshold!r}"
    batch_id = batch_id or default_batch_id(input_root, reading)
    check_input(input_root, store.uri)  # before the batch is opened (batch.json written)
    open_batch(store, batch_id, input_root, ref, layout, review_threshold)
    plan = plan_batch(store, batch_id, input_root, shard_size, rescore, ref, layout)
    kept = drop_gone(store, plan)
    gone = {name: etag for name, etag in plan.gone.items() if name not in kept}
    return plan.model_copy(update={"gone": gone, "gone_kept": kept})


def drop_gone(store: ObjectStore, plan: BatchPlan) -> list[str]:
    """Remove the commits of the plan's entries gone from the input, each only as the plan
    read it: another run that listed the entry still may have read it again meanwhile, and
    its commit stands. Returns the entries whose commits stand so."""
    kept = []
    for name, etag in plan.gone.items():
        try:
            store.delete(commits.commit_key(plan.batch_id, name), if_match=etag)
        except PreconditionFailed:
            kept.append(name)
    return kept


def shard_id(names: list[str]) -> str:
    """A shard's name in logs, from its files."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def read_shard(
    files: list[FileDigits], ref: ModelRef, threshold: float, batch_id: str
) -> ShardReading:
    """What a shard's files read as, in one batched pass of the model: their digits with a
    classifier, their lines with a line reader."""
    scorer = scorer_for(ref)
    if ref.reader == "line":
        lines = [line for f in files for _, line in f.lines]
        reads = scorer.read_lines(lines) if lines else []
        if ref.lone is not None:
            classifier = scorer_for(ref.lone)
            reads = second_opinion(files, reads, classifier)
            reads = read_lone_digits(files, reads, classifier, scorer)
        return line_reading(files, reads, ref.version, threshold, batch_id)
    digits = np.concatenate([np.zeros((0, 28, 28), np.uint8), *(f.digits for f in files)])
    probs = scorer.probabilities(digits) if len(digits) else np.zeros((0, 10))
    return results.classified(files, probs, ref.version, threshold, batch_id)


def score_shard(
    store_uri: str, batch_id: str, input_root: str, names: list[str], ref: ModelRef,
    threshold: float, follow_outside_links: bool = False, reader_count: int | None = None,
    layout: Layout = "auto", listed: dict[str, int] | None = None,
    again: dict[str, str] | None = None,
) -> ShardResult:  # fmt: skip
    """Read, extract and score a shard's files in one inference call (finding digits, or
    lines, on ``reader_count`` reader processes); commit each file.

    Files that another run of the batch has committed since the plan are left out, and so
    are files read at another size than ``listed`` (the plan's listing) gives them: still
    being written, they are read by the next run. A file in ``again`` (a quarantined file
    read again) replaces its commit, which has the ETag given, unless another run did first.
    """
    start = time.perf_counter()
    store = open_store(store_uri)
    again = again or {}
    taken = commits.committed_now(store, batch_id, [n for n in names if n not in again])
    todo = [name for name in names if name not in taken]
    reading = Reading(ref.reader, layout)
    found = readers.read_files(
        input_root, todo, follow_outside_links, reader_count, reading, listed
    )
    files = [_given_up(f) if f.name in again else f for f in found if not f.unsettled]
    read = read_shard(files, ref, threshold, batch_id)
    shard = commits.write_shard(store, batch_id, files, read, ref.version, again)
    mine = [f for f in files if f.name not in set(shard.lost)]
    return ShardResult(
        shard=shard_id(names), files=len(mine), by_other_runs=len(taken) + len(shard.lost),
        quarantined=sum(f.status == "quarantined" for f in mine),
        pages=sum(f.pages for f in mine), digits=shard.digits,
        needs_review=results.column_sum(shard.ledger, "needs_review"),
        seconds=time.perf_counter() - start,
        problems={f.name: f.problem or "" for f in mine if f.status != "scored"},
        unsettled=[f.name for f in found if f.unsettled],
    )  # fmt: skip


def _given_up(file: FileDigits) -> FileDigits:
    """A quarantined file read again: if its reader processes died on it again, it is read
    no more until it is replaced. A file that ends its readers (by memory, or a crash) would
    otherwise end two of them in every run of the batch, a scheduled one every few minutes,
    and may bring the machine's out-of-memory killer down on other processes each time."""
    if not file.reader_died:
        return file
    return dataclasses.replace(
        file,
        retry=False,
        error=f"{file.name}: {readers.READER_DIED}. It was read again after a quarantine "
        "(its readers died, it could not be read, or it was replaced): the batch reads it "
        "again only once it is replaced (its size changes); a new batch id reads it anew",
    )


def finalize(
    store: ObjectStore, batch_id: str, already_done: int = 0, by_other_runs: int = 0,
    changed_since_read: int = 0, unsettled: int = 0,
) -> BatchSummary:  # fmt: skip
    """Write ``files.parquet`` from every file committed, and tidy what no commit needs."""
    base = results.prefix(batch_id)
    for key in commits.drop_legacy_uncommitted(store, batch_id):
        logger.info("dropped %s: its shard never committed and was scored again", key)
    # No rows is a result too: an empty inbox, or every scan read by an earlier batch.
    ledger, digits = commits.publish(store, batch_id)
    for key in results.stray_review(store, batch_id, digits, ledger):
        store.delete(key)
        logger.info("dropped %s: another run committed that file, without this crop", key)
    status = ledger.column("status").to_pylist()
    versions = sorted(set(ledger.column("model_version").to_pylist()))
    return BatchSummary(
        batch_id=batch_id, model_version=", ".join(versions), files=len(ledger),
        scored=status.count("scored"), partial=status.count("partial"),
        quarantined=status.count("quarantined"),
        pages=results.column_sum(ledger, "pages"), digits=len(digits),
        needs_review=results.column_sum(ledger, "needs_review"),
        review_crops=len(results.review_keys(batch_id, digits, ledger.to_pylist())),
        already_done=already_done,
        by_other_runs=by_other_runs, changed_since_read=changed_since_read, unsettled=unsettled,
        files_uri=store.uri_of(f"{base}/files.parquet"),
        digits_uri=store.uri_of(f"{base}/digits"), review_uri=store.uri_of(f"{base}/review"),
    )  # fmt: skip
