"""The ``digitflow`` command: runs the flows from a shell, with progress and a JSON summary."""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from digitflow.console import (
    KnownErrorsWithoutTraceback,
    flow_progress,
    print_pipeline,
    print_retrain,
    print_summary,
)
from digitflow.errors import DigitflowError
from digitflow.scoring import SHARD_SIZE

app = typer.Typer(
    name="digitflow",
    help="Batch system for handwritten digits: ingest MNIST, train, promote, score scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say "[default: …]", which is not markup
)
err = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Object store: a directory or s3://bucket/prefix "
        "[env: DIGITFLOW_STORE; default .digitflow/store]",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (the summary) as the last line.")
]


def _prepare_env(store: str | None) -> None:
    """Settings reach the flows through the environment, as they would in a deployment."""
    if store:
        os.environ["DIGITFLOW_STORE"] = store
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


_server_start: threading.Thread | None = None


def _load_beside_server(*modules: str) -> None:
    """Import ``modules`` while Prefect's temporary server starts, if the flow needs one.

    With no Prefect API set, a flow starts that server on its first call and waits for it
    (3.5 s on 2 cores, in the server's own process). Started here, it boots while this
    process imports the flow's libraries (TensorFlow: 2.5 s), and the flow finds it
    running: `digitflow score` on 4 pages took 8.7 s instead of 11.0 (medians of 7 runs).
    A failure here is left to the flow's own start, which reports it.
    """
    global _server_start
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return  # a server is up (or none may be started): the flow imports what it needs
    _configure_logging()  # before the server's start says it starts
    # The import takes seconds of this process's time: here, not in the thread, where it
    # would only compete with the imports below for the interpreter.
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        with contextlib.suppress(Exception):
            SubprocessASGIServer().start()

    _server_start = threading.Thread(target=start, name="start-prefect-server", daemon=True)
    _server_start.start()
    for module in modules:
        importlib.import_module(module)


@functools.cache  # once per process: the server's early start calls it too
def _configure_logging() -> None:
    """Keep flow and task logs, drop Prefect's own chatter (server start/stop) and
    tracebacks of known errors, so that the reason of a failure is the last line."""
    logging.getLogger("prefect").setLevel(logging.WARNING)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.INFO)
    quiet = KnownErrorsWithoutTraceback()
    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        for handler in logger.handlers:
            handler.addFilter(quiet)


def _run(
    title: str,
    action: Callable[[], BaseModel],
    as_json: bool,
    render: Callable[[Console, dict[str, Any]], None] | None = None,
) -> None:
    """Run ``action`` with progress bars; print its summary; exit 1 on a known error."""
    _configure_logging()
    if _server_start is not None:
        _server_start.join()  # the flow must not find it half-started
    try:
        with flow_progress(err, title):
            result = action().model_dump(mode="json")
    except DigitflowError as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result))
    elif render is not None:
        render(Console(), result)
    else:
        print_summary(Console(), title.rstrip("…. "), result)


@app.callback()
def root() -> None:
    """digitflow: every flow, from a shell. Each command takes --store and --json."""


