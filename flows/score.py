"""Flow: score a folder (or S3 prefix) of scans with the champion model, resumably."""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field, field_validator

from digitflow.errors import DigitflowError
from digitflow.imaging.fields import Layout
from digitflow.scoring import REVIEW_THRESHOLD, SHARD_SIZE
from digitflow.scoring.batch import BatchPlan, BatchSummary, ShardResult, warm_up
from digitflow.scoring.infer import ModelRef, ReaderChoice
from digitflow.scoring.inputs import BATCH_ID
from digitflow.scoring.interrupt import stopped_on_interrupt
from flows.params import NO_CREDENTIALS, StoreParams, without_credentials
from flows.runners import SPEC_PATTERN, dask_runner
from tasks.score import (
    ShardProgress,
    finalize_batch,
    publish_report,
    resolve_model,
    score_shard,
    start_batch,
    verify_model,
)

# Shard threads overlap reading files, inference and writing results; the digits are
# found in reader processes (digitflow.scoring.readers), so more threads add no speed.
SHARD_THREADS = max(4, os.cpu_count() or 1)


class ScoreParams(StoreParams):
    """Parameters of the score flow (rendered as a form in the Prefect UI)."""

    input: str = Field(
        description="Folder of scans or s3://bucket/prefix, read recursively.",
        json_schema_extra=NO_CREDENTIALS,
    )
    batch_id: str | None = Field(
        default=None,
        pattern=BATCH_ID,
        description="Empty: derived from the input and the model, so a rerun resumes.",
    )
    shard_size: int = Field(
        default=SHARD_SIZE, ge=1, le=10_000, description="Files per task (one inference call each)."
    )
    review_threshold: float = Field(
        default=REVIEW_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="Digits read with less confidence need review.",
    )
    model: str | None = Field(
        default=None,
        pattern=r"^[^/\s]+/[^/\s]+$",
        description="training_run/model_name of a candidate (a classifier or a line reader). "
        "Empty: the champion of the reader chosen.",
    )
    reader: ReaderChoice = Field(
        default="auto",
        description="line: read each line (or field) whole with the line reader champion; "
        "classifier: cut lines into digits and read each with the classifier champion; "
        "auto: the line reader if there is a champion of it, else the classifier.",
    )
    layout: Layout = Field(
        default="auto",
        description="page: find the lines of digits on each page; field: each image is one "
        "field (a check amount, a ZIP-code box, a form cell), read as one line; auto: a "
        "field if the image is small (200 pixels high or less, or 400 or less both ways).",
    )
    rescore: bool = Field(
        default=True,
        description="Read every file with this model. Off: files that an earlier batch of "
        "the same input already read (with an earlier champion) are left as they are, and "
        "only new scans are read - what a scheduled inbox run wants.",
    )
    follow_outside_links: bool = Field(
        default=False,
        description="Read symbolic links in the input folder that lead out of it. Off: such "
        "links are quarantined unread, so a link cannot expose files outside the folder.",
    )
    dask: str | None = Field(
        default=None,
        pattern=SPEC_PATTERN,
        description="Run the shards on Dask: local (one worker process per core), local:N, "
        "or a scheduler address tcp://host:8786. Empty: threads in the flow's process.",
    )

    _input_without_credentials = field_validator("input")(without_credentials)


def _score_shards(
    store: str, plan: BatchPlan, params: ScoreParams, ref: ModelRef, readers: int | None
) -> list[ShardResult]:
    """Submit one task per shard on the current task runner; wait, advancing the progress."""
    progress = ShardProgress(plan.batch_id, len(plan.shards))
    futures: list[PrefectFuture[ShardResult]] = [
        score_shard.submit(store, plan.batch_id, params.input, names, ref,
                           params.review_threshold, k, params.follow_outside_links, readers,
                           params.layout, {n: plan.sizes.get(n, -1) for n in names},
                           {n: plan.again[n] for n in names if n in plan.again})
        for k, names in enumerate(plan.shards)
    ]  # fmt: skip
    done, failures = [], []
    with stopped_on_interrupt():
        for future in as_completed(futures):
            future.wait()  # records the final state on the future
            if future.state.is_completed():
                done.append(future.result())
                progress.advance()
            else:
                failures.append(str(future.state.message or future.state.name))
    if failures:
        raise DigitflowError(
            f"{len(failures)} of {len(futures)} shards of batch {plan.batch_id} failed "
            f"(first: {failures[0]}); the others are saved: once that is dealt with (or has "
            "passed), run the same command again to finish the batch"
        )
    return done


@flow(name="score-shards")
def score_shards_flow(
    store: str, plan: BatchPlan, params: ScoreParams, ref: ModelRef, readers: int | None = None
) -> list[ShardResult]:
    """The shards of a batch, on the task runner this subflow is given (Dask)."""
    return _score_shards(store, plan, params, ref, readers)


# Prefect annotates task_runner as TaskRunner[PrefectFuture], which no concrete runner is.
@flow(name="score", task_runner=ThreadPoolTaskRunner(max_workers=SHARD_THREADS))  # type: ignore[arg-type]
def score_flow(params: ScoreParams) -> BatchSummary:
    """Read every digit of every file under the input; rerunning a batch resumes it."""
    settings = params.settings()
    store = settings.store
    ref = resolve_model(store, params.model, params.reader, settings.inference)
    runner = dask_runner(params.dask) if params.dask else None  # a scheduler that answers
    if not params.dask:
        warm_up(settings.readers)  # the readers start while the model is checked and loaded
    # Before any file is read: a tampered or missing model stops the run here, once.
    verify_model(ref, load=not params.dask)
    plan = start_batch(
        store, params.input, params.batch_id, ref, params.shard_size, params.rescore,
        params.layout, params.review_threshold,
    )  # fmt: skip
    if runner is not None:
        get_run_logger().info("scoring %d shards on Dask (%s)", len(plan.shards), params.dask)
        on_dask = score_shards_flow.with_options(task_runner=runner)
        shards = on_dask(store, plan, params, ref, settings.readers)
    else:
        shards = _score_shards(store, plan, params, ref, settings.readers)
    others = sum(shard.by_other_runs for shard in shards)
    unsettled = sum(len(shard.unsettled) for shard in shards)
    summary = finalize_batch(
        store, plan.batch_id, plan.already_done, others, len(plan.changed), unsettled
    )
    publish_report(store, summary)
    return summary
