"""The model registry in the object store: candidate cards, the champion pointer, history.

``models/champion.json`` names the serving model. It changes only after the model it
names has been checked against its card's sha256, and only by a conditional write, so
two concurrent promotions cannot both win. ``models/history/`` is an append-only audit.
Each pointer keeps the one it replaced (``previous``), so rollback is one step.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from digitflow.candidates import (
    Card,
    RegistryError,
    candidate_key,
    list_candidates,
    load_model,
    parse_record,
    read_card,
    save_candidate,
    utc_now,
    verify_model,
)
from digitflow.errors import NotFoundError, PreconditionFailed
from digitflow.storage import ObjectStore

__all__ = [
    "CHAMPION_KEY",
    "HISTORY",
    "Card",
    "Champion",
    "RegistryError",
    "candidate_key",
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

CHAMPION_KEY = "models/champion.json"
HISTORY = "models/history"
# Keep the chain of previous pointers bounded; older ones remain in the history.
MAX_PREVIOUS = 10


class Champion(BaseModel):
    """The champion pointer: which model serves, and the pointer it replaced."""

    model_config = ConfigDict(protected_namespaces=())

    training_run: str
    model_name: str
    model_key: str
    sha256: str
    card_key: str
    dataset_version: str
    promoted_at: datetime
    action: Literal["promote", "rollback"] = "promote"
    reason: str = ""
    previous: Champion | None = None

    @property
    def id(self) -> str:
        """``training_run/model_name``."""
        return f"{self.training_run}/{self.model_name}"

    def summary(self) -> dict[str, Any]:
        """The pointer without its chain of previous ones, for history records and logs."""
        return self.model_dump(mode="json", exclude={"previous"})


def current_champion(store: ObjectStore) -> tuple[Champion | None, str | None]:
    """The champion pointer and its ETag (for a conditional update), or (None, None)."""
    try:
        data, etag = store.read_with_etag(CHAMPION_KEY)
    except NotFoundError:
        return None, None
    champion: Champion = parse_record(Champion, data, store.uri_of(CHAMPION_KEY))
    return champion, etag


def _trim(pointer: Champion | None, depth: int = MAX_PREVIOUS) -> Champion | None:
    """``pointer`` with its chain of previous pointers cut after ``depth`` links."""
    if pointer is None or depth == 0:
        return None
    return pointer.model_copy(update={"previous": _trim(pointer.previous, depth - 1)})


def _write_pointer(
    store: ObjectStore, pointer: Champion, expected_etag: str | None, what: str
) -> None:
    """Replace the champion pointer only if it is still the one read (ETag), or still absent."""
    data = pointer.model_dump_json(indent=2).encode()
    try:
        if expected_etag is None:
            store.write_bytes(CHAMPION_KEY, data, if_absent=True)
        else:
            store.write_bytes(CHAMPION_KEY, data, if_match=expected_etag)
    except PreconditionFailed as exc:
        raise PreconditionFailed(
            f"{what} of {pointer.id} lost a race: {store.uri_of(CHAMPION_KEY)} changed since "
            "it was read (another promotion or rollback won); nothing was changed — "
            "decide again against the new champion"
        ) from exc


def promote(
    store: ObjectStore, card: Card, decision_info: dict[str, Any], expected_etag: str | None
) -> Champion:
    """Make ``card``'s model champion: verify it, swap the pointer conditionally, log history."""
    verify_model(store, card.model_key, card.sha256)
    current, etag = current_champion(store)
    if etag != expected_etag:
        raise PreconditionFailed(
            f"promotion of {card.id} refused: {store.uri_of(CHAMPION_KEY)} changed since the "
            "decision was taken (another promotion or rollback); decide again"
        )
    pointer = Champion(
        training_run=card.training_run,
        model_name=card.model_name,
        model_key=card.model_key,
        sha256=card.sha256,
        card_key=card.key,
        dataset_version=card.dataset_version,
        promoted_at=utc_now(),
        reason=str(decision_info.get("reason", "")),
        previous=_trim(current),
    )
    _write_pointer(store, pointer, expected_etag, "promotion")
    logger.info("promoted %s to champion (replacing %s)", pointer.id, current and current.id)
    _append_history(
        store,
        "promote",
        {
            "champion": pointer.summary(),
            "replaced": current.summary() if current else None,
            "decision": decision_info,
        },
    )
    return pointer


def record_refusal(store: ObjectStore, decision_info: dict[str, Any]) -> str:
    """Append a history entry for a promotion the gate refused; returns its key."""
    current, _ = current_champion(store)
    return _append_history(
        store,
        "refuse",
        {"champion": current.summary() if current else None, "decision": decision_info},
    )


def rollback(store: ObjectStore) -> Champion:
    """Restore the previous champion (checksum verified again) and record it in the history."""
    current, etag = current_champion(store)
    if current is None:
        raise RegistryError(f"no champion in {store.uri}: nothing to roll back")
    previous = current.previous
    if previous is None:
        raise RegistryError(
            f"champion {current.id} has no previous champion to roll back to in {store.uri}; "
            "promote another candidate instead"
        )
    verify_model(store, previous.model_key, previous.sha256)
    pointer = previous.model_copy(
        update={
            "promoted_at": utc_now(),
            "action": "rollback",
            "reason": f"rollback from {current.id}",
        }
    )
    _write_pointer(store, pointer, etag, "rollback")
    logger.info("rolled back champion from %s to %s", current.id, pointer.id)
    _append_history(
        store, "rollback", {"champion": pointer.summary(), "replaced": current.summary()}
    )
    return pointer


def _history_stamp() -> str:
    return utc_now().strftime("%Y%m%dT%H%M%S.%fZ")


def _append_history(store: ObjectStore, action: str, record: dict[str, Any]) -> str:
    """Write one history record under a new key; a colliding key gets a numeric suffix."""
    stamp = _history_stamp()
    entry = {"action": action, "at": utc_now().isoformat(), **record}
    data = json.dumps(entry, indent=2, default=str).encode()
    for attempt in range(1, 100):
        suffix = "" if attempt == 1 else f"-{attempt}"
        key = f"{HISTORY}/{stamp}-{action}{suffix}.json"
        try:
            store.write_bytes(key, data, if_absent=True)
            return key
        except PreconditionFailed:
            continue
    raise RegistryError(f"cannot find a free history key for {stamp}-{action} in {store.uri}")


def _history_order(key: str) -> tuple[str, int]:
    """Sort key of a history object: its timestamp, then its collision suffix."""
    stem = key.rsplit("/", 1)[-1].removesuffix(".json")
    stamp, _, rest = stem.partition("-")
    tail = rest.rsplit("-", 1)
    return stamp, int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 1


def history(store: ObjectStore) -> list[dict[str, Any]]:
    """Every history record, oldest first, each with its ``key``."""
    keys = sorted((k for k in store.list(HISTORY + "/") if k.endswith(".json")), key=_history_order)
    return [{**json.loads(store.read_bytes(k)), "key": k} for k in keys]
