"""``digitflow train``, ``retrain`` and ``pipeline``: the commands that train models.

Their train options come from ``digitflow.plan.TrainRequest`` and their gate options
from ``digitflow.promotion.GateConfig`` (``digitflow.cli.options``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from digitflow.cli.options import (
    JsonOpt,
    StoreOpt,
    params,
    retrain_options,
    settings,
    train_options,
)
from digitflow.cli.runner import run_flow
from digitflow.console import print_pipeline, print_retrain, print_training
from digitflow.plan import plan_training


@train_options
def train(
    request: dict[str, Any],
    dataset_version: Annotated[str | None, typer.Option(help="[default: newest]")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train models in parallel (one process each) into candidates in the store."""
    from flows.train import TrainParams, train_flow

    fields = {**request, "dataset_version": dataset_version, "store": settings(store).store}
    training = params(TrainParams, {k: v for k, v in fields.items() if v is not None})
    plan_training(training)  # a bad combination of options stops here, before any run
    run_flow("Training…", lambda: train_flow(training), as_json, print_training)


@retrain_options
def retrain(
    retraining: dict[str, Any],
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="Only tune the champion line reader on the corrections saved in review (no "
            "training from scratch). Without it, the reader is tuned after training if there "
            "are enough corrections (else the summary says why not).",
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest → train in parallel → evaluate → promote; tune on corrections."""
    from flows.retrain import RetrainParams, retrain_flow

    fields = {**retraining, "store": settings(store).store, "adapt": True if adapt else None}
    job = params(RetrainParams, fields)
    if not adapt:
        plan_training(job.train)
    run_flow("Retraining…", lambda: retrain_flow(job), as_json, print_retrain, ("keras",))


@retrain_options
def pipeline(
    retraining: dict[str, Any],
    scans: Annotated[
        str | None,
        typer.Option(help="Folder or s3:// prefix of scans [default: generated samples]"),
    ] = None,
    pages: Annotated[int, typer.Option(min=1, help="Pages of generated sample scans.")] = 12,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The main job: ingest, train the models in parallel, promote, then score scans."""
    from flows.pipeline import PipelineParams, pipeline_flow

    where = settings(store).store
    fields = {"retrain": {**retraining, "store": where}, "scans": scans, "sample_pages": pages,
              "store": where}  # fmt: skip
    job = params(PipelineParams, fields)
    plan_training(job.retrain.train)
    run_flow("digitflow pipeline…", lambda: pipeline_flow(job), as_json, print_pipeline, ("keras",))
