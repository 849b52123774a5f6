"""Stopping a scoring run: a first Ctrl+C (or SIGTERM) ends it with the files its readers
are reading; a second stops the readers at once, leaving those files for the batch's next
run."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from digitflow.errors import DigitflowError

logger = logging.getLogger(__name__)

stopping = threading.Event()  # the run is stopping: it ends with the files being read
halted = threading.Event()  # the run stops at once: the files being read are left unread
HALT_POLL_S = 0.25  # how often a wait for a reader's answer looks whether the run halted


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
    stopping.clear()
    halted.clear()
    try:
        yield
    except BaseException as exc:
        stopping.set()
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
        halted.set()
        logger.warning("stopped at once: the files being read are left for the batch's next run")

    for signum in previous:
        signal.signal(signum, halt)
