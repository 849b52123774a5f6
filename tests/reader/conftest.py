"""Fixtures for the line reader's tests: MNIST digits to write strings with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitflow.reader.synth import Digits
from digitflow.samples import load_mnist


@pytest.fixture(scope="session")
def digits(mnist_dir: Path) -> Digits:
    """The first 2,000 MNIST test digits, for writing generated strings."""
    mnist = load_mnist(mnist_dir)
    return Digits(mnist.images[:2000], mnist.labels[:2000])


def paper_with_bars(
    width: int = 200, height: int = 50, bars: tuple[int, ...] = (40, 120)
) -> np.ndarray:
    """Light paper with dark vertical bars (strokes) 3 pixels wide at ``bars``, rows 10-40."""
    grey = np.full((height, width), 220, np.uint8)
    for x in bars:
        grey[10:40, x : x + 3] = 30
    return grey
