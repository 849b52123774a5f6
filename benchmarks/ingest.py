"""Ingestion speed against its floor, in one run.

floor:   gzip-decompress the four MNIST files and np.frombuffer them (no validation, no write)
ingest:  digitflow's ingestion into a fresh local store (fetch, MD5, decode, validate,
         content hash, Parquet+zstd, atomic writes, manifest)
read:    the training split back to numpy from the store

Usage: python benchmarks/ingest.py [MNIST_DIR]   (default: $DIGITFLOW_MNIST_SOURCE)
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitflow.data import dataset
from digitflow.data.ingest import ingest
from digitflow.data.sources import FILES
from digitflow.storage import LocalStore

REPEATS = 5


def best_of(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def floor(root: Path) -> None:
    for name in FILES:
        raw = gzip.decompress((root / name).read_bytes())
        np.frombuffer(raw, dtype=np.uint8, offset=16 if "images" in name else 8)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["DIGITFLOW_MNIST_SOURCE"])
    floor_s = best_of(lambda: floor(root))
    with tempfile.TemporaryDirectory() as tmp:
        stores = iter(LocalStore(Path(tmp) / f"s{i}") for i in range(REPEATS + 1))
        ingest_s = best_of(lambda: ingest(next(stores), str(root)))
        store = LocalStore(Path(tmp) / "s-read")
        version = ingest(store, str(root)).version
        again_s = best_of(lambda: ingest(store, str(root)))
        read_s = best_of(lambda: dataset.read_split(store, version, "train"))
        size = sum(p.stat().st_size for p in store.root.rglob("*.parquet"))
    print(f"images ingested              70,000 ({size / 1e6:.1f} MB of Parquet)")
    print(f"floor (gunzip + frombuffer)  {floor_s:.3f} s")
    print(
        f"ingest into a fresh store    {ingest_s:.3f} s   ratio to floor {ingest_s / floor_s:.2f}x"
    )
    print(f"ingest again (no rewrite)    {again_s:.3f} s   ratio to floor {again_s / floor_s:.2f}x")
    print(f"read train split to numpy    {read_s:.3f} s   (60,000 x 28 x 28, zero-copy)")


if __name__ == "__main__":
    main()
