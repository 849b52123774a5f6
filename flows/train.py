"""Flows: train several models side by side (``train``) and one model (``train-model``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from pydantic import BaseModel, Field

from digitflow import isolation
from digitflow.candidates import Card
from digitflow.errors import TrainingError
from digitflow.plan import TrainRequest, plan_training
from digitflow.recipes import TrainConfig
from flows.params import StoreParams
from tasks import worker_runs
from tasks.train import (
    ensemble_candidate,
    latest_dataset,
    train_candidate,
    train_on_worker,
    training_report,
)


class TrainParams(TrainRequest, StoreParams):
    """Parameters of the train flow (rendered as a form in the Prefect UI): what to train
    (``digitflow.plan.TrainRequest``: a profile and the recipe fields that win over it)
    and where."""

    dataset_version: str | None = Field(default=None, description="Empty: the newest.")
    training_run: str | None = Field(
        default=None,
        description="Empty: a new timestamped id. Letters, digits, '.', '_' and '-'.",
        # One folder of the store's keys; a run named so is listed and found like any other.
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$",
    )


class TrainSummary(BaseModel):
    """What a training run produced."""

    training_run: str
    dataset_version: str
    candidates: list[Card]
    failures: dict[str, str]


def new_training_run() -> str:
    """A sortable, unique training-run id."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@contextmanager
def _training_ended_if_stopped(futures: dict[str, PrefectFuture[Card]]) -> Iterator[None]:
    """Stopped inside (a SIGTERM, which Prefect raises in the flow's thread, or Ctrl+C),
    end the training processes of ``futures``' tasks, and cancel their runs on workers,
    before the flow ends: the task runner waits for their threads, and they for their
    processes or runs. Again until every task has ended, for a task that starts its
    process or run after the stop."""
    try:
        yield
    except BaseException:
        pending = list(futures.values())
        while pending:
            isolation.end_all()
            worker_runs.cancel_all()
            pending = list(wait(pending, timeout=isolation.POLL_S).not_done)
        raise


def _collect(
    futures: dict[str, PrefectFuture[Card]],
) -> tuple[list[Card], dict[str, str]]:
    """Wait for every future: the records of those that completed, why the others failed."""
    records, failures = [], {}
    with _training_ended_if_stopped(futures):
        for future in futures.values():
            future.wait()
    for name, future in futures.items():
        if future.state.is_completed():
            records.append(future.result())
        else:
            failures[name] = str(future.state.message or "failed")
    return records, failures


@flow(name="train")
def train_flow(params: TrainParams | None = None) -> TrainSummary:
    """Train the requested models in parallel; one failure does not stop the others."""
    params = params or TrainParams()
    plan = plan_training(params)  # unknown models and bad combinations fail here
    store = params.settings().store
    version = params.dataset_version or latest_dataset(store)
    run = params.training_run or new_training_run()
    futures: dict[str, PrefectFuture[Card]] = {}
    with _training_ended_if_stopped(futures):
        for slot, config in enumerate(plan.configs):
            if params.mode == "workers":
                futures[config.model] = train_on_worker.submit(store, version, config, run)
            else:
                futures[config.model] = train_candidate.submit(
                    store, version, config, run, gpu_slot=slot
                )
    records, failures = _collect(futures)
    members = [m for m in plan.ensemble if m in {r.model_name for r in records}]
    if len(members) >= 2:
        more, failed = _collect({"ensemble": ensemble_candidate.submit(store, run, members)})
        records, failures = records + more, failures | failed
    training_report(records, failures)
    if failures:
        get_run_logger().error("models that failed: %s", ", ".join(failures))
    if not records:
        raise TrainingError("every model failed: " + "; ".join(failures.values()))
    return TrainSummary(
        training_run=run, dataset_version=version, candidates=records, failures=failures
    )


@flow(name="train-model")
def train_model_flow(
    store: str, dataset_version: str, config: TrainConfig, training_run: str
) -> Card:
    """Train one model in this flow run's process (the deployment run on a GPU worker)."""
    return train_candidate(store, dataset_version, config, training_run, isolate=False)
