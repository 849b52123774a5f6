"""On-the-fly augmentation of MNIST-style digits, as Keras layers active only in training.

Small rotations, zooms and shifts with elastic distortion in one resampling, then stroke
thickening/thinning. Every layer is the identity at inference, and ``training.py`` wraps
a model in them only while fitting, so a saved candidate is the plain classifier and
loads anywhere without digitflow. The custom layers are registered serialisable all the
same, so a model that does contain them saves and loads in safe mode; ``keras.ops`` only.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

# Defaults chosen for 28×28 digits; see the docstrings for units.
ROTATION_DEGREES = 10.0
SHIFT_FRACTION = 0.08
ZOOM_FRACTION = 0.1
ELASTIC_PIXELS = 1.2
ELASTIC_GRID = 5
THICKEN = 0.6
THIN = 0.25


@keras.saving.register_keras_serializable(package="digitflow")
class RandomWarp(keras.layers.Layer):
    """Rotate, zoom, shift and elastically distort each image at random, in training only.

    One bilinear resampling does it all (chaining a layer per transform blurs the strokes
    and costs more). Rotation is uniform in ±``degrees``, zoom in 1 ± ``zoom``, shift in
    ± ``shift`` × the side. The elastic field (Simard et al. 2003) is drawn on a coarse
    ``grid`` × ``grid`` lattice with standard deviation ``elastic`` pixels and upsampled
    bilinearly: as smooth as a Gaussian-blurred field and far cheaper. Outside reads as 0.
    """

    def __init__(
        self,
        degrees: float = ROTATION_DEGREES,
        zoom: float = ZOOM_FRACTION,
        shift: float = SHIFT_FRACTION,
        elastic: float = ELASTIC_PIXELS,
        grid: int = ELASTIC_GRID,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.degrees, self.zoom, self.shift = degrees, zoom, shift
        self.elastic, self.grid, self.seed = elastic, grid, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The images, warped in training, unchanged otherwise."""
        if not training:
            return inputs
        height, width = inputs.shape[1], inputs.shape[2]
        rows, cols = self._affine(ops.shape(inputs)[0], height, width)
        coarse = keras.random.normal(
            (ops.shape(inputs)[0], self.grid, self.grid, 2),
            stddev=self.elastic,
            seed=self.generator,
        )
        field = ops.image.resize(coarse, (height, width), interpolation="bilinear")
        return bilinear_sample(inputs, rows + field[..., 0], cols + field[..., 1])

    def _affine(self, batch: Any, height: int, width: int) -> tuple[Any, Any]:
        """Source coordinates (B, H, W) of each output pixel under a random similarity."""

        def draw(bound: float) -> Any:
            return keras.random.uniform((batch, 1, 1), -bound, bound, seed=self.generator)

        angle = draw(self.degrees * math.pi / 180.0)
        scale = 1.0 + draw(self.zoom)
        cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
        y = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1)) - cy
        x = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width)) - cx
        cos, sin = scale * ops.cos(angle), scale * ops.sin(angle)
        rows = cy + cos * y - sin * x + draw(self.shift * height)
        cols = cx + sin * y + cos * x + draw(self.shift * width)
        return rows, cols

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {
            **super().get_config(),
            **{k: getattr(self, k) for k in ("degrees", "zoom", "shift", "elastic", "grid")},
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="digitflow")
class StrokeWidth(keras.layers.Layer):
    """Thicken or thin each digit's strokes by a random amount in training.

    Per image a factor t is drawn from [-thin, thicken]; the image is blended towards its
    3×3 grey dilation (max pooling) for t > 0 or its erosion (min pooling) for t < 0.
    """

    def __init__(
        self,
        thicken: float = THICKEN,
        thin: float = THIN,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.thicken = thicken
        self.thin = thin
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The images with strokes re-weighted in training, unchanged otherwise."""
        if not training:
            return inputs
        t = keras.random.uniform(
            (ops.shape(inputs)[0], 1, 1, 1), -self.thin, self.thicken, seed=self.generator
        )
        dilated = ops.max_pool(inputs, 3, strides=1, padding="same")
        eroded = -ops.max_pool(-inputs, 3, strides=1, padding="same")
        return inputs + ops.relu(t) * (dilated - inputs) + ops.relu(-t) * (eroded - inputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {
            **super().get_config(),
            "thicken": self.thicken,
            "thin": self.thin,
            "seed": self.seed,
        }


def bilinear_sample(images: Any, rows: Any, cols: Any) -> Any:
    """Images (B, H, W, C) read at fractional coordinates (B, H, W); 0 outside the image."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    flat = ops.reshape(images, (-1, height * width, channels))
    top, left = ops.floor(rows), ops.floor(cols)
    out = ops.zeros_like(images)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        r, c = top + dy, left + dx
        weight = (1.0 - ops.abs(rows - r)) * (1.0 - ops.abs(cols - c))
        inside = (r >= 0) & (r <= height - 1) & (c >= 0) & (c <= width - 1)
        index = ops.cast(ops.clip(r, 0, height - 1) * width + ops.clip(c, 0, width - 1), "int32")
        index = ops.reshape(index, (-1, height * width, 1))
        pixels = ops.take_along_axis(flat, ops.repeat(index, channels, axis=2), axis=1)
        weight = ops.where(inside, weight, 0.0)[..., None]
        out = out + weight * ops.reshape(pixels, ops.shape(images))
    return out


def augmentation(seed: int | None = None) -> keras.Sequential:
    """The training-time augmentation pipeline for (28, 28, 1) digits in [0, 1]."""
    other = None if seed is None else seed + 1
    return keras.Sequential([RandomWarp(seed=seed), StrokeWidth(seed=other)], name="augmentation")


def with_augmentation(model: keras.Model, seed: int | None = None) -> keras.Model:
    """``model`` behind the augmentation pipeline: fit this, save ``model`` itself."""
    inputs = keras.Input(shape=model.input_shape[1:])
    return keras.Model(inputs, model(augmentation(seed)(inputs)), name=f"{model.name}_augmented")
