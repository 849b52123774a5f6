"""Tasks around corrections: their dataset version, and the reader tuned on them."""

from __future__ import annotations

from prefect import get_run_logger, task

from digitflow import runtime
from digitflow.candidates import Card
from digitflow.corrections import adapt, dataset
from digitflow.corrections.adapt import adapt_from_uri
from digitflow.corrections.dataset import CorrectionsVersion
from digitflow.errors import ModelError, TrainingError
from digitflow.isolation import run_in_process
from digitflow.recipes import ADAPT_RECIPE, ADAPT_STEPS, TrainConfig
from digitflow.storage import open_store
from tasks.retry import STORAGE_RETRIES
from tasks.train import epoch_logger


@task(name="build-corrections", **STORAGE_RETRIES)
def build_corrections(store_uri: str) -> CorrectionsVersion | None:
    """The corrections dataset of every correction saved so far (None: there are none)."""
    built = dataset.build(open_store(store_uri))
    logger = get_run_logger()
    if built is None:
        logger.info("no corrections in %s: nothing to adapt to", store_uri)
    else:
        logger.info(
            "corrections %s: %d to learn from, %d held out, from batches %s",
            built.version, built.train, built.heldout, ", ".join(built.batches),
        )  # fmt: skip
    return built


@task(name="check-corrections", **STORAGE_RETRIES)
def not_ready(store_uri: str, corrections_version: str) -> str | None:
    """Why the reader cannot be tuned on these corrections (too few, none held out, no
    reader champion), or None where it can."""
    try:
        adapt.ready(open_store(store_uri), corrections_version)
    except (ModelError, TrainingError) as exc:
        return str(exc)
    return None


@task(name="adapt-reader", task_run_name="adapt-line_reader")
def adapt_reader(
    store_uri: str, dataset_version: str, corrections_version: str, training_run: str,
    epochs: int = ADAPT_RECIPE.epochs, steps: int = ADAPT_STEPS,
    strings: int = ADAPT_RECIPE.strings,
) -> Card:  # fmt: skip
    """Fine-tune the reader champion on the corrections, in its own process."""
    logger = get_run_logger()
    recipe = ADAPT_RECIPE.model_copy(update={"epochs": epochs, "strings": strings})
    config = TrainConfig(model="line_reader", **recipe.model_dump())
    on_epoch = epoch_logger(config)
    kwargs = {"store_uri": store_uri, "dataset_version": dataset_version,
              "corrections_version": corrections_version, "training_run": training_run,
              "config": config, "steps": steps}  # fmt: skip
    env = runtime.gpu_env(0, runtime.visible_gpu_count())
    try:
        card: Card = run_in_process(adapt_from_uri, kwargs, name="adapt", env=env,
                                    on_event=on_epoch)  # fmt: skip
    except TrainingError as exc:
        if exc.child_traceback:
            logger.error("adapting failed in its process:\n%s", exc.child_traceback)
        raise
    logger.info(
        "%s adapted from %s: MNIST validation strings error %.2f %%, held-out corrections "
        "exact %.2f %% (%.0f s)", card.model_name, card.adapted_from, 100 * card.val_error,
        100 * card.scores.get("heldout_corrections_exact", float("nan")), card.wall_s,
    )  # fmt: skip
    return card
