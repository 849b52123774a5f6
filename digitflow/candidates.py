"""Candidates in the object store: their typed cards, the one writer, runs and listings.

A candidate is a model file and its card (``card.json``, written last, so a candidate
with a card is complete), under the keys its role's ``Layout`` gives. A card that
cannot be read hides only its own candidate: listings report it apart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, computed_field

from digitflow import __version__
from digitflow.errors import DigitflowError, NotFoundError, describe
from digitflow.layout import CLASSIFIER, ONNX, Layout
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)


class RegistryError(DigitflowError):
    """The registry cannot do what was asked (nothing to roll back to, unreadable record)."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Split(BaseModel):
    """How many examples of a split a model was measured on, and its error rate there."""

    size: int
    error: float


class Member(BaseModel):
    """One member of an ensemble candidate, as its card names it."""

    model_name: str
    model_key: str
    sha256: str
    val_error: float | None = None
    test_error: float | None = None


class CardDraft(BaseModel):
    """A candidate's card before its model is uploaded: what its maker knows of it."""

    model_config = ConfigDict(protected_namespaces=())

    training_run: str
    model_name: str
    role: Literal["classifier", "reader"] = "classifier"
    dataset_version: str
    validation: Split
    test: Split
    parameter_count: int
    wall_s: float
    device: str
    input: str
    params: dict[str, Any] = {}
    train_examples: int | None = None
    history_key: str | None = None
    members: list[Member] = []
    scores: dict[str, float] = {}  # other numbers of its role (a reader's digit accuracy)
    # A model fine-tuned on people's corrections: the corrections' dataset version, and
    # the champion it started from.
    corrections_version: str | None = None
    adapted_from: str | None = None


class Card(CardDraft):
    """``card.json``: the draft, and where the model lies, its checksum and when it came."""

    card_key: str
    model_key: str
    sha256: str
    bytes: int
    created_at: datetime
    # The model exported to ONNX (digitflow.exported), where it could be: what scores.
    onnx_key: str | None = None
    onnx_sha256: str | None = None
    code_version: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def val_error(self) -> float:
        """Error rate on the validation slice (selects)."""
        return self.validation.error

    @computed_field  # type: ignore[prop-decorator]
    @property
    def test_error(self) -> float:
        """Error rate on the test split (reported only)."""
        return self.test.error

    @property
    def id(self) -> str:
        """``training_run/model_name``."""
        return f"{self.training_run}/{self.model_name}"


class Unreadable(BaseModel):
    """A candidate whose card cannot be read, and why."""

    model: str
    key: str
    error: str


class Listing(BaseModel):
    """Candidates with readable cards, sorted by id, and those whose card is unreadable."""

    cards: list[Card]
    unreadable: list[Unreadable]


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"digitflow {__version__}"


def sha256_file(path: Path) -> str:
    """The sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_taken(store: ObjectStore, training_run: str, model_name: str, layout: Layout) -> None:
    """RegistryError if a training run already has a candidate of this name: a candidate
    is never replaced, for a champion, a rollback's target or an ensemble may be it."""
    card_key = layout.card(training_run, model_name)
    if store.exists(card_key):
        raise RegistryError(
            f"training run {training_run!r} already has a {model_name} candidate "
            f"({store.uri_of(card_key)}), and a candidate is never replaced: train under "
            "another run id (none given: a new timestamped one)"
        )


def save_candidate(
    store: ObjectStore,
    path: Path,
    draft: CardDraft,
    layout: Layout = CLASSIFIER,
    onnx: Path | None = None,
) -> Card:
    """Upload a saved model file (and its ONNX export, if any) as a candidate, then its card
    (written last). RegistryError, writing nothing, if the run has one of that name."""
    refuse_taken(store, draft.training_run, draft.model_name, layout)
    model_key = layout.model(draft.training_run, draft.model_name)
    store.put_file(model_key, path)
    onnx_key = None
    if onnx is not None:
        onnx_key = layout.candidate(draft.training_run, draft.model_name, ONNX)
        store.put_file(onnx_key, onnx)
    card = Card(
        **draft.model_dump(),
        card_key=layout.card(draft.training_run, draft.model_name),
        model_key=model_key,
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        created_at=utc_now(),
        code_version=code_version(),
        onnx_key=onnx_key,
        onnx_sha256=sha256_file(onnx) if onnx is not None else None,
    )
    store.write_bytes(card.card_key, card.model_dump_json(indent=2).encode())
    return card


