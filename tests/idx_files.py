"""Builders of small, valid MNIST-format file sets that tests then break in specific ways."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX payload (magic 0x08 + ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_set(root: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> Path:
    """Write four gzipped IDX files of random digits into ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_gz(root / NAMES[split, "images"], idx_bytes(images))
        write_gz(root / NAMES[split, "labels"], idx_bytes(labels))
    return root


def write_gz(path: Path, payload: bytes) -> None:
    """Gzip ``payload`` into ``path`` deterministically (no timestamp)."""
    path.write_bytes(gzip.compress(payload, mtime=0))
