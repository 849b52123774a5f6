"""The model registry: the champion pointer's changes, each recorded in the history.

A promotion or rollback verifies the model it names (and its ONNX export, which is what
scores) against its card's sha256, moves the
pointer with a conditional write, then writes its history record at the key the pointer
names. A record that could not be written (a network cut, a history folder that is not
writable) is written by the next promotion, decision or rollback, so the pointer and
the history agree again, and a retry of the same decision completes it rather than
doing it twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from digitflow import history as records
from digitflow.candidates import (
    Card,
    RegistryError,
    list_candidates,
    read_card,
    save_candidate,
    utc_now,
)
from digitflow.errors import PreconditionFailed, StoreError
from digitflow.history import HistoryRecord, history
from digitflow.layout import CLASSIFIER, Layout
from digitflow.model_files import load_model, verify_model
from digitflow.pointer import Champion, current_champion, trim, write_pointer
from digitflow.promotion import Decision
from digitflow.storage import ObjectStore

__all__ = [
    "Applied",
    "Card",
    "Champion",
    "GateRound",
    "HistoryRecord",
    "RegistryError",
    "apply_decision",
    "complete",
    "current_champion",
    "history",
    "list_candidates",
    "load_model",
    "promote",
    "read_card",
    "record_refusal",
    "rollback",
    "save_candidate",
    "verify_model",
]

logger = logging.getLogger(__name__)


class GateRound(BaseModel):
    """One round of the gate: its id (the same on every retry of it), when it began, and
    the champion pointer (its ETag) it judges against."""

    id: str
    at: datetime
    champion_etag: str | None

    @classmethod
    def begin(cls, champion_etag: str | None) -> GateRound:
        """A new round against the pointer whose ETag is ``champion_etag``."""
        return cls(id=uuid.uuid4().hex, at=utc_now(), champion_etag=champion_etag)


class Applied(BaseModel):
    """What a decision did to the registry."""

    promoted: bool  # this decision made the champion (now, or in an earlier try of it)
    champion: Champion | None  # the champion afterwards
    reason: str
    record: str | None  # the history record of this decision; None: nothing to record
    completed: Champion | None = None  # the champion whose missing record was written now


def _record(store: ObjectStore, pointer: Champion, replaced: Champion | None) -> None:
    """Write the history record of a pointer change at the key the pointer names."""
    assert pointer.record_key is not None
    record = HistoryRecord(
        action=pointer.action,
        at=pointer.promoted_at,
        champion=pointer.alone(),
        replaced=replaced.alone() if replaced else None,
        decision=pointer.decision,
        decision_id=pointer.decision_id,
    )
    records.write_at(store, pointer.record_key, record)


def complete(store: ObjectStore, pointer: Champion | None) -> bool:
    """Write the history record of ``pointer``'s change if it is missing; whether it was.

    A promotion's record names the pointer it replaced; a rollback's, only in its reason.
    """
    if pointer is None or pointer.record_key is None or store.exists(pointer.record_key):
        return False
    try:
        _record(store, pointer, pointer.previous if pointer.action == "promote" else None)
    except StoreError as exc:
        raise type(exc)(
            f"the history record of {pointer.action} {pointer.id} is missing and cannot be "
            f"written to {store.uri_of(pointer.record_key)}: {exc}"
        ) from exc
    logger.warning("wrote the missing history record %s", store.uri_of(pointer.record_key))
    return True


def _move(
    store: ObjectStore, pointer: Champion, replaced: tuple[Champion | None, str | None],
    what: str, layout: Layout,
) -> None:  # fmt: skip
    """Point the champion at ``pointer`` if the pointer is still ``replaced`` (the pointer
    and its ETag), then record the change in the history."""
    write_pointer(store, pointer, replaced[1], what, layout)
    logger.info("%s: the champion is now %s", what, pointer.id)
    try:
        _record(store, pointer, replaced[0])
    except StoreError as exc:
        assert pointer.record_key is not None
        raise type(exc)(
            f"{what} done, the champion is now {pointer.id}, but its history record "
            f"{store.uri_of(pointer.record_key)} could not be written ({exc}); the next "
            "promote or rollback writes it"
        ) from exc


def _verify(
    store: ObjectStore, model_key: str, sha256: str, onnx_key: str | None, onnx_sha256: str | None
) -> None:
    """The model file, and its ONNX export where it has one, as their checksums say: a
    champion whose export is broken would be refused by every scoring run."""
    verify_model(store, model_key, sha256)
    if onnx_key and onnx_sha256:
        verify_model(store, onnx_key, onnx_sha256)


def promote(
    store: ObjectStore,
    card: Card,
    decision: dict[str, Any],
    expected_etag: str | None,
    decision_id: str | None = None,
    layout: Layout = CLASSIFIER,
) -> Champion:
    """Make ``card``'s model champion: verify it, swap the pointer conditionally, record it."""
    _verify(store, card.model_key, card.sha256, card.onnx_key, card.onnx_sha256)
    current, etag = current_champion(store, layout)
    if etag != expected_etag:
        raise PreconditionFailed(
            f"promotion of {card.id} refused: {store.uri_of(layout.champion)} changed since "
            "the decision was taken (another promotion or rollback); decide again"
        )
    complete(store, current)
    now = utc_now()
    record_key = _free_record_key(store, layout, now, "promote")
    pointer = Champion(
        training_run=card.training_run,
        model_name=card.model_name,
        model_key=card.model_key,
        sha256=card.sha256,
        card_key=card.card_key,
        dataset_version=card.dataset_version,
        promoted_at=now,
        onnx_key=card.onnx_key,
        onnx_sha256=card.onnx_sha256,
        reason=str(decision.get("reason", "")),
        decision=decision,
        decision_id=decision_id,
        record_key=record_key,
        previous=trim(current),
    )
    # Its event waits here until it is sent: a promotion stopped after the move and before
    # its event (a kill, a crash) is announced by the next round instead of never.
    store.write_bytes(announcement_key(record_key), pointer.id.encode())
    try:
        _move(store, pointer, (current, etag), "promotion", layout)
    except PreconditionFailed:  # the champion did not move: there is nothing to announce
        store.delete(announcement_key(record_key))
        raise
    return pointer


