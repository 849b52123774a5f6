"""Strided challenger: batch-norm stages that downsample with strided convs, dense head.

Conv 32 ×2 → Conv 32 stride 2 → Dropout 0.4 → Conv 64 ×2 → Conv 64 stride 2 → Dropout 0.4
→ Flatten 3136 → Dense 128 → Dropout 0.4 → Dense 10; every conv is 3×3, and BatchNorm and
ReLU follow every conv and the hidden dense layer. Learned downsampling in place of max
pooling, and dropout inside the trunk, set it apart from the other challengers: a fourth,
differently built ensemble member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """A challenger with strided convolutions (515,242 parameters)."""
    import keras

    from digitflow.models.blocks import BN_MOMENTUM, conv_bn

    inputs = keras.Input(shape=(28, 28, 1))
    x = inputs
    for stage, filters in enumerate((32, 64), start=1):
        x = conv_bn(x, filters, name=f"s{stage}c1")
        x = conv_bn(x, filters, name=f"s{stage}c2")
        x = conv_bn(x, filters, strides=2, name=f"s{stage}down")
        x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.4)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="challenger_strided")