def parse_record(model: type[BaseModel], data: bytes, where: str, what: str = "") -> Any:
    """Validate JSON ``data`` as ``model``; RegistryError naming ``where`` if it is not one."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        what = what or model.__name__.lower()
        raise RegistryError(f"{where} is not a valid {what}: {describe(exc)}") from exc


def read_card(
    store: ObjectStore, training_run: str, model_name: str, layout: Layout = CLASSIFIER
) -> Card:
    """The card of one candidate; NotFoundError naming the key if it does not exist."""
    key = layout.card(training_run, model_name)
    try:
        data = store.read_bytes(key)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no candidate card {store.uri_of(key)}: check the training run id and model "
            "name (`digitflow models list`), or train it first"
        ) from exc
    card: Card = parse_record(Card, data, store.uri_of(key))
    return card


def _listing(store: ObjectStore, keys: list[tuple[str, str]], layout: Layout) -> Listing:
    cards, unreadable = [], []
    for run, name in keys:
        try:
            cards.append(read_card(store, run, name, layout))
        except RegistryError as exc:
            logger.warning("%s", exc)
            key = store.uri_of(layout.card(run, name))
            unreadable.append(Unreadable(model=f"{run}/{name}", key=key, error=str(exc)))
    return Listing(cards=cards, unreadable=unreadable)


def _card_keys(store: ObjectStore, prefix: str, layout: Layout) -> list[tuple[str, str]]:
    return sorted(filter(None, (layout.card_of(key) for key in store.list(prefix))))


def list_candidates(store: ObjectStore, layout: Layout = CLASSIFIER) -> Listing:
    """Every complete candidate (one with a card), by training run and model name."""
    return _listing(store, _card_keys(store, layout.candidates + "/", layout), layout)


def run_candidates(store: ObjectStore, training_run: str, layout: Layout = CLASSIFIER) -> Listing:
    """The complete candidates of one training run; NotFoundError if it has none."""
    keys = _card_keys(store, layout.run(training_run), layout)
    if not keys:
        raise NotFoundError(
            f"training run {training_run!r} has no candidates in {store.uri}: check its id "
            "with `digitflow models list`, or train it first"
        )
    return _listing(store, keys, layout)


def training_runs(store: ObjectStore, layout: Layout = CLASSIFIER) -> list[str]:
    """Every training run with at least one complete candidate, oldest first."""
    return sorted({run for run, _ in _card_keys(store, layout.candidates + "/", layout)})


def latest_run(store: ObjectStore, layouts: tuple[Layout, ...] = (CLASSIFIER,)) -> str:
    """The newest training run with at least one complete candidate in these layouts: by
    the time its id was made, or for a run named otherwise (``nightly``) by the time one of
    its cards was written."""
    cards = {run: (layout, model) for layout in layouts
             for run, model in _card_keys(store, layout.candidates + "/", layout)}  # fmt: skip
    if not cards:
        raise NotFoundError(f"no trained candidates in {store.uri}; run `digitflow train` first")

    def made(run: str) -> str:
        if _STAMPED.match(run):
            return run[:16]
        layout, model = cards[run]
        return f"{read_card(store, run, model, layout).created_at:%Y%m%dT%H%M%SZ}"

    return max(cards, key=lambda run: (made(run), run))


# A training run id as ``train`` makes it: the time, then a random part.
_STAMPED = re.compile(r"^\d{8}T\d{6}Z-")


def run_roles(store: ObjectStore, training_run: str, roles: dict[str, Layout]) -> list[str]:
    """The roles (of ``roles``: name → layout) with candidates in a training run, in order;
    NotFoundError naming the run if none has any."""
    found = [name for name, layout in roles.items() if store.list(layout.run(training_run))]
    if not found:
        raise NotFoundError(
            f"training run {training_run!r} has no candidates in {store.uri}: check its id "
            "with `digitflow models list`, or train it first"
        )
    return found
