"""Candidates in the object store: their cards, checksum verification and safe loading.

A candidate is ``models/candidates/<training_run>/<model_name>/``: ``model.keras`` and
``card.json`` (written last, so a candidate with a card is complete). A model file is
checked against the sha256 on its card before it is deserialised or promoted.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from digitflow.errors import DigitflowError, ModelError, NotFoundError
from digitflow.storage import ObjectStore

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

CANDIDATES = "models/candidates"


class RegistryError(DigitflowError):
    """The registry cannot do what was asked (nothing to roll back to, unreadable record)."""


def candidate_key(training_run: str, model_name: str, name: str) -> str:
    """Key of a candidate's file: ``models/candidates/<run>/<model>/<name>``."""
    return f"{CANDIDATES}/{training_run}/{model_name}/{name}"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Card(BaseModel):
    """A candidate's card.json: what it is, where it lies, its checksum and numbers."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    training_run: str
    model_name: str
    model_key: str
    sha256: str
    bytes: int
    dataset_version: str
    created_at: datetime
    metrics: dict[str, Any] = {}

    @property
    def id(self) -> str:
        """``training_run/model_name``."""
        return f"{self.training_run}/{self.model_name}"

    @property
    def key(self) -> str:
        """Key of this card in the store."""
        return candidate_key(self.training_run, self.model_name, "card.json")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_verified(store: ObjectStore, model_key: str, sha256: str, path: Path) -> None:
    """Download ``model_key`` to ``path``; ModelError unless it exists and matches ``sha256``."""
    try:
        store.get_file(model_key, path)
    except NotFoundError as exc:
        raise ModelError(
            f"{store.uri_of(model_key)} does not exist: the candidate's upload is missing or "
            "was deleted; retrain it before promoting or loading it"
        ) from exc
    actual = _sha256_file(path)
    if actual != sha256:
        raise ModelError(
            f"{store.uri_of(model_key)}: sha256 {actual} does not match the card's {sha256} "
            "(tampered or truncated upload), refusing to load; retrain or re-upload the model"
        )


def verify_model(store: ObjectStore, model_key: str, sha256: str) -> None:
    """Raise ModelError unless the object at ``model_key`` exists and has checksum ``sha256``."""
    with tempfile.TemporaryDirectory(prefix="digitflow-verify-") as tmp:
        _fetch_verified(store, model_key, sha256, Path(tmp) / "model.keras")


def load_model(store: ObjectStore, model_key: str, sha256: str) -> keras.Model:
    """Download a model, check its sha256 before deserialising it, then load it (safe mode)."""
    import keras

    with tempfile.TemporaryDirectory(prefix="digitflow-model-") as tmp:
        path = Path(tmp) / "model.keras"
        _fetch_verified(store, model_key, sha256, path)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            raise ModelError(f"{store.uri_of(model_key)}: cannot load the model: {exc}") from exc
    logger.info("loaded %s (sha256 %s…)", store.uri_of(model_key), sha256[:12])
    return model


def save_candidate(
    store: ObjectStore, path: Path, training_run: str, model_name: str, **fields: Any
) -> Card:
    """Upload a saved ``.keras`` file as a candidate, then its card (written last)."""
    model_key = candidate_key(training_run, model_name, "model.keras")
    store.put_file(model_key, path)
    fields.setdefault("created_at", utc_now())
    card = Card(
        training_run=training_run,
        model_name=model_name,
        model_key=model_key,
        sha256=_sha256_file(path),
        bytes=path.stat().st_size,
        **fields,
    )
    store.write_bytes(card.key, card.model_dump_json(indent=2).encode())
    return card


def parse_record(model: type[BaseModel], data: bytes, where: str) -> Any:
    """Validate JSON ``data`` as ``model``; RegistryError naming ``where`` if it is not one."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise RegistryError(f"{where} is not a valid {model.__name__.lower()}: {exc}") from exc


def read_card(store: ObjectStore, training_run: str, model_name: str) -> Card:
    """The card of one candidate; NotFoundError naming the key if it does not exist."""
    key = candidate_key(training_run, model_name, "card.json")
    try:
        data = store.read_bytes(key)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no candidate card {store.uri_of(key)}: check the training run id and model "
            "name (`digitflow models list`), or train it first"
        ) from exc
    card: Card = parse_record(Card, data, store.uri_of(key))
    return card


def list_candidates(store: ObjectStore) -> list[Card]:
    """Every complete candidate (one with a card), sorted by training run and model name."""
    keys = [
        k for k in store.list(CANDIDATES + "/") if k.endswith("/card.json") and k.count("/") == 4
    ]
    return [parse_record(Card, store.read_bytes(k), store.uri_of(k)) for k in keys]
