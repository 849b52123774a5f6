"""Baseline multilayer perceptron: Flatten 784 → Dense 784 relu → Dense 10 softmax."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """The brief's baseline MLP (623,290 parameters)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(784, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="baseline_mlp",
    )
