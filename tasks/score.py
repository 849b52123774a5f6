"""Tasks around batch scoring: pick the model, plan the batch, score shards, report."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from digitflow.imaging.fields import Layout
from digitflow.progress import step
from digitflow.scoring import batch, results
from digitflow.scoring.batch import BatchPlan, BatchSummary, ShardResult
from digitflow.scoring.infer import Inference, ModelRef, ReaderChoice
from digitflow.storage import open_store
from tasks.retry import STORAGE_RETRIES

REPORT_ROWS = 50
CHANGED_SHOWN = 10  # names of files in a log line


@task(name="resolve-model", **STORAGE_RETRIES)
def resolve_model(
    store_uri: str, model: str | None, reader: ReaderChoice = "auto", inference: Inference = "auto"
) -> ModelRef:
    """The model that scores: the champion of the reader chosen, or the named candidate."""
    ref = batch.resolve_model(open_store(store_uri), model, reader, inference)
    how = "lines read whole" if ref.reader == "line" else "digits cut out and classified"
    how += f", on {ref.engine}"
    if ref.lone is not None:
        how += f"; a line that is one lone digit by {ref.lone.version} on {ref.lone.engine}"
    get_run_logger().info("scoring with %s (%s)", ref.version, how)
    return ref


def _listed(names: list[str]) -> str:
    """Names for a log line: the first few, and how many more."""
    more = len(names) - CHANGED_SHOWN
    return ", ".join(names[:CHANGED_SHOWN]) + (f" and {more} more" if more > 0 else "")


@task(name="start-batch", **STORAGE_RETRIES)
def start_batch(
    store_uri: str, input_root: str, batch_id: str | None, ref: ModelRef, shard_size: int,
    rescore: bool = True, layout: Layout = "auto", review_threshold: float | None = None,
) -> BatchPlan:  # fmt: skip
    """Pin the batch's model, layout, review threshold and input, list the input, and
    shard what is left."""
    plan = batch.start_batch(open_store(store_uri), input_root, batch_id, ref, shard_size,
                             rescore, layout, review_threshold)  # fmt: skip
    get_run_logger().info(
        "batch %s: %d files in %s, %d already done, %d shards to score",
        plan.batch_id, plan.files, input_root, plan.already_done, len(plan.shards),
        extra=step("score shards", 0, len(plan.shards)),
    )  # fmt: skip
    logger = get_run_logger()
    if plan.store_inside is not None:
        logger.info("batch %s: the store lies in the input, at %s: its files are not scanned",
                    plan.batch_id, plan.store_inside)  # fmt: skip
    for names, level, what in [
        (list(plan.again), logging.INFO, "quarantined files read again (they could not be "
         "read, or were replaced since)"),
        (list(plan.gone), logging.INFO, "entries it could not read are no longer in the input (a "
         "folder listable since, a link removed): their rows are dropped"),
        (plan.gone_kept, logging.INFO, "entries no longer in the input were read again by "
         "another run meanwhile: their rows are kept"),
        (plan.changed, logging.WARNING, "files changed since it read them: their earlier "
         "reading stands; score the input under another --batch-id to read them as they are "
         "now"),
    ]:  # fmt: skip
        if names:
            logger.log(level, "batch %s: %d %s: %s", plan.batch_id, len(names), what,
                       _listed(names))  # fmt: skip
    return plan


@task(name="verify-model", **STORAGE_RETRIES)
def verify_model(ref: ModelRef, load: bool = True) -> None:
    """Check (and load) the model before any file is read: a bad one stops the run here."""
    batch.verify_model(ref, load)
    get_run_logger().info("model %s verified (sha256 %s…)", ref.version, ref.sha256[:12])


@task(name="score-shard", task_run_name="score-shard-{index}", **STORAGE_RETRIES)
def score_shard(
    store_uri: str, batch_id: str, input_root: str, names: list[str], ref: ModelRef,
    threshold: float, index: int, follow_outside_links: bool = False,
    readers: int | None = None, layout: Layout = "auto", listed: dict[str, int] | None = None,
    again: dict[str, str] | None = None,
) -> ShardResult:  # fmt: skip
    """Score one shard of files with one batched inference call, and commit each file."""
    logger = get_run_logger()
    result = batch.score_shard(
        store_uri, batch_id, input_root, names, ref, threshold, follow_outside_links, readers,
        layout, listed, again,
    )  # fmt: skip
    for name, reason in result.problems.items():
        logger.warning("%s: %s", name, reason)
    for name in result.unsettled:
        logger.warning("%s: its size changed while the batch ran (still being written?): not "
                       "read now; the next run of the batch reads it", name)  # fmt: skip
    logger.info(
        "shard %d: %d files, %d pages, %d digits (%d to review), %d quarantined in %.1f s",
        index, result.files, result.pages, result.digits, result.needs_review,
        result.quarantined, result.seconds, extra=step("score shards"),
    )  # fmt: skip
    if result.by_other_runs:
        logger.info("shard %d: %d files committed by another run of the batch, left to it",
                    index, result.by_other_runs)  # fmt: skip
    return result


@task(name="finalize-batch", **STORAGE_RETRIES)
def finalize_batch(
    store_uri: str, batch_id: str, already_done: int, by_other_runs: int = 0,
    changed_since_read: int = 0, unsettled: int = 0,
) -> BatchSummary:  # fmt: skip
    """Write the batch's per-file table (one row per input file) and count it."""
    summary = batch.finalize(
        open_store(store_uri),
        batch_id,
        already_done,
        by_other_runs,
        changed_since_read,
        unsettled,
    )
    get_run_logger().info(
        "batch %s: %d files (%d scored, %d partial, %d quarantined), %d digits, %d to review "
        "(%d crops in review/)",
        summary.batch_id, summary.files, summary.scored, summary.partial,
        summary.quarantined, summary.digits, summary.needs_review, summary.review_crops,
    )  # fmt: skip
    return summary


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def files_markdown(summary: BatchSummary, rows: list[dict[str, Any]]) -> str:
    """The head of a batch's per-file table as Markdown."""
    lines = [
        f"# Scoring batch `{summary.batch_id}`",
        f"{summary.files} files, {summary.digits} digits, {summary.needs_review} to review "
        f"({summary.review_crops} crops in review/); "
        f"model `{summary.model_version}`. Per-file table: `{summary.files_uri}`.",
        "",
        "| file | status | pages | digits | to review | lines read | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows[:REPORT_ROWS]:
        read = " / ".join(line["digits"] for line in r["lines"] or [])
        cells = [r["file"], r["status"], r["pages"], r["digits"], r["needs_review"], read,
                 r["error"]]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(rows) > REPORT_ROWS:
        lines.append(f"\n… and {len(rows) - REPORT_ROWS} more files.")
    return "\n".join(lines)


@task(name="scoring-report", **STORAGE_RETRIES)
def publish_report(store_uri: str, summary: BatchSummary) -> None:
    """A summary table artifact and a Markdown artifact with the per-file table's head."""
    create_table_artifact(
        [{"field": k, "value": v} for k, v in summary.model_dump().items()],
        key="scoring-summary",
        description=f"Scoring batch {summary.batch_id}",
    )
    ledger = results.read_parquet(
        open_store(store_uri), f"{results.prefix(summary.batch_id)}/files.parquet"
    )
    problems = ledger.filter(pc.not_equal(ledger.column("status"), "scored"))
    # Files that need attention first, then the rest.
    rows = problems.to_pylist() + ledger.slice(0, REPORT_ROWS).to_pylist()
    rows = list({r["file"]: r for r in rows}.values())
    create_markdown_artifact(
        files_markdown(summary, rows),
        key="scoring-files",
        description=f"Per-file results of scoring batch {summary.batch_id}",
    )


class ShardProgress:
    """A progress artifact that advances as the shards of a batch complete."""

    def __init__(self, batch_id: str, shards: int) -> None:
        self.total = shards
        self.done = 0
        self.artifact_id: UUID = create_progress_artifact(  # type: ignore[assignment]
            progress=0.0 if shards else 100.0,
            key="scoring-progress",
            description=f"Shards of scoring batch {batch_id} completed (%)",
        )

    def advance(self) -> None:
        """Count one more shard done."""
        self.done += 1
        update_progress_artifact(self.artifact_id, progress=100.0 * self.done / self.total)
