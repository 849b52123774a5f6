"""Larger CNN: two conv/pool stages (30 5×5, 15 3×3), Dropout 0.2, Dense 128 → 50 → 10."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def build() -> keras.Model:
    """The brief's larger CNN (59,933 parameters)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(30, (5, 5), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Conv2D(15, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(0.2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(50, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="larger_cnn",
    )
