"""Batched inference over normalised digits, with the model loaded once per process."""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from digitflow.candidates import Card, read_card
from digitflow.errors import ModelError
from digitflow.imaging.fields import LineImage
from digitflow.layout import LAYOUTS
from digitflow.model_files import load_model
from digitflow.models import ROLES, Role
from digitflow.pointer import Champion, current_champion
from digitflow.reader.decode import ReadLine
from digitflow.reader.infer import read_inputs
from digitflow.storage import ObjectStore, open_store
from digitflow.training import to_inputs

CHUNK = 2048
_LOADING = threading.Lock()


ReaderChoice = Literal["auto", "line", "classifier"]


class ModelRef(BaseModel):
    """Which model scores: small enough to pass between tasks."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    store_uri: str
    model_key: str
    sha256: str
    version: str  # shown in every result row: "<training_run>/<model>@<sha256[:12]>"
    champion: bool = False  # the champion, rather than a candidate named by the user
    role: Role = "classifier"  # a digit classifier, or a line reader
    # With a line reader: the classifier that reads a line that is one lone digit.
    lone: ModelRef | None = None

    @property
    def reader(self) -> Literal["classifier", "line"]:
        """How files are read for this model: cut into digits, or in lines."""
        return "line" if self.role == "reader" else "classifier"

    @property
    def reading(self) -> str:
        """The models that read, as one string: the model's version (and its lone digits')."""
        return self.version if self.lone is None else f"{self.version}+{self.lone.version}"

    def models(self) -> list[ModelRef]:
        """Every model that reads: this one, and the one for lone digits if any."""
        return [self] if self.lone is None else [self, self.lone]


def _named(store: ObjectStore, model: str, choice: ReaderChoice) -> tuple[Card, Role]:
    """The candidate ``training_run/model_name``, in whichever role's layout has it."""
    run, _, name = model.partition("/")
    if not run or not name or "/" in name:
        raise ModelError(f"model {model!r}: expected training_run/model_name")
    roles: list[Role] = [r for r in ROLES if choice == "auto" or r == _ROLE[choice]]
    for role in roles:
        if store.exists(LAYOUTS[role].card(run, name)):
            return read_card(store, run, name, LAYOUTS[role]), role
    return read_card(store, run, name, LAYOUTS[roles[0]]), roles[0]  # says it is missing


def _champion(store: ObjectStore, choice: ReaderChoice) -> tuple[Champion, Role]:
    """The champion that reads: the line reader's unless only the classifier's exists (auto)."""
    order: tuple[Role, ...] = ("reader", "classifier")
    for role in order:
        if choice in ("auto", "line" if role == "reader" else "classifier"):
            champion, _ = current_champion(store, LAYOUTS[role])
            if champion is not None:
                return champion, role
    if choice == "line":
        raise ModelError(
            f"no line reader champion in {store.uri}: train and promote one "
            "(`digitflow retrain`), or score with --reader classifier"
        )
    raise ModelError(
        f"no champion model in {store.uri}: run `digitflow retrain` first "
        "(or name a candidate with --model training_run/model_name)"
    )


def resolve_model(
    store: ObjectStore, model: str | None = None, choice: ReaderChoice = "auto"
) -> ModelRef:
    """The model that reads: the candidate ``training_run/model_name`` if named, else the
    champion of the reader chosen (auto: the line reader's, if there is one). A line reader
    gets the classifier champion, if there is one, for lines that are one lone digit."""
    if model:
        card, role = _named(store, model, choice)
        key, sha256, model_id = card.model_key, card.sha256, card.id
    else:
        champion, role = _champion(store, choice)
        key, sha256, model_id = champion.model_key, champion.sha256, champion.id
    lone = None
    if role == "reader":
        classifier, _ = current_champion(store, LAYOUTS["classifier"])
        if classifier is not None:
            lone = ModelRef(
                store_uri=store.uri, model_key=classifier.model_key, sha256=classifier.sha256,
                version=f"{classifier.id}@{classifier.sha256[:12]}", champion=True,
            )  # fmt: skip
    return ModelRef(
        store_uri=store.uri, model_key=key, sha256=sha256, version=f"{model_id}@{sha256[:12]}",
        champion=not model, role=role, lone=lone,
    )  # fmt: skip


_ROLE: dict[str, Role] = {"line": "reader", "classifier": "classifier"}


class Scorer:
    """A loaded model and a fast forward pass (no per-call `predict` set-up): digits for a
    classifier, lines for a line reader."""

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

    def read_lines(self, lines: list[LineImage]) -> list[ReadLine]:
        """Each line read whole by a line reader, batched by width."""
        return read_inputs(self.model, [line.inputs() for line in lines])


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
