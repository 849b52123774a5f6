"""IDX decoding on small synthetic payloads."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pytest

from digitflow.data import idx
from digitflow.errors import SourceError
from tests.idx_files import idx_bytes


def test_images_parse_zero_copy_with_shape() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28)
    raw = idx_bytes(images)
    parsed = idx.parse_images(raw, "imgs")
    assert parsed.shape == (2, 28, 28)
    np.testing.assert_array_equal(parsed, images)
    assert not parsed.flags.owndata  # a view of the decompressed bytes, not a copy


def test_labels_parse() -> None:
    labels = np.array([0, 9, 3], dtype=np.uint8)
    np.testing.assert_array_equal(idx.parse_labels(idx_bytes(labels), "lbl"), labels)


def test_gunzip_round_trip_and_errors() -> None:
    assert idx.gunzip(gzip.compress(b"abc"), "f.gz") == b"abc"
    with pytest.raises(SourceError, match=r"f\.gz: not a gzip file"):
        idx.gunzip(b"hello", "f.gz")
    with pytest.raises(SourceError, match=r"f\.gz: gzip stream ends early"):
        idx.gunzip(gzip.compress(b"x" * 1000)[:-12], "f.gz")


def test_gunzip_reads_every_member_and_counts_trailing_bytes() -> None:
    raw = idx_bytes(np.arange(30, dtype=np.uint8) % 10)
    assert idx.gunzip(gzip.compress(raw[:9]) + gzip.compress(raw[9:]) + b"\0" * 8, "f") == raw
    with pytest.raises(SourceError, match="f: 5 trailing bytes"):
        idx.parse_labels(idx.gunzip(gzip.compress(raw + b"extra"), "f"), "f")


def test_gunzip_stops_soon_after_the_size_the_header_declares() -> None:
    raw = idx_bytes(np.zeros((30, 28, 28), np.uint8))
    bomb = gzip.compress(raw + bytes(64 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"f\.gz: decompresses to more than the 23,536 bytes"):
            idx.gunzip(bomb, "f.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(bomb) + (1 << 20)  # not the 64 MiB it inflates to


def test_header_shorter_than_dims_is_truncated() -> None:
    with pytest.raises(SourceError, match="truncated IDX header"):
        idx.parse_idx(bytes([0, 0, 8, 3, 0, 0]), "f", ndim=3)


def test_empty_images_file_is_refused() -> None:
    with pytest.raises(SourceError, match="holds no images"):
        idx.parse_images(idx_bytes(np.zeros((0, 28, 28), np.uint8)), "f")
