"""Tasks around training: one model per task, its own process, progress to the UI."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from digitflow import candidates, models, runtime
from digitflow.candidates import Card
from digitflow.data import dataset
from digitflow.ensemble import ensemble_from_uri
from digitflow.errors import TrainingError
from digitflow.fitting import EpochMetrics
from digitflow.isolation import run_in_process
from digitflow.layout import LAYOUTS, layout_of
from digitflow.progress import step
from digitflow.recipes import TrainConfig
from digitflow.storage import open_store
from digitflow.training import train_from_uri
from tasks import worker_runs
from tasks.retry import STORAGE_RETRIES

TRAIN_MODEL_DEPLOYMENT = "train-model/train-model"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def epoch_logger(config: TrainConfig) -> Any:
    """Log each epoch and advance the model's progress artifact."""
    logger = get_run_logger()
    artifact_id = create_progress_artifact(
        progress=0.0,
        key=f"training-progress-{_slug(config.model)}",
        description=f"Epochs of {config.model} completed (%)",
    )

    def on_epoch(m: EpochMetrics) -> None:
        numbers = [("loss", m.loss), ("acc", m.accuracy), ("val_loss", m.val_loss),
                   ("val_acc", m.val_accuracy)]  # fmt: skip
        shown = " ".join(f"{name} {value:.4f}" for name, value in numbers if value == value)
        logger.info(
            "%s epoch %d/%d: %s (%.1f s)", m.model, m.epoch, m.epochs, shown, m.seconds,
            extra=step(f"train {m.model}", m.epoch, m.epochs),
        )  # fmt: skip
        update_progress_artifact(artifact_id, progress=100.0 * m.epoch / m.epochs)  # type: ignore[arg-type]

    return on_epoch


@task(
    name="latest-dataset",
    **STORAGE_RETRIES,
)
def latest_dataset(store_uri: str) -> str:
    """The newest complete dataset version in the store."""
    return dataset.latest(open_store(store_uri))


@task(
    name="latest-training-run",
    **STORAGE_RETRIES,
)
def latest_training_run(store_uri: str, role: str | None = None) -> str:
    """The newest training run with at least one complete candidate of ``role`` (None: of
    either role)."""
    layouts = tuple(LAYOUTS.values()) if role is None else (LAYOUTS[role],)
    return candidates.latest_run(open_store(store_uri), layouts)


@task(name="train", task_run_name="train-{config.model}")
def train_candidate(
    store_uri: str,
    dataset_version: str,
    config: TrainConfig,
    training_run: str,
    gpu_slot: int = 0,
    isolate: bool = True,
) -> Card:
    """Train one model (in its own process unless ``isolate`` is off) into a candidate."""
    logger = get_run_logger()
    on_epoch = epoch_logger(config)
    kwargs: dict[str, Any] = {
        "store_uri": store_uri,
        "dataset_version": dataset_version,
        "config": config,
        "training_run": training_run,
    }
    try:
        if not isolate:
            record: Card = train_from_uri(**kwargs, on_event=on_epoch)
        else:
            env = runtime.gpu_env(gpu_slot, runtime.visible_gpu_count())
            record = run_in_process(
                train_from_uri, kwargs, name=config.model, env=env, on_event=on_epoch
            )
    except TrainingError as exc:
        if exc.child_traceback:
            logger.error("%s failed in its process:\n%s", config.model, exc.child_traceback)
        raise
    logger.info(
        "%s: validation error %.2f %%, test error %.2f %% (%s, %.0f s)",
        config.model,
        100 * record.val_error,
        100 * record.test_error,
        record.device,
        record.wall_s,
    )
    return record


@task(name="ensemble", task_run_name="ensemble-{training_run}")
def ensemble_candidate(store_uri: str, training_run: str, members: list[str]) -> Card:
    """Average trained candidates into the run's ``ensemble`` candidate, in its own process."""
    kwargs = {"store_uri": store_uri, "training_run": training_run, "members": members}
    env = runtime.gpu_env(0, runtime.visible_gpu_count())
    record: Card = run_in_process(ensemble_from_uri, kwargs, name="ensemble", env=env)
    get_run_logger().info(
        "ensemble of %s: validation error %.2f %%, test error %.2f %%",
        ", ".join(members),
        100 * record.val_error,
        100 * record.test_error,
    )
    return record


@task(name="train-on-worker", task_run_name="train-{config.model}-on-worker")
def train_on_worker(
    store_uri: str, dataset_version: str, config: TrainConfig, training_run: str
) -> Card:
    """Run the ``train-model`` deployment for one model and wait for its candidate."""
    name = f"train-{config.model}-{training_run}"
    parameters = {
        "store": store_uri,
        "dataset_version": dataset_version,
        "config": config.model_dump(),
        "training_run": training_run,
    }
    try:
        flow_run = worker_runs.run_and_wait(TRAIN_MODEL_DEPLOYMENT, parameters, name)
    except worker_runs.RunCancelled as exc:
        raise TrainingError(f"{config.model}: stopped, as the command was; {exc}") from None
    state = flow_run.state
    if state is None or not state.is_completed():
        message = state.message if state else "no state"
        raise TrainingError(f"{config.model}: worker run {flow_run.name} ended {message}")
    layout = layout_of(models.role_of(config.model))
    return candidates.read_card(open_store(store_uri), training_run, config.model, layout)


@task(name="training-report")
def training_report(records: list[Card], failures: dict[str, str]) -> None:
    """A table artifact comparing the candidates of one training run."""
    rows: list[dict[str, Any]] = [
        {
            "model": r.model_name,
            "status": "trained",
            "validation error %": round(100 * r.val_error, 2),
            "test error %": round(100 * r.test_error, 2),
            "parameters": r.parameter_count,
            "seconds": round(r.wall_s, 1),
            "device": r.device,
            "candidate": r.model_key,
        }
        for r in sorted(records, key=lambda r: r.val_error)
    ]
    rows += [{"model": name, "status": f"failed: {reason}"} for name, reason in failures.items()]
    run = records[0].training_run if records else "?"
    create_table_artifact(
        rows,
        key="training-candidates",
        description=f"Candidates of training run {run}, best validation first",
    )
