"""Tasks around evaluation and the promotion gate: decisions, reports, events."""

from __future__ import annotations

import base64
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from pydantic import BaseModel

from digitflow import registry
from digitflow.assessment import Assessment, assess_run
from digitflow.progress import step
from digitflow.promotion import Decision, GateConfig, decide, decision_markdown
from digitflow.storage import open_store
from tasks.retry import STORAGE_RETRIES

PROMOTED_EVENT = "digitflow.model.promoted"


class AssessmentReport(BaseModel):
    """Candidates and champion evaluated on the same validation examples."""

    training_run: str
    candidates: list[Assessment]
    champion: Assessment | None
    champion_etag: str | None


class PromotionResult(BaseModel):
    """What the gate decided, and the champion afterwards."""

    training_run: str
    promoted: bool
    champion: str | None
    reason: str
    decision: Decision


@task(
    name="assess-candidates",
    **STORAGE_RETRIES,
)
def assess_candidates(store_uri: str, training_run: str) -> AssessmentReport:
    """Evaluate a training run's candidates and the current champion."""
    store = open_store(store_uri)
    champion, etag = registry.current_champion(store)
    candidates, held = assess_run(store, training_run, champion)
    logger = get_run_logger()
    for a in [*candidates, *([held] if held else [])]:
        logger.info(
            "%s (%s): validation error %.2f %%, test error %.2f %%",
            a.id,
            a.role,
            100 * a.validation_error,
            100 * a.test_error,
        )
    logger.info("assessed %d candidates", len(candidates), extra=step("evaluate", 1, 1))
    return AssessmentReport(
        training_run=training_run, candidates=candidates, champion=held, champion_etag=etag
    )


@task(
    name="apply-gate",
    **STORAGE_RETRIES,
)
def apply_gate(store_uri: str, report: AssessmentReport, gate: GateConfig) -> PromotionResult:
    """Decide, then promote (verified, conditional) or record the refusal, with reports."""
    store = open_store(store_uri)
    decision = decide(
        [a.evaluation for a in report.candidates],
        report.champion.evaluation if report.champion else None,
        gate,
    )
    info = decision.model_dump(mode="json")
    current, _ = registry.current_champion(store)
    if decision.promoted and decision.winner_training_run and decision.winner_model_name:
        if current is None or current.id != decision.winner:  # a retry may find it done
            card = registry.read_card(
                store, decision.winner_training_run, decision.winner_model_name
            )
            current = registry.promote(store, card, info, report.champion_etag)
    else:
        registry.record_refusal(store, info)
    _publish(store_uri, report, decision)
    get_run_logger().info("%s", decision.reason, extra=step("promote", 1, 1))
    return PromotionResult(
        training_run=report.training_run,
        promoted=decision.promoted,
        champion=current.id if current else None,
        reason=decision.reason,
        decision=decision,
    )


def _png_markdown(store_uri: str, key: str, title: str) -> str:
    data = base64.b64encode(open_store(store_uri).read_bytes(key)).decode()
    return f"**{title}**\n\n![{title}](data:image/png;base64,{data})\n"


def _publish(store_uri: str, report: AssessmentReport, decision: Decision) -> None:
    rows: list[dict[str, Any]] = []
    for a in [*report.candidates, *([report.champion] if report.champion else [])]:
        row = next((r for r in decision.rows if r.id == a.id), None)
        rows.append({
            "model": a.id, "role": a.role,
            "validation error %": round(100 * a.validation_error, 3),
            "test error % (reported only)": round(100 * a.test_error, 3),
            "log-loss": round(a.validation_log_loss, 4), "ECE": round(a.validation_ece, 4),
            "McNemar p": None if row is None or row.p_value is None else round(row.p_value, 5),
            "promoted": a.id == decision.winner and decision.promoted,
        })  # fmt: skip
    create_table_artifact(
        rows,
        key="promotion-candidates",
        description=f"Training run {report.training_run}: candidates and "
        "champion on the same validation examples",
    )
    shown = next((a for a in report.candidates if a.id == decision.winner), None) or min(
        report.candidates, key=lambda a: a.validation_error, default=None
    )
    markdown = decision_markdown(decision)
    if shown is not None:
        markdown += f"\n\n### {shown.id} on the validation slice\n\n"
        markdown += _png_markdown(store_uri, shown.confusion_key, "Confusion matrix")
        markdown += _png_markdown(store_uri, shown.gallery_key, "Misclassified digits")
    create_markdown_artifact(
        markdown,
        key="promotion-decision",
        description=f"Promotion decision for {report.training_run}",
    )


@task(name="announce-promotion")
def announce_promotion(result: PromotionResult, store_uri: str) -> None:
    """Emit the model-promoted event that scoring deployments react to."""
    if not result.promoted or result.champion is None:
        return
    run, _, model = result.champion.partition("/")
    emit_event(
        event=PROMOTED_EVENT,
        resource={
            "prefect.resource.id": f"digitflow.model.{run}.{model}",
            "prefect.resource.name": result.champion,
        },
        payload={
            "champion": result.champion,
            "training_run": run,
            "model_name": model,
            "store": store_uri,
            "reason": result.reason,
        },
    )
