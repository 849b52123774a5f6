"""Challenger with a dense head: the VGG-style batch-norm stages, then Flatten → Dense 256.

Conv 32 ×2 → MaxPool → Conv 64 ×2 → MaxPool → Flatten 3136 → Dense 256 ReLU → Dropout 0.4
→ Dense 10. Its head differs from ``challenger_cnn``'s global pooling,
which makes the two disagree on different digits: useful in an ensemble.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """A challenger with a dense head (871,210 parameters)."""
    import keras

    from digitflow.models.blocks import vgg_stages

    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Flatten()(vgg_stages(inputs))
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.4)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="challenger_dense")
