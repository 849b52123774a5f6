"""An epoch's batches written in processes: the same batches, and no process left behind;
and given to Keras in order, each epoch once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from digitflow.reader.strings import GROUP, StringBatches, fixed_set
from digitflow.reader.synth import Digits
from digitflow.reader.training import EpochWriter, _keras_batches, fit_reader

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


class _Recorded:
    """Generated batches that record which (epoch, index) each call wrote."""

    def __init__(self, strings: StringBatches) -> None:
        self.strings = strings
        self.asked: list[tuple[int, int]] = []

    @property
    def max_width(self) -> int:
        return self.strings.max_width

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.asked.append((epoch, index))
        return self.strings.batch(epoch, index)


def test_batch_k_is_batch_k_mod_steps_of_epoch_k_div_steps(digits: Digits) -> None:
    """One endless dataset for a fit: each batch its epoch's, and none past the last."""
    strings = StringBatches(digits, batch_size=4, seed=2)
    source = _Recorded(strings)
    batches = _keras_batches(EpochWriter(source, 3, processes=1), epochs=2)
    for k in range(6):
        x, y = batches[k]
        want_x, want_y = strings.batch(k // 3, k % 3)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(x[:, :, : want_x.shape[2]], want_x)  # the first padded
    for k in (6, 7, 50):  # Keras reads ahead of its last step: the last batch, nothing written
        np.testing.assert_array_equal(batches[k][1], strings.batch(1, 2)[1])
    assert source.asked == [(e, k) for e in range(2) for k in range(3)]


def test_a_fit_writes_each_epoch_once_in_order_and_no_more(digits: Digits) -> None:
    from digitflow.models import line_reader

    source = _Recorded(StringBatches(digits, batch_size=4, seed=3))
    history = fit_reader(
        line_reader.build(units=8), source, fixed_set(digits, 4, seed=1), epochs=3,
        steps_per_epoch=2, rate=1e-3, learning_rate=1e-3, processes=1,
    )  # fmt: skip
    assert [(e.epoch, e.epochs) for e in history] == [(1, 3), (2, 3), (3, 3)]
    assert source.asked == [(e, k) for e in range(3) for k in range(2)]
    # A second fit of a training (a reader's restart) counts on from the first.
    more = fit_reader(
        line_reader.build(units=8), StringBatches(digits, batch_size=4, seed=3),
        fixed_set(digits, 4, seed=1), epochs=2, steps_per_epoch=1, rate=1e-3,
        learning_rate=1e-3, processes=1, before=3, total=5,
    )  # fmt: skip
    assert [(e.epoch, e.epochs) for e in more] == [(4, 5), (5, 5)]


def test_an_averaging_fit_ends_on_the_moving_average_of_its_steps(digits: Digits) -> None:
    """At a momentum of all but one, the average never moves from where the first step
    left the weights: the fit of four steps ends there, where the plain fit goes on."""
    import keras

    from digitflow.models import line_reader

    def seeds(model: keras.Model) -> list[keras.Variable]:
        return [layer.seed_generator.state for layer in model.layers
                if getattr(layer, "seed_generator", None) is not None]  # fmt: skip

    keras.utils.set_random_seed(5)
    start = line_reader.build(units=8)

    def fitted(steps: int, average: float | None) -> list[np.ndarray]:
        # Each fit from the same weights and dropout seeds, whatever the random state: a
        # thread left by an earlier test that draws from it meanwhile cannot move them.
        model = line_reader.build(units=8)
        model.set_weights(start.get_weights())
        for mine, theirs in zip(seeds(model), seeds(start), strict=True):
            mine.assign(theirs)
        fit_reader(
            model, StringBatches(digits, batch_size=4, seed=3), fixed_set(digits, 4, seed=1),
            epochs=1, steps_per_epoch=steps, rate=1e-2, learning_rate=1e-2, processes=1,
            average=average,
        )  # fmt: skip
        return [w.numpy() for w in model.trainable_weights]

    first, last = fitted(1, None), fitted(4, None)
    averaged = fitted(4, 1 - 1e-12)
    for a, b in zip(averaged, first, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert max(float(np.abs(a - b).max()) for a, b in zip(last, first, strict=True)) > 1e-3
