"""Decoding and validation of gzipped IDX files (the MNIST distribution format)."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from digitflow.errors import SourceError

UBYTE = 0x08
IMAGE_SHAPE = (28, 28)


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress a whole gzip file, naming ``name`` in any error."""
    if data[:2] != b"\x1f\x8b":
        raise SourceError(f"{name}: not a gzip file (starts with {data[:4]!r})")
    try:
        return gzip.decompress(data)
    except EOFError as exc:
        raise SourceError(f"{name}: gzip stream ends early (file truncated)") from exc
    except (OSError, zlib.error) as exc:
        raise SourceError(f"{name}: corrupted gzip stream: {exc}") from exc


def parse_idx(raw: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX payload with ``ndim`` dimensions, zero-copy."""
    if len(raw) < 4:
        raise SourceError(f"{name}: {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE:
        magic = struct.unpack(">I", raw[:4])[0]
        raise SourceError(
            f"{name}: magic number 0x{magic:08x} is not an unsigned-byte IDX file "
            f"(expected 0x{0x0800 | ndim:08x})"
        )
    if raw[3] != ndim:
        raise SourceError(f"{name}: IDX file has {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SourceError(f"{name}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header
    if payload < expected:
        raise SourceError(
            f"{name}: truncated payload: header declares {dims} = {expected} bytes, "
            f"file holds {payload} (offset {len(raw)})"
        )
    if payload > expected:
        raise SourceError(
            f"{name}: {payload - expected} trailing bytes after the {expected}-byte "
            f"payload (from offset {header + expected})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def parse_images(raw: bytes, name: str) -> np.ndarray:
    """Parse an images file: ``(n, 28, 28)`` uint8."""
    images = parse_idx(raw, name, ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise SourceError(f"{name}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if images.shape[0] == 0:
        raise SourceError(f"{name}: holds no images")
    return images


def parse_labels(raw: bytes, name: str) -> np.ndarray:
    """Parse a labels file: ``(n,)`` uint8 digits 0-9."""
    labels = parse_idx(raw, name, ndim=1)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        first = int(bad[0])
        raise SourceError(
            f"{name}: label {labels[first]} at item {first} (offset {8 + first}) "
            f"is outside 0-9 ({bad.size} such labels)"
        )
    return labels


def check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    """Images and labels of one split must have the same count."""
    if len(images) != len(labels):
        raise SourceError(
            f"{images_name} holds {len(images)} images but {labels_name} holds {len(labels)} labels"
        )
