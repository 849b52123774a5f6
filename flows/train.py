"""Flows: train several models side by side (``train``) and one model (``train-model``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from pydantic import BaseModel, Field, model_validator

from digitflow import models, recipes
from digitflow.errors import TrainingError
from digitflow.training import CandidateRecord, TrainConfig
from flows.params import StoreParams
from tasks.train import (
    ensemble_candidate,
    latest_dataset,
    train_candidate,
    train_on_worker,
    training_report,
)


class TrainParams(StoreParams):
    """Parameters of the train flow (rendered as a form in the Prefect UI)."""

    profile: recipes.Profile = Field(
        default="seed",
        description="quick: the seed models, 2 epochs on 5,000 examples (~25 s on 2 CPU "
        "cores); seed: the brief's recipe (~1-2 min); best: the challengers with augmentation "
        "and a cosine schedule for 30 epochs, 2 more without, then their ensemble (~80 min). "
        "Fields you set win over the profile's.",
    )
    models: list[str] = Field(default=list(models.SEED_MODELS), min_length=1)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    limit: int | None = Field(default=None, ge=10, description="Train on this many examples.")
    seed: int = Field(
        default=1, description="Seeds shuffling and augmentation; an ensemble's members get "
        "seed, seed + 1, ... in the order listed."
    )  # fmt: skip
    mode: Literal["local", "workers"] = Field(
        default="local",
        description="local: one process per model here; workers: one "
        "run of the train-model deployment per model on the gpu work pool.",
    )
    augment: bool = Field(default=False, description="Warp and re-stroke digits while fitting.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="cosine: one warm-up epoch, then decay to 1 %."
    )
    clean_epochs: int = Field(
        default=0,
        ge=0,
        description="Epochs on the plain digits at the schedule's final rate, after the others.",
    )
    ensemble: list[str] = Field(
        default_factory=list,
        description="Two or more of the models to average into an `ensemble` candidate.",
    )
    overrides: dict[str, dict[str, float | int | bool | str | None]] = Field(
        default_factory=dict,
        description='Per-model hyper-parameters, e.g. {"simple_cnn": {"learning_rate": 0.002}}.',
    )
    dataset_version: str | None = Field(default=None, description="Empty: the newest.")
    training_run: str | None = Field(default=None, description="Empty: a new timestamped id.")

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        """Fill what is not given from the profile (an unknown one fails on its field)."""
        if isinstance(data, dict) and data.get("profile", "seed") in recipes.PROFILES:
            return recipes.apply_profile(data)
        return data


class TrainSummary(BaseModel):
    """What a training run produced."""

    training_run: str
    dataset_version: str
    candidates: list[CandidateRecord]
    failures: dict[str, str]


def new_training_run() -> str:
    """A sortable, unique training-run id."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _threads_per_model(count: int) -> int:
    import os

    return max(1, (os.cpu_count() or 1) // count)


SHARED_HYPERPARAMETERS = {
    "epochs",
    "batch_size",
    "learning_rate",
    "limit",
    "seed",
    "augment",
    "lr_schedule",
    "clean_epochs",
}


def _configs(params: TrainParams) -> dict[str, TrainConfig]:
    unknown = set(params.overrides) - set(params.models)
    if unknown:
        raise ValueError(f"overrides name models that are not trained: {sorted(unknown)}")
    if params.ensemble and (
        len(set(params.ensemble)) < 2 or not set(params.ensemble) <= set(params.models)
    ):
        raise ValueError(f"ensemble needs two or more of the trained models: {params.ensemble}")
    threads = None if params.mode == "workers" else _threads_per_model(len(params.models))
    configs = {}
    seeds = recipes.member_seeds(params.seed, params.ensemble or [])
    for name in params.models:
        models.builder(name)
        common = params.model_dump(include=SHARED_HYPERPARAMETERS)
        common["seed"] = seeds.get(name, params.seed)
        configs[name] = TrainConfig(
            model=name, threads=threads, **{**common, **params.overrides.get(name, {})}
        )
    return configs


def _collect(
    futures: dict[str, PrefectFuture[CandidateRecord]],
) -> tuple[list[CandidateRecord], dict[str, str]]:
    """Wait for every future: the records of those that completed, why the others failed."""
    records, failures = [], {}
    for name, future in futures.items():
        future.wait()
        if future.state.is_completed():
            records.append(future.result())
        else:
            failures[name] = str(future.state.message or "failed")
    return records, failures


@flow(name="train")
def train_flow(params: TrainParams | None = None) -> TrainSummary:
    """Train the requested models in parallel; one failure does not stop the others."""
    params = params or TrainParams()
    configs = _configs(params)  # unknown models and bad hyper-parameters fail here
    store = params.settings().store
    version = params.dataset_version or latest_dataset(store)
    run = params.training_run or new_training_run()
    futures: dict[str, PrefectFuture[CandidateRecord]] = {}
    for slot, (name, config) in enumerate(configs.items()):
        if params.mode == "workers":
            futures[name] = train_on_worker.submit(store, version, config, run)
        else:
            futures[name] = train_candidate.submit(store, version, config, run, gpu_slot=slot)
    records, failures = _collect(futures)
    members = [m for m in params.ensemble if m in {r.model_name for r in records}]
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
) -> CandidateRecord:
    """Train one model in this flow run's process (the deployment run on a GPU worker)."""
    return train_candidate(store, dataset_version, config, training_run, isolate=False)
