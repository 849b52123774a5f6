"""The line reader: a digit string from a line image of any width, read whole (CTC).

Input (32, W, 1) ink in [0, 1] bright on black (``digitflow.reader.field``); output
(W/4, 11) logits per step, class 0 the CTC blank and class d + 1 the digit d. A
convolutional stack sees each column in context (touching, overlapping and broken
digits included), a bidirectional GRU reads the columns in order, and CTC aligns the
steps with the digits, so a line never has to be cut into digits first.

A batch of lines is read by ``reading(model)``, so that each line reads as it would alone,
whatever else is in its batch (``digitflow.reader.field.reading_batch``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

CLASSES = 11  # the CTC blank (0) and the ten digits (1..10)
# The layers that ``reading`` takes the reader apart at.
_FEATURES, _CONTEXT, _LOGITS = "drop", "context", "logits"


def build(width: int | None = None, units: int = 96) -> keras.Model:
    """A CNN-BiGRU line reader for 32-pixel-high inputs of any width."""
    import keras

    from digitflow.models.blocks import conv_bn

    inputs = keras.Input(shape=(32, width, 1), name="line")
    x = conv_bn(inputs, 32, name="b1")
    x = keras.layers.MaxPooling2D((2, 2), name="p1")(x)  # 16 x W/2
    x = conv_bn(x, 64, name="b2")
    x = keras.layers.MaxPooling2D((2, 2), name="p2")(x)  # 8 x W/4
    x = conv_bn(x, 96, name="b3")
    x = conv_bn(x, 96, name="b4")
    x = keras.layers.MaxPooling2D((2, 1), name="p3")(x)  # 4 x W/4
    x = conv_bn(x, 128, name="b5")
    x = conv_bn(x, 128, name="b6")
    x = keras.layers.MaxPooling2D((2, 1), name="p4")(x)  # 2 x W/4
    x = keras.layers.Permute((2, 1, 3), name="columns")(x)  # W/4 x 2 x 128
    x = keras.layers.Reshape((-1, 2 * 128), name="steps")(x)
    x = keras.layers.Dense(128, activation="relu", name="project")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True), name="context")(
        x
    )
    outputs = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="line_reader")


def reading(model: keras.Model) -> keras.Model:
    """The reader as it reads a batch: its inputs' padding marked (``field.PADDING``) past
    each line's tail of paper, and each line read as if nothing came after that tail.

    Marked columns are paper to the convolutions, and the end of the line to the recurrent
    layer: its backward pass starts at each line's own end, not in the paper that pads
    the batch to its widest line. A model without the line reader's layers (another
    architecture) reads the marks as paper and nothing more.
    """
    import keras
    from keras import ops

    from digitflow.reader.field import HEIGHT, STRIDE

    line = keras.Input(shape=(HEIGHT, None, 1), name="line")
    paper = keras.layers.ReLU(name="paper")(line)
    names = {layer.name for layer in model.layers}
    if not {_FEATURES, _CONTEXT, _LOGITS} <= names:
        return keras.Model(line, model(paper), name=f"{model.name}_reading")
    # A step is the line's where its first column is not marked.
    steps = ops.greater_equal(line[:, 0, ::STRIDE, 0], 0.0)
    features = keras.Model(model.inputs, model.get_layer(_FEATURES).output)(paper)
    context = model.get_layer(_CONTEXT)(features, mask=steps)
    return keras.Model(line, model.get_layer(_LOGITS)(context), name=f"{model.name}_reading")
