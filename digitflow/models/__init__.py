"""Model builders, registered by name in one explicit dict, each with its role.

A ``classifier`` builder returns an uncompiled ``keras.Model`` taking ``(28, 28, 1)`` float
inputs in [0, 1] and returning softmax probabilities over the ten digits. A ``reader``
builder returns one taking a line ``(32, W, 1)`` of any width and returning CTC logits per
step (``digitflow.models.line_reader``). Compiling and fitting live in
``digitflow.training`` and ``digitflow.reader.training``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from digitflow.errors import ModelError
from digitflow.models import (
    baseline_mlp,
    challenger_cnn,
    challenger_dense,
    challenger_small,
    challenger_strided,
    larger_cnn,
    line_reader,
    simple_cnn,
)

if TYPE_CHECKING:
    import keras

Builder = Callable[[], "keras.Model"]
Role = Literal["classifier", "reader"]
ROLES: tuple[Role, ...] = ("classifier", "reader")

REGISTRY: dict[str, Builder] = {
    "baseline_mlp": baseline_mlp.build,
    "simple_cnn": simple_cnn.build,
    "larger_cnn": larger_cnn.build,
    # Challengers: trained only when named (``--models`` or the ``best`` profile).
    "challenger_cnn": challenger_cnn.build,
    "challenger_dense": challenger_dense.build,
    "challenger_small": challenger_small.build,
    "challenger_strided": challenger_strided.build,
    # Reads a whole line of digits (the reader role).
    "line_reader": line_reader.build,
}
READERS: tuple[str, ...] = ("line_reader",)
SEED_MODELS: tuple[str, ...] = ("baseline_mlp", "simple_cnn", "larger_cnn")
CHALLENGERS: tuple[str, ...] = (
    "challenger_cnn",
    "challenger_dense",
    "challenger_small",
    "challenger_strided",
)
INPUT_SHAPE = (28, 28, 1)


def builder(name: str) -> Builder:
    """The builder registered as ``name``; a typo fails loudly with the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {name!r}; registered models: {known}") from None


def role_of(name: str) -> Role:
    """The role of a registered model: ``reader`` for a line reader, else ``classifier``."""
    builder(name)
    return "reader" if name in READERS else "classifier"


def build(name: str) -> keras.Model:
    """Build the (uncompiled) model registered as ``name``."""
    return builder(name)()
