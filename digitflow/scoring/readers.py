"""Find the digits of many files at once: one reader process per core, kept for reuse.

Decoders run on untrusted files: in a reader process, a crash or an out-of-memory kill
ends the reader, not the scoring run. Processes are faster too: on 2 cores the score flow
ran 1.33x faster with readers than with the digits found in its shard threads
(benchmarks/score.py). The pool starts on first use and lives as long as the scoring
process, so a run pays its start-up (about a second, while the model loads) once.

A reader that dies (killed for memory, or a decoder crash on a hostile file) breaks the
pool and fails every file queued on it. The pool is replaced and those files are queued
again; a file that fails a second time is read in a process of its own, so a file that
kills its reader every time is quarantined with that reason and every other file is read.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from digitflow.errors import SourceError
from digitflow.scoring.extract import FileDigits, extract, quarantined
from digitflow.scoring.inputs import read_input
from digitflow.settings import Settings

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


def reader_count() -> int:
    """Reader processes to use: DIGITFLOW_READERS, else one per core; 1 means none."""
    return Settings().readers or os.cpu_count() or 1


def _start_reader() -> None:
    import cv2

    cv2.setNumThreads(1)  # one page per process already keeps every core busy


def _pool() -> ProcessPoolExecutor | None:
    """The shared pool, started on first use; None where files are read in-thread."""
    global _POOL
    count = reader_count()
    # A daemonic process (a Dask worker) may not have children; it is one reader itself.
    if count <= 1 or mp.current_process().daemon:
        return None
    with _LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(
                count, mp_context=mp.get_context("spawn"), initializer=_start_reader
            )
        return _POOL


def start() -> None:
    """Start the reader processes now (in the background) rather than on the first file."""
    pool = _pool()
    if pool is not None:
        for _ in range(reader_count()):
            pool.submit(os.getpid)


def _replace(broken: ProcessPoolExecutor) -> None:
    """Drop a broken pool, once, however many threads saw it break."""
    global _POOL
    with _LOCK:
        if _POOL is broken:
            _POOL = None
            broken.shutdown(wait=False, cancel_futures=True)
            logger.warning("a reader process died; starting new ones")


def shutdown() -> None:
    """Stop the reader processes (they are started again when next needed)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _read(input_root: str, name: str) -> bytes | FileDigits:
    try:
        return read_input(input_root, name)
    except SourceError as exc:  # transient errors pass through: the shard is retried
        return quarantined(name, str(exc))


def _alone(data: bytes, name: str) -> FileDigits:
    """Read one file in a process of its own: the retry of a file whose reader died."""
    with ProcessPoolExecutor(
        1, mp_context=mp.get_context("spawn"), initializer=_start_reader
    ) as single:
        try:
            return single.submit(extract, data, name).result()
        except BrokenProcessPool:
            return quarantined(
                name,
                f"{name}: the reader process died each time it read this file (out of memory, "
                "or a decoder crash): check the file, or read it on a larger machine",
            )


Queued = tuple[str, bytes, ProcessPoolExecutor | None, "Future[FileDigits] | None"]


def _submit(name: str, data: bytes) -> Queued:
    """Queue a file on the shared pool (replacing a pool found broken); no pool: in-thread."""
    for _ in range(2):
        pool = _pool()
        if pool is None:
            break
        try:
            return name, data, pool, pool.submit(extract, data, name)
        except BrokenProcessPool:
            _replace(pool)
        except RuntimeError:  # shut down between _pool() and submit: take a fresh one
            continue
    return name, data, None, None


def _outcome(pool: ProcessPoolExecutor, future: Future[FileDigits]) -> FileDigits | None:
    """The file's digits, or None when its reader died (the broken pool is replaced)."""
    try:
        return future.result()
    except BrokenProcessPool:
        _replace(pool)
        return None


def _collect(queued: Queued | FileDigits) -> FileDigits:
    if isinstance(queued, FileDigits):
        return queued
    name, data, pool, future = queued
    if pool is None or future is None:
        return extract(data, name)  # no reader processes here
    result = _outcome(pool, future)
    if result is None:  # most files of a broken pool were only queued behind the culprit
        _, _, pool, future = _submit(name, data)
        if pool is not None and future is not None:
            result = _outcome(pool, future)
    return result if result is not None else _alone(data, name)


def read_files(input_root: str, names: list[str]) -> list[FileDigits]:
    """Read and extract each named file under ``input_root``, in order, on the readers.

    Reading a file (I/O, in this thread) overlaps with extracting the ones before it.
    """
    queued: list[Queued | FileDigits] = []
    for name in names:
        data = _read(input_root, name)
        queued.append(data if isinstance(data, FileDigits) else _submit(name, data))
    return [_collect(item) for item in queued]
