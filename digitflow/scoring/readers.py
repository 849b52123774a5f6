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

import contextlib
import ctypes
import functools
import hashlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection, wait

from digitflow.errors import DigitflowError, ReaderStartError, SourceError, UnreadableNow
from digitflow.scoring.extract import FileDigits, Reading, extract, quarantined
from digitflow.scoring.inputs import read_input

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
READER_DIED = (
    "the reader process died each time it read this file (out of memory, or a decoder "
    "crash): check the file, or read it on a larger machine"
)


def reader_count(configured: int | None) -> int:
    """Reader processes to use: as configured (DIGITFLOW_READERS), else one per core; 1
    means none."""
    return configured or os.cpu_count() or 1


def _reuse_freed_memory() -> None:
    """Keep the memory of freed page-sized arrays in this process for the next page.

    A page allocates several arrays of 2-9 MB. By default glibc returns each to the system
    when it is freed, and the next page's arrays fault in freshly zeroed memory again:
    about 1,200 page faults a page. Kept, two readers read 10 % more 2-megapixel pages a
    second. Without glibc (``mallopt`` missing) nothing changes.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # the largest glibc allows
        mallopt(_M_TRIM_THRESHOLD, 128 << 20)


def _one_blas_thread() -> None:
    """Run numpy's BLAS and LAPACK on this process's own thread.

    OpenBLAS starts a thread a core in every process that calls it on a large array. A
    process that finds digits runs beside others that do too (a reader each core, or
    Dask's workers), and their threads only compete: a check amount's lighting fit
    (``np.linalg.lstsq`` on its paper pixels) took a third of the readers' time on 2
    cores, with the threads' own CPU besides.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _serve(conn: Connection) -> None:
    """A reader process: extract each file sent until told to stop or the parent is gone."""
    # Ctrl+C reaches the whole process group: stopping is the scoring process's to decide
    # (the files read meanwhile are committed or not by it); a reader ends with its pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    # Loaded now, while the scoring process still loads Prefect and the model: on the first
    # page it held up a one-page run by a quarter of a second (digitflow.imaging.blobs).
    import scipy.ndimage  # noqa: F401

    cv2.setNumThreads(1)  # one page per process already keeps every core busy
    _one_blas_thread()
    _reuse_freed_memory()
    conn.send(True)  # started: from now on, a death is the file's doing (or memory's)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the scoring process is gone
            return
        if message is None:
            return
        data, name, reading = message
        try:
            conn.send((True, extract(data, name, reading)))
        except Exception as exc:  # extract never raises: this is a result that cannot be sent
            conn.send((False, f"{name}: {type(exc).__name__} in the reader process: {exc}"))


@functools.cache  # once a process
def _reading_here() -> None:
    """This process finds digits itself (a Dask worker, or DIGITFLOW_READERS=1): it keeps
    the memory of freed pages as a reader process does. Dask's nanny starts its workers
    with glibc told to give freed memory back at once (MALLOC_TRIM_THRESHOLD_=65536), and a
    third of their CPU went to the kernel: `--dask local` on 366 pages on 2 cores spent 26 s
    of 95 there, and 6 s of 72 once they keep it (52 s → 41 s end to end). Its BLAS runs on
    one thread too, as a reader's does."""
    _one_blas_thread()
    _reuse_freed_memory()


class TimedOut:
    """A reader that took longer over a file than it may."""


class _Reader:
    """One reader process and its pipe."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child,), name="digitflow-reader", daemon=True
        )
        # Started with Ctrl+C blocked, which it inherits: one pressed while it imports (before
        # ``_serve`` ignores it) would end it with a KeyboardInterrupt traceback on the
        # terminal. Only this thread's mask: the scoring process still takes Ctrl+C.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self._started = False

    def _wait_started(self) -> bool:
        """Wait for the process to say it started; False if a signal killed it before.

        A process that exits by itself before then cannot start at all (an import error,
        or a script without the ``__main__`` guard that spawn needs): no file is to blame.
        """
        wait([self._conn, self.process.sentinel])
        try:
            self._started = self._conn.poll() and self._conn.recv() is True
        except (EOFError, OSError):
            self._started = False
        if self._started:
            return True
        self.process.join()
        code = self.process.exitcode
        # Killed (out of memory?), or reaped by another thread first: a death, not a start;
        # or stopped by a Ctrl+C while it started, before it could ignore one.
        if code is None or code < 0 or _stopping.is_set():
            return False
        raise ReaderStartError(
            f"a reader process exited with code {code} before reading any file. A script "
            'that runs the score flow needs an `if __name__ == "__main__":` guard (readers '
            "start with spawn); the reader's own error is printed above. DIGITFLOW_READERS=1 "
            "finds digits in the scoring threads instead"
        )

    def read(
        self, data: bytes, name: str, reading: Reading, deadline: float
    ) -> FileDigits | TimedOut | None:
        """The file's digits, None when the process died reading it, or TimedOut when it
        took longer than ``deadline`` seconds (the process is then stopped). A run stopped at
        once (a second Ctrl+C) stops the process too, and the file is left unread."""
        if not self._started and not self._wait_started():
            return None
        try:
            self._conn.send((data, name, reading))
            answered = self._wait_answer(deadline)
            if not answered:
                self.process.kill()
                self.process.join()
                if _halted.is_set():
                    raise ReadingStopped(f"{name}: not read, as the run was stopped at once")
                return TimedOut()
            if not self._conn.poll():  # the process ended without an answer
                return None
            ok, value = self._conn.recv()
        except (EOFError, OSError):  # it died before reading the file, or mid-answer
            return None
        if not ok:
            raise RuntimeError(value)
        result: FileDigits = value
        return result

    def _wait_answer(self, deadline: float) -> bool:
        """Wait for the process's answer (or its end): False once ``deadline`` seconds have
        passed, or as soon as the run is stopped at once."""
        end = time.monotonic() + deadline
        while not _halted.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if wait([self._conn, self.process.sentinel], timeout=min(left, _HALT_POLL_S)):
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already dead
            self._conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


class _Readers:
    """Up to ``count`` readers, each driven by one thread that waits on its answers.

    One reader starts at once; another starts only when a file finds every started reader
    busy. A batch of one file (what users score most often) starts one process, not one a
    core: each start costs about a second of CPU, which a one-page command's other processes
    (Prefect's temporary server starting) need meanwhile.
    """

    def __init__(self, count: int) -> None:
        self._idle: queue.SimpleQueue[_Reader] = queue.SimpleQueue()
        self._count = count
        from digitflow.settings import Settings  # here: the reader processes never need it

        self._deadline = Settings().file_deadline_s
        self._started = 1
        self._grow = threading.Lock()
        self._idle.put(_Reader())
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="digitflow-reader")

    def submit(self, data: bytes, name: str, reading: Reading) -> Future[FileDigits]:
        return self._threads.submit(self._read, data, name, reading)

    def _take(self) -> _Reader:
        """An idle reader, or a new one while fewer than ``count`` have started. (It never
        waits long: there are as many threads as readers may start.)"""
        try:
            reader = self._idle.get_nowait()
        except queue.Empty:
            with self._grow:
                if self._started < self._count:
                    self._started += 1
                    return _Reader()
            reader = self._idle.get()
        if reader.process.exitcode is not None:  # stopped with the run that stopped at once
            reader.close()
            reader = _Reader()
        return reader

    def _read(self, data: bytes, name: str, reading: Reading) -> FileDigits:
        reader = self._take()
        try:
            for attempt in ("reading it", "reading it again"):
                result = reader.read(data, name, reading, self._deadline)
                if isinstance(result, TimedOut):  # it would take as long again
                    reader.close()
                    reader = _Reader()
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
                if _stopping.is_set():  # a Ctrl+C reached it before it could ignore one
                    raise ReadingStopped(f"{name}: not read, as the run was stopped")
                logger.warning("a reader process died %s: %s; starting a new one", attempt, name)
                reader.close()
                reader = _Reader()
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
_stopping = threading.Event()  # the run is stopping: it ends with the files being read
_halted = threading.Event()  # the run stops at once: the files being read are left unread
_HALT_POLL_S = 0.25  # how often a wait for a reader's answer looks whether the run halted


class ReadingStopped(DigitflowError):
    """A file was not read: the run stopped meanwhile."""


@contextlib.contextmanager
def stopped_on_interrupt() -> Iterator[None]:
    """While inside, a stop (Ctrl+C, or Prefect's SIGTERM) raised in this thread makes a
    reader that dies a sign of the stop, not of its file: its file is left unread (its
    shard fails) rather than read again by a new reader or quarantined.

    The run then ends with the files its readers are reading, and saves them; one of them
    may take until ``DIGITFLOW_FILE_DEADLINE_S`` (a file that stalls its reader). A second
    Ctrl+C (or SIGTERM) stops it at once: the readers' processes are stopped and their
    files left unread, for the batch's next run.
    """
    _stopping.clear()
    _halted.clear()
    try:
        yield
    except BaseException as exc:
        _stopping.set()
        if not isinstance(exc, Exception):  # Ctrl+C, SIGTERM: not an error of the run's
            _halt_on_another_signal()
        raise


def _halt_on_another_signal() -> None:
    """Make the next Ctrl+C or SIGTERM stop the run at once (the main thread only, where
    Python runs signal handlers); the one after it is the signal's usual self again.

    The handler only stops the readers: the run, already stopping, ends as a first stop
    does once its shards have given up their files (raising again here would end the
    process while they still record their states).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {
        signum: signal.getsignal(signum) or signal.SIG_DFL  # None: not set from Python
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN  # ignored by whoever started it
    }
    logger.warning(
        "stopping: the files being read are read to the end and saved (a file that stalls "
        "its reader may hold this up to DIGITFLOW_FILE_DEADLINE_S); stop again to stop at "
        "once, leaving them for the batch's next run"
    )

    def halt(signum: int, frame: object) -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _halted.set()
        logger.warning("stopped at once: the files being read are left for the batch's next run")

    for signum in previous:
        signal.signal(signum, halt)


def _pool(count: int) -> _Readers | None:
    """The shared readers (``count`` of them), started on first use; None where files are
    read in-thread."""
    global _POOL
    # A daemonic process (a Dask worker) may not have children; it is one reader itself.
    if count <= 1 or mp.current_process().daemon:
        _reading_here()
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
