"""One reader process: finds the digits of the files sent to it, one at a time, over a
pipe of its own (``ReaderProcess``), and the settings a process that finds digits runs
with."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing as mp
import signal
import time
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait

from digitflow.errors import ReaderStartError
from digitflow.scoring import interrupt
from digitflow.scoring.extract import FileDigits, Reading, extract

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


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
def reading_here() -> None:
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


class ReaderProcess:
    """One reader process and its pipe."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child,), name="digitflow-reader", daemon=True
        )
        # Started with Ctrl+C blocked, which it inherits: one pressed while it imports (before
        # ``_serve`` ignores it) would end it with a KeyboardInterrupt traceback on the
        # terminal. Only this thread's mask: the scoring process still takes Ctrl+C. The
        # resource tracker that spawn starts first unblocks SIGINT after its own start, so it
        # is started before the mask is set.
        resource_tracker.ensure_running()
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
        if code is None or code < 0 or interrupt.stopping.is_set():
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
                if interrupt.halted.is_set():
                    raise interrupt.ReadingStopped(
                        f"{name}: not read, as the run was stopped at once"
                    )
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
        while not interrupt.halted.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if wait([self._conn, self.process.sentinel], timeout=min(left, interrupt.HALT_POLL_S)):
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
