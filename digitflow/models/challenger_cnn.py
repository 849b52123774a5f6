"""Challenger CNN: VGG-style with batch norm, 32-32 / 64-64 / 128 filters, global pooling.

Conv 32 ×2 → MaxPool → Conv 64 ×2 → MaxPool → Conv 128 → GlobalAveragePool → Dropout 0.3
→ Dense 10; every conv is 3×3 with BatchNorm and ReLU. Meant to be trained with the
challenger recipe (augmentation, cosine learning-rate schedule, clean epochs:
``recipes.CHALLENGER``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """The main challenger (141,098 parameters)."""
    import keras

    from digitflow.models.blocks import conv_bn, vgg_stages

    inputs = keras.Input(shape=(28, 28, 1))
    x = conv_bn(vgg_stages(inputs), 128, name="s3c1")
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="challenger_cnn")