def _free_record_key(store: ObjectStore, layout: Layout, at: datetime, action: str) -> str:
    """The key a change's history record goes to: its time's, numbered after any record of
    that same time (a host whose clock is behind, or coarse), so the history keeps both,
    in order."""
    stamp = layout.record(at, action).removesuffix(f"{action}.json")  # …/<time>-
    taken = store.list(stamp) + store.list(announcement_key(stamp))
    return layout.record(at, action, max((records.order(k)[1] for k in taken), default=0) + 1)


def announcement_key(record_key: str) -> str:
    """Where a promotion's model-promoted event waits to be sent (written before the
    champion moves, removed once the event is sent), by its history record's key."""
    base, _, name = record_key.rpartition("/history/")
    return f"{base}/announce/{name}"


def announced(store: ObjectStore, record_key: str) -> None:
    """The event of the promotion recorded at ``record_key`` is sent: it waits no more."""
    store.delete(announcement_key(record_key))


def unannounced(store: ObjectStore, pointer: Champion | None) -> bool:
    """Whether the champion's promotion still waits for its event to be sent."""
    key = pointer.record_key if pointer is not None else None
    return key is not None and store.exists(announcement_key(key))


def record_refusal(
    store: ObjectStore,
    decision: dict[str, Any],
    decision_id: str | None = None,
    at: datetime | None = None,
    layout: Layout = CLASSIFIER,
) -> str:
    """Record a decision that promotes nothing; the key of its record (the same on a retry)."""
    current, _ = current_champion(store, layout)
    record = HistoryRecord(
        action="refuse",
        at=at or utc_now(),
        champion=current.alone() if current else None,
        decision=decision,
        decision_id=decision_id,
    )
    return records.write(store, record, layout)


def rollback(
    store: ObjectStore, layout: Layout = CLASSIFIER, expected: str | None = None
) -> Champion:
    """Restore the previous champion (checksum verified again) and record it in the history;
    with ``expected`` (training_run/model_name), only while that is the champion."""
    current, etag = current_champion(store, layout)
    if current is None:
        raise RegistryError(f"no champion in {store.uri}: nothing to roll back")
    if expected is not None and current.id != expected:
        raise RegistryError(
            f"the champion in {store.uri} is {current.id}, not {expected} (promoted or rolled "
            "back since): nothing was rolled back; look again (digitflow models list)"
        )
    previous = current.previous
    if previous is None:
        raise RegistryError(
            f"champion {current.id} has no previous champion to roll back to in {store.uri}; "
            "promote another candidate instead"
        )
    _verify(store, previous.model_key, previous.sha256, previous.onnx_key, previous.onnx_sha256)
    complete(store, current)
    now = utc_now()
    pointer = previous.model_copy(
        update={
            "promoted_at": now,
            "action": "rollback",
            "reason": f"rollback from {current.id}",
            "decision": None,
            "decision_id": None,
            "record_key": _free_record_key(store, layout, now, "rollback"),
        }
    )
    _move(store, pointer, (current, etag), "rollback", layout)
    return pointer


def apply_decision(
    store: ObjectStore, decision: Decision, gate_round: GateRound, layout: Layout = CLASSIFIER
) -> Applied:
    """Promote the decision's winner, or record the refusal; the same outcome on a retry.

    A winner that is champion already (another round promoted it in the meantime) is
    reported as such, and nothing is recorded or changed.
    """
    current, _ = current_champion(store, layout)
    completed = current if complete(store, current) else None
    info = decision.model_dump(mode="json")
    run, name = decision.winner_training_run, decision.winner_model_name
    if not (decision.promoted and run and name):
        key = record_refusal(store, info, gate_round.id, gate_round.at, layout)
        return Applied(
            promoted=False, champion=current, reason=decision.reason, record=key,
            completed=completed,
        )  # fmt: skip
    if current is not None and current.id == decision.winner:
        return _already(current, decision, gate_round, completed)
    card = read_card(store, run, name, layout)
    try:
        pointer = promote(store, card, info, gate_round.champion_etag, gate_round.id, layout)
    except PreconditionFailed:
        # A round running at the same moment may have promoted this very winner.
        current, _ = current_champion(store, layout)
        if current is not None and current.id == decision.winner:
            return _already(current, decision, gate_round, completed)
        raise
    return Applied(promoted=True, champion=pointer, reason=decision.reason,
                   record=pointer.record_key, completed=completed)  # fmt: skip


def _already(
    current: Champion, decision: Decision, gate_round: GateRound, completed: Champion | None
) -> Applied:
    """The outcome when the decision's winner is champion already."""
    if current.decision_id == gate_round.id:  # an earlier try of this round promoted it
        return Applied(promoted=True, champion=current, reason=decision.reason,
                       record=current.record_key)  # fmt: skip
    since = f"{current.promoted_at:%Y-%m-%d %H:%M:%S} UTC"
    reason = f"{current.id} is already the champion (since {since}); nothing changed"
    return Applied(promoted=False, champion=current, reason=reason, record=None,
                   completed=completed)  # fmt: skip
