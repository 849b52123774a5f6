"""Children that die with their parent, even when the parent is killed with SIGKILL.

``start()`` launches ``python -m digitflow.lifeline PID``: a small watcher, outside the
terminal's process group, that notes the children process PID starts and, once PID has
ended, ends those still running (SIGTERM, then SIGKILL after a grace period). A command
that is killed therefore takes Prefect's temporary API server, and any training process,
with it. Linux only (it reads /proc and waits on pidfds); elsewhere ``start`` does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 5.0


def _children(pid: int) -> set[int]:
    """The children of process ``pid`` now (empty once it has ended)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _signal_all(pidfds: list[int], signum: int) -> None:
    for fd in pidfds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signum)


def _end(pidfds: list[int]) -> None:
    """SIGTERM each process, then SIGKILL those still running after the grace period."""
    _signal_all(pidfds, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    running = list(pidfds)
    while running and time.monotonic() < deadline:
        ended, _, _ = select.select(running, [], [], max(0.0, deadline - time.monotonic()))
        running = [fd for fd in running if fd not in ended]
    _signal_all(running, signal.SIGKILL)


def watch(parent: int) -> None:
    """Note the children of ``parent`` while it runs; end those still running after it."""
    try:
        parent_fd = os.pidfd_open(parent)
    except ProcessLookupError:
        return
    held: dict[int, int] = {}  # child pid -> its pidfd, which no reused pid can mistake
    while not select.select([parent_fd], [], [], POLL_S)[0]:
        for pid in _children(parent) - held.keys() - {os.getpid()}:
            with contextlib.suppress(ProcessLookupError):
                held[pid] = os.pidfd_open(pid)
        ended, _, _ = select.select(list(held.values()), [], [], 0)
        for pid, fd in list(held.items()):
            if fd in ended:
                os.close(held.pop(pid))
    _end(list(held.values()))


def follow_parent() -> None:
    """End this process once its parent has ended, however it ended (a thread looks once
    a second): for a child that would otherwise run on, or wait for work for ever. Unlike
    a lifeline, it cannot miss a child started just before its parent was killed."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@functools.cache  # one watcher per process is enough
def start() -> subprocess.Popen[bytes] | None:
    """Start this process's lifeline (Linux; elsewhere nothing)."""
    if not hasattr(os, "pidfd_open") or not Path(f"/proc/{os.getpid()}/task").is_dir():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "digitflow.lifeline", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal is for the command, not for it
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]))
