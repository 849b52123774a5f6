"""The champion pointer: which model serves, the decision that chose it, the one it replaced.

The pointer changes only by a conditional write (if absent, or if still the one read),
so two promotions or rollbacks racing each other cannot both win. It names the history
record its change is written to, so a change whose record is missing can be completed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from digitflow.candidates import parse_record
from digitflow.errors import NotFoundError, PreconditionFailed
from digitflow.layout import CLASSIFIER, Layout
from digitflow.storage import ObjectStore

# Keep the chain of previous pointers bounded; older ones remain in the history.
MAX_PREVIOUS = 10


class Champion(BaseModel):
    """The champion pointer: which model serves, why, and the pointer it replaced."""

    model_config = ConfigDict(protected_namespaces=())

    training_run: str
    model_name: str
    model_key: str
    sha256: str
    card_key: str
    dataset_version: str
    promoted_at: datetime
    onnx_key: str | None = None  # its ONNX export, where it has one (what scores)
    onnx_sha256: str | None = None
    action: Literal["promote", "rollback"] = "promote"
    reason: str = ""
    decision: dict[str, Any] | None = None  # the gate's decision that promoted it
    decision_id: str | None = None  # the same on every retry of that decision
    record_key: str | None = None  # the history record of this change
    previous: Champion | None = None

    @property
    def id(self) -> str:
        """``training_run/model_name``."""
        return f"{self.training_run}/{self.model_name}"

    def alone(self) -> Champion:
        """The pointer without its decision and its chain of previous ones."""
        return self.model_copy(update={"decision": None, "previous": None})

    def summary(self) -> dict[str, Any]:
        """The pointer alone, as JSON, for logs and summaries."""
        return self.model_dump(mode="json", exclude={"previous", "decision"})


def current_champion(
    store: ObjectStore, layout: Layout = CLASSIFIER
) -> tuple[Champion | None, str | None]:
    """The champion pointer and its ETag (for a conditional update), or (None, None)."""
    try:
        data, etag = store.read_with_etag(layout.champion)
    except NotFoundError:
        return None, None
    champion: Champion = parse_record(Champion, data, store.uri_of(layout.champion))
    return champion, etag


def trim(pointer: Champion | None, depth: int = MAX_PREVIOUS) -> Champion | None:
    """``pointer`` as a previous one: without its decision, its chain cut after ``depth``."""
    if pointer is None or depth == 0:
        return None
    return pointer.model_copy(
        update={"decision": None, "previous": trim(pointer.previous, depth - 1)}
    )


def write_pointer(
    store: ObjectStore, pointer: Champion, expected_etag: str | None, what: str, layout: Layout
) -> None:
    """Replace the champion pointer only if it is still the one read (ETag), or still absent."""
    data = pointer.model_dump_json(indent=2).encode()
    try:
        if expected_etag is None:
            store.write_bytes(layout.champion, data, if_absent=True)
        else:
            store.write_bytes(layout.champion, data, if_match=expected_etag)
    except PreconditionFailed as exc:
        raise PreconditionFailed(
            f"{what} of {pointer.id} lost a race: {store.uri_of(layout.champion)} changed "
            "since it was read (another promotion or rollback won); nothing was changed — "
            "decide again against the new champion"
        ) from exc
