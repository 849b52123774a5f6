"""Model files in the object store: checked against a card's sha256 before any use.

A model is downloaded, its checksum compared with the one its card (or the champion
pointer) records, and only then deserialised, in Keras safe mode.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from digitflow.candidates import sha256_file
from digitflow.errors import ModelError, NotFoundError
from digitflow.storage import ObjectStore

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)


def fetch_verified(store: ObjectStore, model_key: str, sha256: str, path: Path) -> None:
    """Download ``model_key`` to ``path``; ModelError unless it exists and matches ``sha256``."""
    try:
        store.get_file(model_key, path)
    except NotFoundError as exc:
        raise ModelError(
            f"{store.uri_of(model_key)} does not exist: the candidate's upload is missing or "
            "was deleted; retrain it before promoting or loading it"
        ) from exc
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelError(
            f"{store.uri_of(model_key)}: sha256 {actual} does not match the card's {sha256} "
            "(tampered or truncated upload), refusing to load; retrain or re-upload the model"
        )


def verify_model(store: ObjectStore, model_key: str, sha256: str) -> None:
    """Raise ModelError unless the object at ``model_key`` exists and has checksum ``sha256``."""
    with tempfile.TemporaryDirectory(prefix="digitflow-verify-") as tmp:
        fetch_verified(store, model_key, sha256, Path(tmp) / "model.keras")


def load_model(store: ObjectStore, model_key: str, sha256: str) -> keras.Model:
    """Download a model, check its sha256 before deserialising it, then load it (safe mode)."""
    import keras

    with tempfile.TemporaryDirectory(prefix="digitflow-model-") as tmp:
        path = Path(tmp) / "model.keras"
        fetch_verified(store, model_key, sha256, path)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            raise ModelError(f"{store.uri_of(model_key)}: cannot load the model: {exc}") from exc
    logger.info("loaded %s (sha256 %s…)", store.uri_of(model_key), sha256[:12])
    return model
