"""The MNIST dataset in the object store: content-addressed Parquet splits and a manifest.

Layout: ``datasets/mnist/<version>/{train,test}.parquet`` and ``manifest.json``. The
manifest is written last, so a version without one is invisible: an interrupted
ingestion never leaves a dataset that a reader could pick up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from digitflow.errors import NotFoundError, SourceError
from digitflow.storage import ObjectStore

PREFIX = "datasets/mnist"
SPLITS = ("train", "test")
IMAGE_BYTES = 28 * 28
FORMAT = "digitflow-mnist-parquet-v1"
SCHEMA = pa.schema(
    [
        pa.field("index", pa.int32(), nullable=False),
        pa.field("label", pa.uint8(), nullable=False),
        pa.field("image", pa.binary(IMAGE_BYTES), nullable=False),
    ]
)


@dataclass(frozen=True)
class Split:
    """One split in memory: ``images`` (n, 28, 28) uint8 and ``labels`` (n,) uint8."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def content_version(splits: dict[str, Split]) -> str:
    """A version id that depends only on the decoded content (same data, same id)."""
    digest = hashlib.sha256(FORMAT.encode())
    for name in SPLITS:
        split = splits[name]
        digest.update(f"|{name}|{len(split)}|".encode())
        digest.update(np.ascontiguousarray(split.labels).data)
        digest.update(np.ascontiguousarray(split.images).data)
    return digest.hexdigest()[:16]


def key(version: str, name: str) -> str:
    """Object key of a file of a dataset version."""
    return f"{PREFIX}/{version}/{name}"


def to_table(split: Split) -> pa.Table:
    """A split as an Arrow table of the dataset schema, without copying pixels."""
    n = len(split)
    images = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(IMAGE_BYTES), n, [None, pa.py_buffer(np.ascontiguousarray(split.images))]
    )
    return pa.Table.from_arrays(
        [pa.array(np.arange(n, dtype=np.int32)), pa.array(split.labels), images], schema=SCHEMA
    )


def to_parquet(split: Split) -> bytes:
    """Serialise a split as zstd Parquet bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(to_table(split), sink, compression="zstd", row_group_size=len(split) or 1)
    return sink.getvalue().to_pybytes()


def from_parquet(data: bytes, where: str) -> Split:
    """Read a split from Parquet bytes; pixels are a zero-copy view of Arrow memory."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{where}: not a readable Parquet file: {exc}") from exc
    if not table.schema.equals(SCHEMA):
        raise SourceError(f"{where}: schema {table.schema} is not the dataset schema {SCHEMA}")
    images = table.column("image").combine_chunks()
    n = len(images)
    start = images.offset * IMAGE_BYTES
    pixels = np.frombuffer(images.buffers()[1], dtype=np.uint8)[start : start + n * IMAGE_BYTES]
    labels = table.column("label").to_numpy()
    return Split(images=pixels.reshape(n, 28, 28), labels=labels)


def versions(store: ObjectStore) -> list[str]:
    """Dataset versions that are complete (their manifest exists)."""
    suffix = "/manifest.json"
    return sorted(
        k[len(PREFIX) + 1 : -len(suffix)]
        for k in store.list(PREFIX + "/")
        if k.endswith(suffix) and k.count("/") == 3
    )


def read_manifest(store: ObjectStore, version: str) -> dict:
    """The manifest of a complete dataset version."""
    try:
        data = store.read_bytes(key(version, "manifest.json"))
    except NotFoundError as exc:
        known = ", ".join(versions(store)) or "none"
        raise NotFoundError(
            f"dataset version {version!r} not found in {store.uri} (complete versions: "
            f"{known}); run `digitflow ingest` first"
        ) from exc
    where = store.uri_of(key(version, "manifest.json"))
    try:
        manifest = json.loads(data)
        for name in SPLITS:  # what readers take from it
            str(manifest["splits"][name]["sha256"])
        str(manifest["created_at"])
        if not all(type(manifest["validation"][k]) is int for k in ("size", "seed")):
            raise TypeError("its validation slice's size and seed must be whole numbers")
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, a field missing or not a map
        raise SourceError(
            f"{where}: not a readable dataset manifest ({type(exc).__name__}: {exc}); "
            f"ingest the source of version {version} again to write it anew, or delete "
            f"{store.uri_of(key(version, ''))} to drop that version"
        ) from exc
    return dict(manifest)


def intact(store: ObjectStore, version: str) -> str | None:
    """None if a dataset version is complete and every part matches its manifest, else
    what is wrong with it."""
    try:
        manifest = read_manifest(store, version)
        for name in SPLITS:
            _checked_part(store, version, name, manifest)
    except (NotFoundError, SourceError) as exc:
        return str(exc)
    return None


def _checked_part(store: ObjectStore, version: str, name: str, manifest: dict) -> bytes:
    """The bytes of one split's Parquet, checked against its manifest."""
    data = store.read_bytes(key(version, f"{name}.parquet"))
    if hashlib.sha256(data).hexdigest() != manifest["splits"][name]["sha256"]:
        raise SourceError(
            f"{store.uri_of(key(version, f'{name}.parquet'))}: checksum does not match the "
            f"manifest (corrupted?); ingest the source of version {version} again to write it "
            "anew"
        )
    return data


def latest(store: ObjectStore) -> str:
    """The most recently ingested complete dataset version."""
    found = versions(store)
    if not found:
        raise NotFoundError(f"no dataset in {store.uri}; run `digitflow ingest` first")
    return max(found, key=lambda v: (read_manifest(store, v)["created_at"], v))


def read_split(store: ObjectStore, version: str, name: str) -> Split:
    """Load one split of a complete dataset version, checking it against its manifest."""
    data = _checked_part(store, version, name, read_manifest(store, version))
    return from_parquet(data, store.uri_of(key(version, f"{name}.parquet")))


def validation_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A deterministic, stratified sample of ``size`` indices (sorted) out of ``labels``."""
    if not 0 < size < len(labels):
        raise ValueError(f"validation size {size} must be between 1 and {len(labels) - 1}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts * size / len(labels)).astype(int)
    # Hand the rounding remainder to the classes with the largest fractional parts.
    remainder = size - int(quotas.sum())
    order = np.argsort(-(counts * size / len(labels) - quotas), kind="stable")
    quotas[order[:remainder]] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(picked))
