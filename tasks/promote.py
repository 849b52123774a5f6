"""Tasks around evaluation and the promotion gate: assessments, decisions, reports, events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.events.related import related_resources_from_run_context
from prefect.events.worker import should_emit_events
from prefect.settings import get_current_settings
from prefect.utilities.asyncutils import run_coro_as_sync

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
# Tries to reach the server's event stream before the event is left for the next round
# (the fourth and later a second apart), and the longest the sending may take: a server
# that takes the connection and then says nothing would hold it for minutes.
_SEND_ATTEMPTS = 5
_SEND_TIMEOUT_S = 30.0


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
    """Send the model-promoted event that scoring deployments react to.

    The event's id comes from the champion's change (its history key in its store), so
    every round that announces one change, two rounds racing or a retry, sends the same
    event, and Prefect stores and reacts to it once. Once the server has it, the promotion
    waits for it no more (``registry.announced``); a promotion stopped before, or whose
    event the server could not be reached for, is announced by the next round.
    """
    champion = result.news()
    if champion is None:
        return
    run, _, model = champion.partition("/")
    store = open_store(store_uri)
    change = store.uri_of(result.change or champion)
    event = Event.model_validate({
        "event": PROMOTED_EVENT,
        "id": uuid.uuid5(uuid.NAMESPACE_URL, change),
        "occurred": datetime.now(UTC),
        "resource": {
            "prefect.resource.id": f"digitflow.model.{run}.{model}",
            "prefect.resource.name": champion,
            "digitflow.role": result.role,
        },
        "payload": {
            "role": result.role,
            "champion": champion,
            "training_run": run,
            "model_name": model,
            "store": store_uri,
            "reason": result.reason,
        },
    })  # fmt: skip
    logger = get_run_logger()
    try:
        if not should_emit_events():
            raise RuntimeError("no Prefect API is set to send it to")
        run_coro_as_sync(asyncio.wait_for(_send(event), _SEND_TIMEOUT_S))
    except Exception as exc:
        why = f"no answer within {_SEND_TIMEOUT_S:.0f} s" if isinstance(exc, TimeoutError) else exc
        later = "the next promote sends it" if result.change else "it is not sent"
        logger.warning(
            "the event of %s's promotion (%s) could not be sent to the Prefect API (%s): "
            "%s; the scoring deployments that react to it do not run until then",
            champion, PROMOTED_EVENT, why, later,
        )  # fmt: skip
        return
    if result.unannounced:
        logger.warning("announced %s, whose promotion was stopped before", champion)
    if result.change:
        registry.announced(store, result.change)


async def _send(event: Event) -> None:
    """Send one event, with the flow and task runs it came from, and return once the server
    has it: a ping sent after it is answered (the events client's checkpoint). Raises if no
    connection to the server's event stream can be made.

    Not through ``emit_event``, whose worker sends from a thread of its own and only logs an
    event it could not send: a promotion would then wait for its event no more, though it
    never went.
    """
    async with get_client() as api:
        related = await related_resources_from_run_context(
            api, exclude={r.id for r in event.involved_resources}
        )
    # As many as an event may have (more, and the server drops it after taking it).
    room = get_current_settings().server.events.maximum_related_resources - len(event.related)
    event.related = [*event.related, *related[: max(room, 0)]]
    async with get_events_client(reconnection_attempts=_SEND_ATTEMPTS, checkpoint_every=1) as out:
        await out.emit(event)
