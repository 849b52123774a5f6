"""Functions run in child processes by the isolation tests (must be importable)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def count_to(n: int, on_event: Callable[[int], None]) -> str:
    for i in range(n):
        on_event(i)
    return f"counted to {n} with CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}"


def fail(on_event: Callable[[int], None]) -> None:
    on_event(1)
    raise ValueError("bad hyper-parameter: learning_rate=-1")


def crash(on_event: Callable[[int], None]) -> None:
    os._exit(9)


def tick_forever(on_event: Callable[[int], None], ended: str = "", started: str = "") -> None:
    """Report each tick, for ever; a SIGTERM writes ``ended`` (a path) and exits. Once
    ticking, it writes its process id to ``started``."""

    def note(signum: int, frame: object) -> None:
        if ended:
            Path(ended).write_text("SIGTERM")
        os._exit(0)

    signal.signal(signal.SIGTERM, note)
    if started:
        Path(started).write_text(str(os.getpid()))
    tick(on_event)


def tick_with_a_pool(on_event: Callable[[int], None]) -> None:
    """Tick for ever with a process pool open and busy, as the line reader's training
    writes its strings in one (its workers end with it)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from digitflow import lifeline

    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=lifeline.follow_parent)
    try:
        pool.submit(os.getpid).result()
        pool.submit(time.sleep, 2.0)  # an epoch's strings being written when the stop comes
        tick(on_event)
    finally:
        pool.shutdown(cancel_futures=True)


def wait_in_native_code(on_event: Callable[[int], None]) -> None:
    """With a process pool open, sit in native code that never returns to Python, as a
    training waits in its backend for a batch that is slow to come."""
    import hashlib
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from digitflow import lifeline

    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=lifeline.follow_parent)
    pool.submit(os.getpid).result()
    on_event(0)
    hashlib.pbkdf2_hmac("sha256", b"digitflow", b"salt", 2**31 - 1)  # many minutes, no GIL


def ignore_the_stop(on_event: Callable[[int], None]) -> None:
    """Tick for ever, deaf to SIGTERM (a clean-up stuck, a library that took the signal)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tick(on_event)


def die_mid_message(on_event: Callable[[int], None]) -> None:
    """Die after sending the first part of a message (killed as it sends a large one)."""
    import struct

    connection = on_event.__closure__[0].cell_contents  # type: ignore[attr-defined]
    connection._send(struct.pack("!i", 100_000) + b"x" * 1000)
    os._exit(3)


def tick_its_pid(on_event: Callable[[int], None]) -> None:
    """Report its process id, for ever."""
    tick(lambda i: on_event(os.getpid()))


def tick(on_event: Callable[[int], None]) -> None:
    """Report each tick (0, 1, 2, …), every 0.05 s, for ever."""
    i = 0
    while True:
        on_event(i)
        i += 1
        time.sleep(0.05)


def end_a_forked_helper(on_event: Callable[[int], None]) -> str:
    """Fork a helper and end it with SIGTERM, as a fork pool's terminate ends its workers."""
    ready, say_ready = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.write(say_ready, b"1")  # a signal before Python's after-fork reset would be lost
        time.sleep(60)
        os._exit(0)
    os.read(ready, 1)
    os.kill(helper, signal.SIGTERM)
    os.waitpid(helper, 0)
    time.sleep(0.5)  # room for a wrongly woken end
    return "the helper ended, and this goes on"
