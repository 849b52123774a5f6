"""Layer blocks shared by the challenger builders (Keras 3 functional API)."""

from __future__ import annotations

from typing import Any

# Keras' default (0.99) leaves the inference-time statistics near their initial values for
# the first few hundred steps, so short runs score far worse than they train; 0.9 (PyTorch's
# default) settles within tens of steps and is as good over a full run.
BN_MOMENTUM = 0.9


def conv_bn(
    x: Any, filters: int, kernel: int = 3, strides: int = 1, name: str | None = None
) -> Any:
    """Conv (no bias: batch norm has one) → BatchNorm → ReLU, same padding."""
    import keras

    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        name=name and f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name and f"{name}_bn")(x)
    return keras.layers.ReLU(name=name and f"{name}_relu")(x)


def vgg_stages(x: Any, stem_kernel: int = 3, first_convs: int = 2) -> Any:
    """Two VGG stages on 28×28: 32 filters at 28×28, pool, 64 at 14×14, pool → 7×7×64."""
    import keras

    for k in range(first_convs):
        x = conv_bn(x, 32, stem_kernel if k == 0 else 3, name=f"s1c{k + 1}")
    x = keras.layers.MaxPooling2D(name="s1pool")(x)
    x = conv_bn(x, 64, name="s2c1")
    x = conv_bn(x, 64, name="s2c2")
    return keras.layers.MaxPooling2D(name="s2pool")(x)
