"""Batched inference over normalised digits, with the model loaded once per process."""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from digitflow.candidates import read_card
from digitflow.errors import ModelError
from digitflow.model_files import load_model
from digitflow.pointer import current_champion
from digitflow.storage import ObjectStore, open_store
from digitflow.training import to_inputs

CHUNK = 2048
_LOADING = threading.Lock()


class ModelRef(BaseModel):
    """Which model scores: small enough to pass between tasks."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    store_uri: str
    model_key: str
    sha256: str
    version: str  # shown in every result row: "<training_run>/<model>@<sha256[:12]>"
    champion: bool = False  # the champion, rather than a candidate named by the user


def resolve_model(store: ObjectStore, model: str | None = None) -> ModelRef:
    """The champion, or the candidate ``training_run/model_name``, as a ModelRef."""
    if model:
        run, _, name = model.partition("/")
        if not run or not name or "/" in name:
            raise ModelError(f"model {model!r}: expected training_run/model_name")
        card = read_card(store, run, name)
        key, sha256, model_id = card.model_key, card.sha256, card.id
    else:
        champion, _ = current_champion(store)
        if champion is None:
            raise ModelError(
                f"no champion model in {store.uri}: run `digitflow retrain` first "
                "(or name a candidate with --model training_run/model_name)"
            )
        key, sha256, model_id = champion.model_key, champion.sha256, champion.id
    return ModelRef(
        store_uri=store.uri,
        model_key=key,
        sha256=sha256,
        version=f"{model_id}@{sha256[:12]}",
        champion=not model,
    )


class Scorer:
    """A loaded model and a fast forward pass (no per-call `predict` set-up)."""

    def __init__(self, model: Any, version: str) -> None:
        self.model = model
        self.version = version

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, 10) for uint8 digits (N, 28, 28), in large chunks."""
        import keras

        out = np.zeros((len(digits), 10), np.float32)
        for start in range(0, len(digits), CHUNK):
            batch = to_inputs(digits[start : start + CHUNK])
            out[start : start + len(batch)] = keras.ops.convert_to_numpy(
                self.model(batch, training=False)
            )
        return out


@functools.lru_cache(maxsize=2)
def _cached_scorer(store_uri: str, model_key: str, sha256: str, version: str) -> Scorer:
    return Scorer(load_model(open_store(store_uri), model_key, sha256), version)


def scorer_for(ref: ModelRef) -> Scorer:
    """The scorer of a model, loaded and checksum-verified once per process."""
    with _LOADING:  # shards running in threads must not each load the model
        return _cached_scorer(ref.store_uri, ref.model_key, ref.sha256, ref.version)


def top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(digit, confidence, runner-up digit, runner-up confidence) per row."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(probs))
    return (
        order[:, 0].astype(np.uint8),
        probs[rows, order[:, 0]],
        order[:, 1].astype(np.uint8),
        probs[rows, order[:, 1]],
    )
