"""MNIST ingestion: fetch, verify, decode and write a content-addressed dataset version."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel

from digitflow.data import dataset, idx, sources
from digitflow.data.dataset import Split
from digitflow.data.download import redact
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)

# The canonical file pair of each split: (images, labels).
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
VALIDATION_SIZE = 5_000
VALIDATION_SEED = 20_261_125


class DatasetRecord(BaseModel):
    """What an ingestion produced: small enough to pass between tasks."""

    version: str
    uri: str
    counts: dict[str, int]
    class_counts: dict[str, list[int]]
    checksums_verified: bool
    written: bool


def decode(files: dict[str, sources.SourceFile]) -> dict[str, Split]:
    """Decompress and validate all four files (in parallel: zlib releases the GIL)."""
    with ThreadPoolExecutor(len(files)) as pool:
        raw = dict(
            zip(
                files,
                pool.map(lambda f: idx.gunzip(f.data, f.location), files.values()),
                strict=True,
            )
        )
    splits = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images_where, labels_where = files[images_name].location, files[labels_name].location
        images = idx.parse_images(raw[images_name], images_where)
        labels = idx.parse_labels(raw[labels_name], labels_where)
        idx.check_pair(images, labels, images_where, labels_where)
        splits[split] = Split(images=images, labels=labels)
    return splits


def _class_counts(split: Split) -> list[int]:
    return [int(c) for c in np.bincount(split.labels, minlength=10)]


def _manifest(
    version: str,
    files: dict[str, sources.SourceFile],
    verified: bool,
    splits: dict[str, Split],
    parquet: dict[str, bytes],
    source: str | None,
) -> bytes:
    manifest = {
        "dataset": "mnist",
        "version": version,
        "format": dataset.FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "source": redact(source) if source else "public mirrors",
        "checksums_verified": verified,
        "files": {
            f.name: {"location": f.location, "bytes": len(f.data), "md5": f.md5, "sha256": f.sha256}
            for f in files.values()
        },
        "splits": {
            name: {
                "rows": len(split),
                "class_counts": _class_counts(split),
                "bytes": len(parquet[name]),
                "sha256": hashlib.sha256(parquet[name]).hexdigest(),
            }
            for name, split in splits.items()
        },
        "validation": {
            "from": "train",
            "size": VALIDATION_SIZE,
            "seed": VALIDATION_SEED,
            "stratified": True,
        },
    }
    return json.dumps(manifest, indent=2).encode()


def ingest(
    store: ObjectStore,
    source: str | None,
    *,
    accept_custom: bool = False,
    timeout_s: float = 60.0,
    deadline_s: float = 600.0,
) -> DatasetRecord:
    """Ingest MNIST from ``source`` into ``store``; idempotent for identical content."""
    files = sources.fetch(source, timeout_s, deadline_s)
    verified = sources.verify(files, accept_custom)
    splits = decode(files)
    version = dataset.content_version(splits)
    record = DatasetRecord(
        version=version,
        uri=store.uri_of(dataset.key(version, "manifest.json")),
        counts={name: len(split) for name, split in splits.items()},
        class_counts={name: _class_counts(split) for name, split in splits.items()},
        checksums_verified=verified,
        written=False,
    )
    if store.exists(dataset.key(version, "manifest.json")):
        damage = dataset.intact(store, version)
        if damage is None:
            logger.info("dataset version %s already in %s: nothing to write", version, store.uri)
            return record
        logger.warning("dataset version %s in %s is damaged (%s): writing it again",
                       version, store.uri, damage)  # fmt: skip
    with ThreadPoolExecutor(len(splits)) as pool:
        parquet = dict(zip(splits, pool.map(dataset.to_parquet, splits.values()), strict=True))
    for name, data in parquet.items():
        store.write_bytes(dataset.key(version, f"{name}.parquet"), data)
    # The manifest goes last: until it exists, the version is invisible to readers.
    manifest = _manifest(version, files, verified, splits, parquet, source)
    store.write_bytes(dataset.key(version, "manifest.json"), manifest)
    logger.info("wrote dataset version %s to %s", version, store.uri)
    return record.model_copy(update={"written": True})
