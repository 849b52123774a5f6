"""The line reader's training speed: seconds an epoch, two ways of giving Keras its
batches, in one run.

  an iterator an epoch  a dataset of an epoch's length, the epoch's number kept by its
                        ``on_epoch_end``: Keras makes a new iterator over it at each
                        epoch's end (how the reader trained before)
  one iterator          one endless dataset for the whole fit, batch k being batch
                        k % steps of epoch k // steps, and ``steps_per_epoch`` given to
                        ``fit`` (``_keras_batches``: how ``fit_reader`` trains now)

Both train a fresh reader for --epochs epochs of --steps batches of 64 strings written
with the MNIST training digits, cut by width and an epoch written before it starts, one
process per core (``EpochWriter``). For each epoch after the first it reports the
seconds a step (the epoch's wall time over its steps, the writing included) and the
seconds before its first step began; the medians, and the total. Each way runs in a
process of its own, one after the other, the first way first; ratios are against it,
measured in the same run.

Usage: python benchmarks/reader_steps.py [--steps 60] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
from champion import mnist_dir

from digitflow.reader.strings import StringBatches
from digitflow.reader.synth import Digits
from digitflow.reader.training import EpochWriter, _keras_batches
from digitflow.samples import read_idx

BATCH = 64


def an_iterator_an_epoch(writer: EpochWriter) -> Any:
    """The batches as ``fit_reader`` gave them before: an epoch's length, the epoch kept
    by ``on_epoch_end``, the first batch of every epoch padded to leave Keras the width."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.written: tuple[int, list] = (-1, [])

        def __len__(self) -> int:
            return writer.steps

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            if self.written[0] != self.epoch:
                self.written = (-1, [])
                self.written = (self.epoch, writer.epoch(self.epoch))
            x, y = self.written[1][index]
            if index == 0:
                wider = writer.source.max_width + 16 - x.shape[2]
                x = np.pad(x, ((0, 0), (0, 0), (0, wider), (0, 0)))
            return x, y

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Batches()


WAYS = ("an iterator an epoch", "one iterator")


def measure(way: str, steps: int, epochs: int) -> list[tuple[float, float]]:
    """Each epoch's (seconds a step, seconds before its first step) of one way, here."""
    import keras

    from digitflow.models import line_reader

    images = read_idx(mnist_dir() / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(mnist_dir() / "train-labels-idx1-ubyte.gz", 8)
    source = StringBatches(Digits(images[:55000], labels[:55000]), BATCH, 0)
    model = line_reader.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0), loss=keras.losses.CTC())
    epochs_seen: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()
            self.first: float | None = None

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.first is None:
                self.first = time.perf_counter() - self.started

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epochs_seen.append(((time.perf_counter() - self.started) / steps, self.first or 0.0))

    writer = EpochWriter(source, steps, processes=os.cpu_count() or 1)
    try:
        if way == WAYS[0]:
            model.fit(an_iterator_an_epoch(writer), epochs=epochs, verbose=0, shuffle=False,
                      callbacks=[Clock()])  # fmt: skip
        else:
            model.fit(_keras_batches(writer, epochs), epochs=epochs, steps_per_epoch=steps,
                      verbose=0, shuffle=False, callbacks=[Clock()])  # fmt: skip
    finally:
        writer.close()
    return epochs_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches an epoch")
    parser.add_argument("--epochs", type=int, default=6, help="epochs a way (not the first)")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one way, here
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not counted")
    if args.way:
        print(json.dumps(measure(args.way, args.steps, args.epochs)))
        return
    rows = []
    for way in WAYS:
        run = subprocess.run(
            [sys.executable, __file__, "--way", way, "--steps", str(args.steps),
             "--epochs", str(args.epochs)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seen = [tuple(e) for e in json.loads(run.stdout.strip().splitlines()[-1])][1:]
        step = statistics.median(s for s, _ in seen)
        waits = [w for _, w in seen]
        total = sum(s for s, _ in seen) * args.steps
        rows.append((way, step, statistics.median(waits), max(waits), total))
        each = ", ".join(f"{s:.3f} (waited {w:.1f} s)" for s, w in seen)
        print(f"{way}: {step:.3f} s a step; epochs 2-{args.epochs}: {each}", flush=True)
    base = rows[0][4]
    print(f"\n{args.steps} steps an epoch, batches of {BATCH}, epochs 2-{args.epochs}")
    print(
        "| batches | s a step, median | s before the first step: median, most | "
        "epochs 2 on, s | vs an iterator an epoch |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, step, wait, most, total in rows:
        print(
            f"| {name} | {step:.3f} | {wait:.1f}, {most:.1f} | {total:.0f} | {base / total:.2f}x |"
        )


if __name__ == "__main__":
    main()
