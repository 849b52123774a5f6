"""Find the digits of many files at once: one reader process per core, kept for reuse.

Decoders run on untrusted files: in a reader process, a crash or an out-of-memory kill
ends the reader, not the scoring run. Processes are faster too: on 2 cores the score flow
ran 1.43x faster with readers than with the digits found in its shard threads
(benchmarks/score.py). The first reader starts on first use, the others as files find the
started ones busy, and they live as long as the scoring process, so a run pays their
start-up (about a second each, the first while the model loads) once.

Each reader has a pipe of its own and reads one file at a time, so a reader that dies
(killed for memory, or a decoder crash on a hostile file) takes only the file it was
reading with it. That file is read again on a new reader; a file that kills its reader
twice is quarantined with that reason and every other file is read. (A shared task queue,
as in ``ProcessPoolExecutor``, fails every queued file when one worker dies, and on
Python 3.11 its recovery can deadlock.)
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from digitflow.errors import SourceError, UnreadableNow
from digitflow.scoring import interrupt
from digitflow.scoring.extract import FileDigits, Reading, extract, quarantined
from digitflow.scoring.inputs import read_input
from digitflow.scoring.process import ReaderProcess, TimedOut, reading_here

logger = logging.getLogger(__name__)

READER_DIED = (
    "the reader process died each time it read this file (out of memory, or a decoder "
    "crash): check the file, or read it on a larger machine"
)


def reader_count(configured: int | None) -> int:
    """Reader processes to use: as configured (DIGITFLOW_READERS), else one per core; 1
    means none."""
    return configured or os.cpu_count() or 1


class _Readers:
    """Up to ``count`` readers, each driven by one thread that waits on its answers.

    One reader starts at once; another starts only when a file finds every started reader
    busy. A batch of one file (what users score most often) starts one process, not one a
    core: each start costs about a second of CPU, which a one-page command's other processes
    (Prefect's temporary server starting) need meanwhile.
    """

    def __init__(self, count: int) -> None:
        self._idle: queue.SimpleQueue[ReaderProcess] = queue.SimpleQueue()
        self._count = count
        from digitflow.settings import Settings  # here: the reader processes never need it

        self._deadline = Settings().file_deadline_s
        self._started = 1
        self._grow = threading.Lock()
        self._idle.put(ReaderProcess())
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="digitflow-reader")

    def submit(self, data: bytes, name: str, reading: Reading) -> Future[FileDigits]:
        return self._threads.submit(self._read, data, name, reading)

    def _take(self) -> ReaderProcess:
        """An idle reader, or a new one while fewer than ``count`` have started. (It never
        waits long: there are as many threads as readers may start.)"""
        try:
            reader = self._idle.get_nowait()
        except queue.Empty:
            with self._grow:
                if self._started < self._count:
                    self._started += 1
                    return ReaderProcess()
            reader = self._idle.get()
        if reader.process.exitcode is not None:  # stopped with the run that stopped at once
            reader.close()
            reader = ReaderProcess()
        return reader

    def _read(self, data: bytes, name: str, reading: Reading) -> FileDigits:
        reader = self._take()
        try:
            for attempt in ("reading it", "reading it again"):
                result = reader.read(data, name, reading, self._deadline)
                if isinstance(result, TimedOut):  # it would take as long again
                    reader.close()
                    reader = ReaderProcess()
                    logger.warning("reading %s took longer than %g s: stopped", name,
                                   self._deadline)  # fmt: skip
                    return quarantined(
                        name,
                        f"{name}: reading it took longer than {self._deadline:g} s "
                        "(DIGITFLOW_FILE_DEADLINE_S): stopped. A scan of digits takes seconds; "
                        "this may be a file made to stall readers (a PDF pattern repeated "
                        "millions of times), or raise the limit to read it",
                    )
                if result is not None:
                    return result
                if interrupt.stopping.is_set():  # a Ctrl+C reached it before it could ignore one
                    raise interrupt.ReadingStopped(f"{name}: not read, as the run was stopped")
                logger.warning("a reader process died %s: %s; starting a new one", attempt, name)
                reader.close()
                reader = ReaderProcess()
            return replace(
                quarantined(name, f"{name}: {READER_DIED}; the batch's next run reads it again",
                            retry=True),
                reader_died=True,
            )  # fmt: skip
        finally:
            self._idle.put(reader)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._grow:
            for _ in range(self._started):
                self._idle.get().close()


_LOCK = threading.Lock()
_POOL: _Readers | None = None


def _pool(count: int) -> _Readers | None:
    """The shared readers (``count`` of them), started on first use; None where files are
    read in-thread."""
    global _POOL
    # A daemonic process (a Dask worker) may not have children; it is one reader itself.
    if count <= 1 or mp.current_process().daemon:
        reading_here()
        return None
    with _LOCK:
        if _POOL is None:
            _POOL = _Readers(count)
        return _POOL


def start(configured: int | None = None) -> None:
    """Start the reader processes now (they load in the background) rather than on first use."""
    _pool(reader_count(configured))


def shutdown() -> None:
    """Stop the reader processes (they are started again when next needed)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def _read(input_root: str, name: str, follow_outside_links: bool) -> bytes | FileDigits:
    try:
        return read_input(input_root, name, follow_outside_links)
    except SourceError as exc:  # transient errors pass through: the shard is retried
        # A failure that may pass (a file gone for a moment, a broken link): the batch's
        # next run reads it again. One that cannot (a named pipe, a file too large) stays.
        return quarantined(name, str(exc), retry=isinstance(exc, UnreadableNow))


def _submit(
    name: str, data: bytes, readers: int, reading: Reading
) -> FileDigits | Future[FileDigits]:
    """Queue a file on the ``readers`` reader processes; with none, extract it here and now."""
    for _ in range(2):
        pool = _pool(readers)
        if pool is None:
            break
        try:
            return pool.submit(data, name, reading)
        except RuntimeError:  # shut down between _pool() and submit: take a fresh one
            continue
    return extract(data, name, reading)


# Bytes of files read and not yet extracted, in this process, over every shard's thread.
IN_FLIGHT_BYTES = 512 << 20


class Room:
    """A bound on the bytes of files held at once: a file waits to be read until the ones
    before it leave room (one alone always may), so shards of large scans do not each hold
    all their files in memory while the readers work through them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.most = 0  # the most held at once
        self._changed = threading.Condition()

    def take(self, size: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
            self.most = max(self.most, self.used)

    def give(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


ROOM = Room(IN_FLIGHT_BYTES)


def _held(room: Room, size: int, item: FileDigits | Future[FileDigits]) -> None:
    """Give ``size`` back to ``room`` once ``item`` is extracted."""
    if isinstance(item, Future):
        item.add_done_callback(lambda _: room.give(size))
    else:
        room.give(size)


def read_files(
    input_root: str, names: list[str], follow_outside_links: bool = False,
    configured: int | None = None, reading: Reading = Reading(),
    listed: Mapping[str, int] | None = None,
) -> list[FileDigits]:  # fmt: skip
    """Read and extract each named file under ``input_root``, in order, on the readers
    (``configured`` of them; None: one per core), as ``reading`` says.

    Reading a file (I/O, in this thread) overlaps with extracting the ones before it.
    Symbolic links that lead out of ``input_root`` are followed only when asked. A file
    whose bytes are not as many as ``listed`` says it had (a scan still being written) comes
    back ``unsettled``, not extracted.
    """
    readers = reader_count(configured)
    listed = listed or {}
    pending: list[FileDigits | Future[FileDigits]] = []
    read: list[tuple[int, str] | None] = []
    room = ROOM
    for name in names:
        known = listed.get(name, -1)  # -1: not known; 0: listed empty (a scan just begun)
        size = max(known, 0)  # an unknown size is taken once read
        room.take(size)
        try:
            data = _read(input_root, name, follow_outside_links)
        except BaseException:
            room.give(size)
            raise
        if isinstance(data, FileDigits):
            pending.append(data)
            read.append(None)
            room.give(size)
        elif known >= 0 and len(data) != known:
            pending.append(FileDigits(name, unsettled=True))
            read.append(None)
            room.give(size)
        else:
            if known < 0:
                room.take(size := len(data))
            try:
                item = _submit(name, data, readers, reading)  # a reader extracts it
            except BaseException:
                room.give(size)
                raise
            _held(room, size, item)
            pending.append(item)
            read.append((len(data), hashlib.sha256(data).hexdigest()))
        del data  # held by its reader's task alone, until extracted: not while the next waits
    files = [item if isinstance(item, FileDigits) else item.result() for item in pending]
    return [f if r is None else replace(f, size=r[0], sha256=r[1])
            for f, r in zip(files, read, strict=True)]  # fmt: skip
