"""Model builders, registered by name in one explicit dict.

A builder returns an uncompiled ``keras.Model`` taking ``(28, 28, 1)`` float inputs in
[0, 1] and returning softmax probabilities over the ten digits. Compiling and fitting
live in ``digitflow.training``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from digitflow.errors import ModelError
from digitflow.models import (
    baseline_mlp,
    challenger_cnn,
    challenger_dense,
    challenger_small,
    challenger_strided,
    larger_cnn,
    simple_cnn,
)

if TYPE_CHECKING:
    import keras

Builder = Callable[[], "keras.Model"]

REGISTRY: dict[str, Builder] = {
    "baseline_mlp": baseline_mlp.build,
    "simple_cnn": simple_cnn.build,
    "larger_cnn": larger_cnn.build,
    # Challengers: trained only when named (``--models`` or the ``best`` profile).
    "challenger_cnn": challenger_cnn.build,
    "challenger_dense": challenger_dense.build,
    "challenger_small": challenger_small.build,
    "challenger_strided": challenger_strided.build,
}
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


def build(name: str) -> keras.Model:
    """Build the (uncompiled) model registered as ``name``."""
    return builder(name)()
