"""Small challenger: one 5×5 conv at full resolution, then the 64 / 128 batch-norm stages.

Conv 32 5×5 → MaxPool → Conv 64 ×2 → MaxPool → Conv 128 → GlobalAveragePool → Dropout 0.3
→ Dense 10 (BatchNorm and ReLU after every conv). The cheapest challenger to train;
a third, differently built ensemble member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """A small challenger (132,266 parameters)."""
    import keras

    from digitflow.models.blocks import conv_bn, vgg_stages

    inputs = keras.Input(shape=(28, 28, 1))
    x = conv_bn(vgg_stages(inputs, stem_kernel=5, first_convs=1), 128, name="s3c1")
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="challenger_small")
