"""Decoding and validation of gzipped IDX files (the MNIST distribution format)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from digitflow.errors import SourceError

UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
CHUNK = 4 << 20  # decompressed bytes per step
HEADER_MAX = 4 + 4 * 255  # the longest IDX header: decompressed first, to learn the size
# Bytes decompressed past what the header declares before giving up: enough to count a
# few trailing bytes exactly (parse_idx reports them), too few to matter for memory.
SLACK = 1 << 16


def gunzip(data: bytes, name: str) -> bytearray:
    """Decompress a gzipped IDX file, naming ``name`` in any error.

    The IDX header says how many bytes follow it, so decompression stops soon after the
    output runs past them: a small file that inflates without end (a decompression bomb)
    costs little more memory than the file it claims to be.
    """
    if data[:2] != b"\x1f\x8b":
        raise SourceError(f"{name}: not a gzip file (it lacks the gzip signature 1f 8b)")
    out = bytearray()
    limit: int | None = None
    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data
    try:
        while True:
            room = HEADER_MAX if limit is None else min(CHUNK, limit + SLACK + 1 - len(out))
            chunk = member.decompress(pending, room)
            out += chunk
            pending = member.unconsumed_tail
            limit = _declared_size(out) if limit is None else limit
            if limit is not None and len(out) > limit + SLACK:
                if limit == 0:  # no IDX header: parse_idx says what is wrong with it
                    return out
                raise SourceError(
                    f"{name}: decompresses to more than the {limit:,} bytes its IDX header "
                    f"declares (stopped after {len(out):,}): a decompression bomb or "
                    "trailing data; refused"
                )
            if member.eof:
                # Gzip files may hold several members one after the other; zeros may pad them.
                pending = member.unused_data
                if not pending.strip(b"\0"):
                    return out
                member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif not pending and not chunk:
                raise SourceError(f"{name}: gzip stream ends early (file truncated)")
    except zlib.error as exc:
        raise SourceError(f"{name}: corrupted gzip stream: {exc}") from exc


def _declared_size(head: bytes | bytearray) -> int | None:
    """Header plus payload bytes an IDX file declares; None until its header has arrived,
    0 if it does not start like an unsigned-byte IDX file."""
    if len(head) < 4:
        return None
    if head[:3] != bytes([0, 0, UBYTE]):
        return 0
    header = 4 + 4 * head[3]
    if len(head) < header:
        return None
    dims = struct.unpack(f">{head[3]}I", head[4:header])
    return header + int(np.prod(dims, dtype=np.int64))


def parse_idx(raw: bytes | bytearray, name: str, ndim: int) -> np.ndarray:
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


def parse_images(raw: bytes | bytearray, name: str) -> np.ndarray:
    """Parse an images file: ``(n, 28, 28)`` uint8."""
    images = parse_idx(raw, name, ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise SourceError(f"{name}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if images.shape[0] == 0:
        raise SourceError(f"{name}: holds no images")
    return images


def parse_labels(raw: bytes | bytearray, name: str) -> np.ndarray:
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
