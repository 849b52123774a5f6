"""Tasks around evaluation and the promotion gate: assessments, decisions, reports, events."""

from __future__ import annotations

import uuid

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.events.worker import EventsWorker

from digitflow import candidates, gatekeeper, registry
from digitflow.assessment import RunAssessment, assess_run
from digitflow.gatekeeper import PromotionResult
from digitflow.layout import LAYOUTS, layout_of
from digitflow.progress import step
from digitflow.promotion import GateConfig
from digitflow.reader.assessment import assess_reader_run
from digitflow.storage import open_store
from tasks.retry import STORAGE_RETRIES

PROMOTED_EVENT = "digitflow.model.promoted"


@task(name="roles-of-run", **STORAGE_RETRIES)
def roles_of_run(store_uri: str, training_run: str, role: str | None) -> list[str]:
    """The roles with candidates in a run (only ``role``, if named); NotFoundError if none."""
    roles = {r: layout for r, layout in LAYOUTS.items() if role in (None, r)}
    return candidates.run_roles(open_store(store_uri), training_run, roles)


@task(name="assess-candidates", task_run_name="assess-{role}s", **STORAGE_RETRIES)
def assess_candidates(store_uri: str, training_run: str, role: str = "classifier") -> RunAssessment:
    """Evaluate a training run's candidates of one role and that role's champion."""
    store = open_store(store_uri)
    if role == "reader":
        report = assess_reader_run(store, training_run)
    else:
        report = assess_run(store, training_run)
    logger = get_run_logger()
    for broken in report.unreadable:
        logger.warning("left out %s: %s", broken.model, broken.error)
    for a in [*report.candidates, *([report.champion] if report.champion else [])]:
        logger.info(
            "%s (%s): validation error %.2f %%, test error %.2f %%",
            a.id, a.role, 100 * a.validation_error, 100 * a.test_error,
        )  # fmt: skip
    logger.info("assessed %d candidates", len(report.candidates), extra=step("evaluate", 1, 1))
    return report


@task(name="apply-gate", task_run_name="apply-{role}-gate", **STORAGE_RETRIES)
def apply_gate(
    store_uri: str, report: RunAssessment, gate: GateConfig, role: str = "classifier"
) -> PromotionResult:
    """Decide, then promote (verified, conditional) or record the refusal, with reports."""
    store = open_store(store_uri)
    result = gatekeeper.judge(store, report, gate, layout_of(role))
    suffix = "" if role == "classifier" else f"-{role}"
    create_table_artifact(
        gatekeeper.comparison_rows(report, result.decision),
        key=f"promotion-candidates{suffix}",
        description=f"Training run {report.training_run}: {role} candidates and "
        "champion on the same validation examples",
    )
    create_markdown_artifact(
        gatekeeper.report_page(store, report, result.decision),
        key=f"promotion-decision{suffix}",
        description=f"Promotion decision ({role}s) for {report.training_run}",
    )
    logger = get_run_logger()
    if result.completed:
        logger.warning("wrote the missing history record of %s's promotion", result.completed)
    logger.info("%s", result.reason, extra=step("promote", 1, 1))
    return result


@task(name="announce-promotion")
def announce_promotion(result: PromotionResult, store_uri: str) -> None:
    """Emit the model-promoted event that scoring deployments react to.

    The event's id comes from the champion's change (its history key in its store), so
    every round that announces one change, two rounds racing or a retry, sends the same
    event, and Prefect stores and reacts to it once. Once sent, the promotion waits for it
    no more (``registry.announced``); a promotion stopped before is announced by the next
    round.
    """
    champion = result.news()
    if champion is None:
        return
    run, _, model = champion.partition("/")
    store = open_store(store_uri)
    change = store.uri_of(result.change or champion)
    emit_event(
        event=PROMOTED_EVENT,
        id=uuid.uuid5(uuid.NAMESPACE_URL, change),
        resource={
            "prefect.resource.id": f"digitflow.model.{run}.{model}",
            "prefect.resource.name": champion,
            "digitflow.role": result.role,
        },
        payload={
            "role": result.role,
            "champion": champion,
            "training_run": run,
            "model_name": model,
            "store": store_uri,
            "reason": result.reason,
        },
    )
    if result.unannounced:
        get_run_logger().warning("announced %s, whose promotion was stopped before", champion)
    if result.change:
        # Sent, not only queued (events go out from a thread of their own): then the
        # promotion waits for it no more.
        EventsWorker.instance().wait_until_empty()
        registry.announced(store, result.change)
