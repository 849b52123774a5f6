"""``digitflow score``: every digit of a folder (or S3 prefix) of scans, into the store."""

from __future__ import annotations

from typing import Annotated

import typer

from digitflow.cli.options import JsonOpt, StoreOpt, params, settings
from digitflow.cli.runner import run_flow
from digitflow.scoring import REVIEW_THRESHOLD, SHARD_SIZE


def score(
    input: Annotated[str, typer.Argument(help="Folder of scans or s3://bucket/prefix.")],
    batch_id: Annotated[
        str | None,
        typer.Option(help="[default: derived from the input and the model; a rerun resumes]"),
    ] = None,
    review_threshold: Annotated[
        float, typer.Option(help="Digits read with less confidence go to the review queue.")
    ] = REVIEW_THRESHOLD,
    model: Annotated[
        str | None,
        typer.Option(help="training_run/model_name [default: the champion of the reader]"),
    ] = None,
    reader: Annotated[
        str,
        typer.Option(
            help="line (read lines and fields whole) | classifier (cut them into digits) | "
            "auto (the line reader if it has a champion)"
        ),
    ] = "auto",
    layout: Annotated[
        str,
        typer.Option(
            help="page (find the lines on each page) | field (each image is one field, read "
            "as one line) | auto (a field if the image is small)"
        ),
    ] = "auto",
    shard_size: Annotated[int, typer.Option(min=1, help="Files per task.")] = SHARD_SIZE,
    rescore: Annotated[
        bool,
        typer.Option(
            help="Read every file with this model. --no-rescore: leave files that an earlier "
            "batch of the same input read, and read only new scans."
        ),
    ] = True,
    follow_outside_links: Annotated[
        bool, typer.Option(help="Read symbolic links that lead out of the input folder.")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            help="Run shards on Dask: local (a worker process per core), local:N, or a "
            "scheduler address tcp://host:8786 [default: threads in this process]"
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read every digit on every page of a folder of scans; results go to the store."""
    from digitflow.scoring import batch

    env = settings(store)
    if dask is None:  # the first reader starts while Prefect and the flow load
        batch.warm_up(env.readers)
    from flows.score import ScoreParams, score_flow

    fields = {
        "input": input, "batch_id": batch_id, "review_threshold": review_threshold,
        "model": model, "reader": reader, "layout": layout, "shard_size": shard_size,
        "rescore": rescore, "dask": dask,
        "follow_outside_links": follow_outside_links, "store": env.store,
    }  # fmt: skip
    scoring = params(ScoreParams, fields)

    def prepare() -> None:  # the readers start and the models load while the server starts
        if scoring.dask is None:
            batch.prepare(env.store, model, scoring.reader, env.inference, env.readers)

    run_flow("Scoring…", lambda: score_flow(scoring), as_json, prepare=prepare)
