"""An epoch's batches written in processes: the same batches, and no process left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from digitflow.reader.strings import GROUP, StringBatches
from digitflow.reader.synth import Digits
from digitflow.reader.training import EpochWriter

STEPS = 2 * GROUP + 3  # two whole groups and part of a third


def test_processes_write_the_batches_this_process_would(digits: Digits) -> None:
    source = StringBatches(digits, batch_size=4, seed=9)
    here = EpochWriter(source, STEPS, processes=1)
    assert here.pool is None
    there = EpochWriter(source, STEPS, processes=2)
    try:
        assert there.pool is not None
        for epoch in (0, 1):
            mine, theirs = here.epoch(epoch), there.epoch(epoch)
            assert len(mine) == len(theirs) == STEPS
            for (x, y), (x2, y2) in zip(mine, theirs, strict=True):
                np.testing.assert_array_equal(x, x2)
                np.testing.assert_array_equal(y, y2)
    finally:
        there.close()


WRITER = """
import sys, numpy as np
from digitflow.reader.strings import StringBatches
from digitflow.reader.synth import Digits
from digitflow.reader.training import EpochWriter
if __name__ == "__main__":
    rng = np.random.default_rng(0)
    digits = Digits((rng.random((100, 28, 28)) * 255).astype(np.uint8),
                    rng.integers(0, 10, 100).astype(np.uint8))
    writer = EpochWriter(StringBatches(digits, 4, 0), %d, processes=2)
    writer.epoch(0)
    print(*[p.pid for p in writer.pool._processes.values()], flush=True)
    sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_writers_end_when_the_training_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER % STEPS)
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    workers: list[int] = []
    try:
        assert parent.stdout is not None
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "writer processes outlived the training"
    finally:
        parent.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
