"""The promotion history: an append-only audit of every decision and every pointer change.

Each record is one object, ``<history>/<utc-timestamp>-<action>.json``, never rewritten.
A record carries the id of the decision it comes from, so that writing it again (a retry)
finds it written instead of writing a second one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from digitflow.candidates import RegistryError, parse_record
from digitflow.errors import PreconditionFailed
from digitflow.layout import CLASSIFIER, Layout
from digitflow.pointer import Champion
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 100


class HistoryRecord(BaseModel):
    """One record: a promotion, a refused decision or a rollback, with its numbers."""

    model_config = ConfigDict(protected_namespaces=())

    action: Literal["promote", "refuse", "rollback"]
    at: datetime
    champion: Champion | None = None  # the champion after this record (a refusal: kept)
    replaced: Champion | None = None
    decision: dict[str, Any] | None = None
    decision_id: str | None = None
    key: str = ""  # where it lies; filled in when read

    def concerns(self, model_id: str) -> bool:
        """Whether this record names ``model_id`` (``run/model``) as champion, replaced
        champion, winner or a candidate of its decision."""
        named = {p.id for p in (self.champion, self.replaced) if p is not None}
        if self.decision:
            named.add(str(self.decision.get("winner")))
            named |= {str(row.get("id")) for row in self.decision.get("rows") or []}
        return model_id in named


def _data(record: HistoryRecord) -> bytes:
    alone = {"previous", "decision"}
    exclude: Any = {"key": True, "champion": alone, "replaced": alone}
    return record.model_dump_json(indent=2, exclude=exclude).encode()


def write(store: ObjectStore, record: HistoryRecord, layout: Layout = CLASSIFIER) -> str:
    """Write ``record`` under a new key at its time; the key it lies under.

    If a record of the same decision already lies there (a retry), that one is kept.
    """
    for attempt in range(1, MAX_ATTEMPTS):
        key = layout.record(record.at, record.action, attempt)
        try:
            store.write_bytes(key, _data(record), if_absent=True)
            return key
        except PreconditionFailed:
            there = _read(store, key)
            if record.decision_id is not None and there.decision_id == record.decision_id:
                return key
    raise RegistryError(f"cannot find a free history key for {key} in {store.uri}")


def write_at(store: ObjectStore, key: str, record: HistoryRecord) -> bool:
    """Write ``record`` at exactly ``key`` unless something is there; whether it wrote."""
    try:
        store.write_bytes(key, _data(record), if_absent=True)
        return True
    except PreconditionFailed:
        return False


def order(key: str) -> tuple[str, int]:
    """Sort key of a history object: its timestamp, then its collision suffix."""
    stem = key.rsplit("/", 1)[-1].removesuffix(".json")
    stamp, _, rest = stem.partition("-")
    tail = rest.rsplit("-", 1)
    return stamp, int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 1


def _read(store: ObjectStore, key: str) -> HistoryRecord:
    data = store.read_bytes(key)
    record: HistoryRecord = parse_record(HistoryRecord, data, store.uri_of(key), "history record")
    return record.model_copy(update={"key": key})


def history(store: ObjectStore, layout: Layout = CLASSIFIER) -> list[HistoryRecord]:
    """Every history record, oldest first; RegistryError naming the first unreadable one."""
    keys = [k for k in store.list(layout.history + "/") if k.endswith(".json")]
    return [_read(store, key) for key in sorted(keys, key=order)]
