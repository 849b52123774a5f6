"""Run a function in a fresh process and stream its progress events back.

Training runs this way so that each model has its own backend runtime: its own thread
pools, its own pinned GPU, and GPU memory that is returned when the process exits
(TensorFlow frees it at no other time).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from digitflow import lifeline
from digitflow.errors import TrainingError

POLL_S = 0.5

_running: set[Any] = set()  # the processes run_in_process waits on, in any thread
_stopped: dict[Any, float] = {}  # those of them that end_all ended, and when
_lock = threading.Lock()
_ending = threading.Lock()  # held by the thread ending a child process
# A process still running this long after end_all's SIGTERM is killed (SIGKILL).
KILL_AFTER_S = 10.0


def _child(
    fn: Callable[..., Any], kwargs: dict[str, Any], env: dict[str, str], events: Any
) -> None:
    os.environ.update(env)  # before the backend is imported: it reads its devices once
    lifeline.follow_parent()  # a parent killed (SIGKILL) leaves no training behind
    signal.signal(signal.SIGTERM, _end_now)
    _end_even_in_native_code()
    try:
        result = fn(**kwargs, on_event=lambda event: events.send(("event", event)))
        _tell(events, ("result", result))
    except BaseException as exc:  # everything must reach the parent, whatever it was
        _tell(events, ("error", (type(exc).__name__, str(exc), traceback.format_exc())))


def _end_now(signum: int, frame: Any) -> None:
    """Ended (``end_all``'s SIGTERM): at once, as the signal's default would, but first
    remove what only a process's usual exit removes: the named semaphores of the queues
    it made (the line reader's string writers' pool). Left behind, multiprocessing's
    resource tracker warns of them as the command exits. Its pool's workers end with it."""
    from multiprocessing import util

    if not _ending.acquire(blocking=False):
        return  # the other way the signal came is ending the process already
    util._run_finalizers(0)  # type: ignore[attr-defined]  # the exit's own clean-up
    os._exit(128 + signum)


def _end_even_in_native_code() -> None:
    """End on SIGTERM even while the main thread is in native code.

    A Python signal handler runs only once the main thread is back in Python: a training
    waiting in its backend for its next batch (the line reader's while an epoch of
    strings is written, up to 15 s) held a stop that long, and one waiting on a batch
    that never comes, for ever. The signal's number is also written to a pipe as it
    arrives (the wakeup fd), where a thread of its own waits to end the process.
    """
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken, warn_on_full_buffer=False)
    # A process forked here (a fork pool's worker) would write its own signals to the pipe,
    # and a SIGTERM its pool sends it would end this one: none is forked with it.
    os.register_at_fork(
        before=_no_wakeup_fd,
        after_in_parent=lambda: _wakeup_fd(woken),
        after_in_child=_no_wakeup_fd,
    )
    threading.Thread(target=_wait_for_the_end, args=(wake,), name="end", daemon=True).start()


def _no_wakeup_fd() -> None:
    _wakeup_fd(-1)


def _wakeup_fd(fd: int) -> None:
    # Only the main thread may set it: a fork from another thread leaves it as it is.
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


def _wait_for_the_end(wake: int) -> None:
    while True:
        # Other signals (a Ctrl+C) go their way, and so does a SIGTERM that the function
        # run here has taken to handle itself.
        if signal.SIGTERM in os.read(wake, 64) and signal.getsignal(signal.SIGTERM) == _end_now:
            _end_now(signal.SIGTERM, None)


def _tell(events: Any, message: tuple[str, Any]) -> None:
    """Send the parent the child's last word, unless it has stopped listening."""
    with contextlib.suppress(OSError):  # the parent ended, or gave up on this child
        events.send(message)


def run_in_process(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    name: str,
    env: dict[str, str] | None = None,
    on_event: Callable[[Any], None] = lambda event: None,
) -> Any:
    """Call ``fn(**kwargs, on_event=...)`` in a spawned process; return its result.

    Events the child passes to ``on_event`` are delivered to the parent's ``on_event``
    in order, in the calling thread. A child exception or crash raises TrainingError.
    """
    ctx = mp.get_context("spawn")
    # A pipe, not a queue: a queue's locks are named semaphores, which a command stopped by
    # a signal (it exits without finalising them) leaves behind, three for each training,
    # with a warning from multiprocessing's resource tracker.
    events, sending = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, kwargs, env or {}, sending), name=name)
    proc.start()
    sending.close()  # the child's end: the parent reads, and sees EOF once the child is gone
    with _lock:
        _running.add(proc)
    try:
        return _relay(proc, events, name, on_event)
    except BaseException:  # a signal or an error here: the child has nothing more to do
        proc.terminate()
        raise
    finally:
        events.close()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        with _lock:
            _running.discard(proc)
            _stopped.pop(proc, None)


def _relay(proc: Any, events: Any, name: str, on_event: Callable[[Any], None]) -> Any:
    """Pass the child's events on until its result or its error."""
    kind: str | None
    payload: Any
    closed = False  # all it sent is read, and its end is closed: it is ending
    while True:
        kind, payload = None, None
        if closed:
            proc.join(POLL_S)
        else:
            try:
                if events.poll(POLL_S):
                    kind, payload = events.recv()
            except (EOFError, OSError):  # OSError: it died in the middle of a message
                closed = True
        if kind is None:
            if proc.is_alive() or (not closed and events.poll(0)):
                continue  # still running, or it sent something as it exited: read it
            with _lock:
                stopped = proc in _stopped
            if stopped:
                raise TrainingError(f"{name}: stopped, as the command was") from None
            raise TrainingError(f"{name}: process {_how_it_ended(proc.exitcode)}") from None
        if kind == "event":
            on_event(payload)
        elif kind == "result":
            return payload
        else:
            exc_type, message, trace = payload
            with _lock:
                if proc in _stopped:  # its error is the stop's (a Ctrl+C it was sent too)
                    raise TrainingError(f"{name}: stopped, as the command was")
            error = TrainingError(f"{name}: {exc_type}: {message}")
            error.child_traceback = trace
            raise error


def _how_it_ended(code: int) -> str:
    """How a child process that sent no result ended, from its exit code."""
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        by = signal.Signals(signum).name
    except ValueError:
        return f"exited with code {code} before finishing (killed for memory?)"
    if by == "SIGKILL":
        return "was killed (SIGKILL) before finishing: out of memory, or killed by hand?"
    # A SIGTERM ends it by its exit code (it cleans up first, see _end_now).
    return f"was ended by {by} before finishing"


def end_all() -> None:
    """End every process that ``run_in_process`` waits on, in any thread (SIGTERM).

    Their callers raise TrainingError soon after. A flow waiting on threads that wait on
    such processes calls this when it is stopped (a SIGTERM, Ctrl+C): the threads, and
    so the flow, end then rather than when the training would have.
    """
    with _lock:
        for proc in _running:
            # Once each: a flow calls this until its tasks end. One that has not ended
            # after a while more (its clean-up stuck) is killed.
            if not proc.is_alive():
                continue
            if proc not in _stopped:
                _stopped[proc] = time.monotonic()
                proc.terminate()
            elif time.monotonic() - _stopped[proc] > KILL_AFTER_S:
                proc.kill()