@app.command()
def ingest(
    source: Annotated[
        str | None,
        typer.Option(
            help="Directory, http(s) base URL or s3:// prefix of the four MNIST .gz "
            "files [env: DIGITFLOW_MNIST_SOURCE; default: public mirrors]"
        ),
    ] = None,
    accept_custom: Annotated[
        bool, typer.Option(help="Accept files that differ from the published MD5s.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest MNIST into a content-addressed Parquet dataset version."""
    _prepare_env(store)
    from flows.ingest import IngestParams, ingest_flow

    params = _params(IngestParams, {"source": source, "accept_custom": accept_custom})
    _run("Ingesting MNIST…", lambda: ingest_flow(params), as_json)


@app.command()
def train(
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model names [default: the seed three]")
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            help="quick (seed models, 2 epochs, 5,000 examples) | seed (the brief's recipe) | "
            "best (challengers + ensemble); the options you give win over the profile's"
        ),
    ] = "seed",
    epochs: Annotated[int | None, typer.Option(min=1, help="[default: the profile's]")] = None,
    limit: Annotated[int | None, typer.Option(min=10, help="Train on N examples.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0)] = None,
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", help="Augment while fitting.")
    ] = None,
    lr_schedule: Annotated[str | None, typer.Option(help="constant | cosine")] = None,
    clean_epochs: Annotated[
        int | None,
        typer.Option(min=0, help="Epochs on the plain digits at the final rate, after the rest."),
    ] = None,
    ensemble: Annotated[
        str | None, typer.Option(help="Comma-separated models to average into `ensemble`.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="[default: 1] Ensemble members get seed, seed + 1, ...")
    ] = None,
    mode: Annotated[str, typer.Option(help="local | workers (the gpu work pool)")] = "local",
    dataset_version: Annotated[str | None, typer.Option(help="[default: newest]")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train models in parallel (one process each) into candidates in the store."""
    _prepare_env(store)
    from flows.train import TrainParams, train_flow

    given: dict[str, Any] = {
        "profile": profile,
        "epochs": epochs,
        "limit": limit,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "augment": augment,
        "lr_schedule": lr_schedule,
        "clean_epochs": clean_epochs,
        "seed": seed,
        "mode": mode,
        "dataset_version": dataset_version,
        "models": models and [m.strip() for m in models.split(",") if m.strip()],
        "ensemble": ensemble and [m.strip() for m in ensemble.split(",") if m.strip()],
    }
    # Only what was given: the profile fills the rest.
    fields = {k: v for k, v in given.items() if v is not None}
    params = _params(TrainParams, fields)
    _run("Training…", lambda: train_flow(params), as_json)


GateOpts = {
    "max_error": typer.Option(help="Absolute validation-error floor a candidate must clear."),
    "min_margin": typer.Option(help="Minimum validation-error improvement over the champion."),
    "alpha": typer.Option(help="McNemar significance level."),
}


@app.command()
def promote(
    training_run: Annotated[str | None, typer.Option(help="[default: the newest run]")] = None,
    max_error: Annotated[float, GateOpts["max_error"]] = 0.05,
    min_margin: Annotated[float, GateOpts["min_margin"]] = 0.001,
    alpha: Annotated[float, GateOpts["alpha"]] = 0.05,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a training run's candidates against the champion and promote through the gate."""
    _prepare_env(store)
    from flows.promote import PromoteParams, promote_flow

    gate = {"max_error": max_error, "min_margin": min_margin, "alpha": alpha}
    params = _params(PromoteParams, {"training_run": training_run, "gate": gate})
    _run("Evaluating and promoting…", lambda: promote_flow(params), as_json)


@app.command()
def retrain(
    source: Annotated[
        str | None, typer.Option(help="MNIST source [env: DIGITFLOW_MNIST_SOURCE]")
    ] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model names")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    limit: Annotated[int | None, typer.Option(min=10, help="Train on N examples.")] = None,
    mode: Annotated[str, typer.Option(help="local | workers")] = "local",
    max_error: Annotated[float, GateOpts["max_error"]] = 0.05,
    min_margin: Annotated[float, GateOpts["min_margin"]] = 0.001,
    alpha: Annotated[float, GateOpts["alpha"]] = 0.05,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest → train in parallel → evaluate → promote."""
    _prepare_env(store)
    from flows.retrain import RetrainParams, retrain_flow

    train: dict[str, Any] = {"epochs": epochs, "limit": limit, "mode": mode}
    if models:
        train["models"] = [m.strip() for m in models.split(",") if m.strip()]
    params = _params(RetrainParams, {
        "ingest": {"source": source}, "train": train,
        "promote": {"gate": {"max_error": max_error, "min_margin": min_margin, "alpha": alpha}},
    })  # fmt: skip
    _run("Retraining…", lambda: retrain_flow(params), as_json, print_retrain)


models_app = typer.Typer(
    help="The model registry: candidates, champion, history, rollback.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


class _Listing(BaseModel):
    champion: str | None
    candidates: list[dict[str, Any]]


class _Shown(BaseModel):
    model: str
    champion: bool
    card: dict[str, Any]
    history: list[dict[str, Any]]


def _store(store: str | None) -> Any:
    from digitflow.settings import Settings
    from digitflow.storage import open_store

    return open_store(store or Settings().store)


@models_app.command("list")
def models_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every candidate with its validation and test error; the champion marked."""
    from digitflow import registry

    def listing() -> _Listing:
        s = _store(store)
        champion, _ = registry.current_champion(s)
        rows = []
        for card in registry.list_candidates(s):
            extra = card.model_dump(mode="json")
            rows.append(
                {
                    "model": card.id,
                    "champion": champion is not None and champion.sha256 == card.sha256,
                    "dataset": card.dataset_version,
                    "val_error": extra.get("val_error"),
                    "test_error": extra.get("test_error"),
                    "created_at": extra["created_at"],
                }
            )
        return _Listing(champion=champion.id if champion else None, candidates=rows)

    _run("Models", listing, as_json)


@models_app.command("show")
def models_show(
    version: Annotated[
        str | None, typer.Argument(help="training_run/model [default: champion]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One model's card (the champion by default) and its promotion history."""
    from digitflow import registry
    from digitflow.errors import NotFoundError

    def shown() -> _Shown:
        s = _store(store)
        champion, _ = registry.current_champion(s)
        model = version or (champion.id if champion else None)
        if model is None or "/" not in model:
            raise NotFoundError("no champion yet; name a model as training_run/model_name")
        run, _, name = model.partition("/")
        card = registry.read_card(s, run, name)
        events = [h for h in registry.history(s) if model in str(h)]
        return _Shown(
            model=model,
            champion=champion is not None and champion.id == model,
            card=card.model_dump(mode="json"),
            history=events,
        )

    _run("Model", shown, as_json)


@models_app.command("rollback")
def models_rollback(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Restore the previous champion in one step (recorded in the history)."""
    from digitflow import registry

    _run("Rolling back…", lambda: registry.rollback(_store(store)), as_json)


@app.command()
def pipeline(
    source: Annotated[
        str | None, typer.Option(help="MNIST source [env: DIGITFLOW_MNIST_SOURCE]")
    ] = None,
    scans: Annotated[
        str | None,
        typer.Option(help="Folder or s3:// prefix of scans [default: generated samples]"),
    ] = None,
    pages: Annotated[int, typer.Option(min=1, help="Pages of generated sample scans.")] = 12,
    models: Annotated[str | None, typer.Option(help="Comma-separated model names")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    limit: Annotated[int | None, typer.Option(min=10, help="Train on N examples.")] = None,
    max_error: Annotated[float, GateOpts["max_error"]] = 0.05,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The main job: ingest, train the models in parallel, promote, then score scans."""
    _prepare_env(store)
    from flows.pipeline import PipelineParams, pipeline_flow

    train: dict[str, Any] = {"epochs": epochs, "limit": limit}
    if models:
        train["models"] = [m.strip() for m in models.split(",") if m.strip()]
    retrain = {
        "ingest": {"source": source},
        "train": train,
        "promote": {"gate": {"max_error": max_error}},
    }
    params = _params(PipelineParams, {"retrain": retrain, "scans": scans, "sample_pages": pages})
    _run("digitflow pipeline…", lambda: pipeline_flow(params), as_json, print_pipeline)


def _params(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """Validate flow parameters up front, reporting a bad option in one line."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        err.print(f"[bold red]error:[/] --{where.replace('_', '-')}: {first['msg']}")
        raise typer.Exit(2) from None


@app.command()
def score(
    input: Annotated[str, typer.Argument(help="Folder of scans or s3://bucket/prefix.")],
    batch_id: Annotated[
        str | None,
        typer.Option(help="[default: derived from the input and the model; a rerun resumes]"),
    ] = None,
    review_threshold: Annotated[
        float, typer.Option(help="Digits read with less confidence go to the review queue.")
    ] = 0.9,
    model: Annotated[
        str | None, typer.Option(help="training_run/model_name [default: the champion]")
    ] = None,
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
    _prepare_env(store)
    from flows.score import ScoreParams, score_flow

    fields: dict[str, Any] = {
        "input": input,
        "batch_id": batch_id,
        "review_threshold": review_threshold,
        "model": model,
        "shard_size": shard_size,
        "rescore": rescore,
        "follow_outside_links": follow_outside_links,
        "dask": dask,
    }
    params = _params(ScoreParams, fields)
    _load_beside_server("keras")
    _run("Scoring…", lambda: score_flow(params), as_json)


def main() -> None:
    """Entry point of the ``digitflow`` console script."""
    app()
