"""Batched inference over normalised digits, with the model loaded once per process."""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from digitflow.candidates import Card, read_card
from digitflow.errors import ModelError
from digitflow.exported import Run, load_session
from digitflow.fitting import to_inputs
from digitflow.imaging.fields import LineImage
from digitflow.layout import LAYOUTS
from digitflow.model_files import load_model
from digitflow.models import ROLES, Role
from digitflow.pointer import Champion, current_champion
from digitflow.reader.decode import ReadLine
from digitflow.reader.infer import FIELD_SHEARS, forward, read_with
from digitflow.storage import ObjectStore, open_store

CHUNK = 2048
_LOADING = threading.Lock()


ReaderChoice = Literal["auto", "line", "classifier"]
Inference = Literal["auto", "keras"]


class ModelRef(BaseModel):
    """Which model scores: small enough to pass between tasks."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    store_uri: str
    model_key: str
    sha256: str
    version: str  # shown in every result row: "<training_run>/<model>@<sha256[:12]>"
    champion: bool = False  # the champion, rather than a candidate named by the user
    role: Role = "classifier"  # a digit classifier, or a line reader
    # With a line reader: the classifier that reads a field that is one lone digit (with
    # the reader), and weighs in on each digit of a page's line that stands alone.
    lone: ModelRef | None = None
    # Its ONNX export, where it has one and ONNX is not turned off: what scores then.
    onnx_key: str | None = None
    onnx_sha256: str | None = None

    @property
    def engine(self) -> Literal["onnx", "keras"]:
        """What runs the model: ONNX Runtime on its export, or Keras."""
        return "onnx" if self.onnx_key and self.onnx_sha256 else "keras"

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
    other = [r for r in ROLES if r not in roles and store.exists(LAYOUTS[r].card(run, name))]
    if other:
        choice_of = {role: choice for choice, role in _ROLE.items()}
        said = {"reader": "line reader", "classifier": "classifier"}
        raise ModelError(
            f"model {model} is a {said[other[0]]}, not a {said[roles[0]]}: score with "
            f"--reader {choice_of[other[0]]} (or auto) to read with it"
        )
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


def _ref(
    store: ObjectStore, found: Card | Champion, role: Role, onnx: bool, **fields: Any
) -> ModelRef:
    """The reference to a candidate (its card) or a champion (its pointer)."""
    exported = onnx and found.onnx_key is not None
    return ModelRef(
        store_uri=store.uri, model_key=found.model_key, sha256=found.sha256,
        version=f"{found.id}@{found.sha256[:12]}", role=role,
        onnx_key=found.onnx_key if exported else None,
        onnx_sha256=found.onnx_sha256 if exported else None, **fields,
    )  # fmt: skip


def resolve_model(
    store: ObjectStore,
    model: str | None = None,
    choice: ReaderChoice = "auto",
    inference: Inference = "auto",
) -> ModelRef:
    """The model that reads: the candidate ``training_run/model_name`` if named, else the
    champion of the reader chosen (auto: the line reader's, if there is one). A line reader
    gets the classifier champion, if there is one, for lines that are one lone digit and
    digits that stand alone.
    ``inference`` auto runs each model's ONNX export where it has one; keras never does."""
    onnx = inference == "auto"
    found: Card | Champion
    if model:
        found, role = _named(store, model, choice)
    else:
        found, role = _champion(store, choice)
    lone = None
    if role == "reader":
        classifier, _ = current_champion(store, LAYOUTS["classifier"])
        if classifier is not None:
            lone = _ref(store, classifier, "classifier", onnx, champion=True)
    return _ref(store, found, role, onnx, champion=not model, lone=lone)


_ROLE: dict[str, Role] = {"line": "reader", "classifier": "classifier"}


class Scorer:
    """A model's forward pass, loaded once (ONNX Runtime on its export, or Keras): digits
    for a classifier, lines for a line reader."""

    def __init__(self, run: Run, version: str, engine: Literal["onnx", "keras"]) -> None:
        self.run = run  # float32 inputs to probabilities (classifier) or logits (reader)
        self.version = version
        self.engine = engine

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, 10) for uint8 digits (N, 28, 28), in large chunks."""
        out = np.zeros((len(digits), 10), np.float32)
        for start in range(0, len(digits), CHUNK):
            batch = to_inputs(digits[start : start + CHUNK])
            out[start : start + len(batch)] = self.run(batch)
        return out

    def read_lines(self, lines: list[LineImage]) -> list[ReadLine]:
        """Each line read whole by a line reader, batched by width; fields slanted too."""
        reads: dict[int, ReadLine] = {}
        for is_field, shears in ((False, ()), (True, FIELD_SHEARS)):
            some = [k for k, line in enumerate(lines) if line.field == is_field]
            read = read_with(self.run, [lines[k].inputs() for k in some], shears=shears)
            reads.update(zip(some, read, strict=True))
        return [reads[k] for k in range(len(lines))]


def _keras_run(model: Any, role: Role) -> Run:
    """A Keras model's forward pass as a function of numpy arrays."""
    import keras

    call = forward(model) if role == "reader" else functools.partial(model, training=False)

    def run(x: np.ndarray) -> np.ndarray:
        _ = model  # held here: ``forward`` holds the model only weakly
        return keras.ops.convert_to_numpy(call(x))

    return run


@functools.lru_cache(maxsize=4)
def _cached_scorer(ref: ModelRef) -> Scorer:
    store = open_store(ref.store_uri)
    if ref.onnx_key is not None and ref.onnx_sha256 is not None:
        return Scorer(load_session(store, ref.onnx_key, ref.onnx_sha256), ref.version, "onnx")
    model = load_model(store, ref.model_key, ref.sha256)
    return Scorer(_keras_run(model, ref.role), ref.version, "keras")


def scorer_for(ref: ModelRef) -> Scorer:
    """The scorer of a model, loaded and checksum-verified once per process."""
    with _LOADING:  # shards running in threads must not each load the model
        return _cached_scorer(ref.model_copy(update={"lone": None}))


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
