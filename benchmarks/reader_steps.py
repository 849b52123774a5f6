"""The line reader's training speed: seconds a step, three ways of feeding it, in one run.

  one length, beside    each batch's strings of about one length (a length drawn for the
                        batch, each string within one of it), padded to the widest;
                        written in the input pipeline's thread while the step runs (how
                        the reader trained before)
  by width, beside      eight batches written together and cut by width
                        (``StringBatches``), still written beside the step
  by width, first       the same batches, an epoch written before it starts, one process
                        per core (``EpochWriter``: how ``fit_reader`` trains)

Each way trains a fresh reader for --epochs epochs of --steps batches of 64 strings written
with the MNIST training digits, and reports the median seconds a step of the epochs after
the first (a step's share of the writing included), the mean batch width and the share of
the batches that is padding. Each way runs in a process of its own, one after another.
Ratios are against the first way, measured in the same run.

Usage: python benchmarks/reader_steps.py [--steps 60] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
from champion import mnist_dir

from digitflow.reader import field, synth
from digitflow.reader.strings import MAX_WIDTH, StringBatches, squeeze
from digitflow.reader.synth import Digits
from digitflow.reader.training import EpochWriter, _keras_batches
from digitflow.samples import read_idx

BATCH = 64


@dataclass(frozen=True)
class OneLength:
    """Batches of strings of about one length, each a function of (epoch, index)."""

    digits: Digits
    seed: int
    max_width: int = MAX_WIDTH

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        by_label = self.digits.by_label()
        centre = int(rng.choice(synth.LENGTHS, p=synth.LENGTH_SHARES))
        labels = np.zeros((BATCH, synth.MAX_DIGITS), np.int32)
        inputs = []
        for k in range(BATCH):
            length = int(np.clip(centre + rng.integers(-1, 2), 1, synth.MAX_DIGITS))
            grey, text = synth.make_field(
                self.digits, by_label, rng, synth.random_text(rng, length)
            )
            inputs.append(squeeze(field.field_input(grey, dark=True), self.max_width))
            labels[k, : len(text)] = [int(c) + 1 for c in text]
        x, _ = field.pad_batch(inputs)
        return x, labels


def beside(source: object, steps: int) -> object:
    """Batches written one at a time in the input pipeline's thread, beside the step."""
    import keras

    class Beside(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            x, y = source.batch(self.epoch, index)  # type: ignore[attr-defined]
            if index == 0:  # as fit_reader does: Keras must leave the width free
                x = np.pad(x, ((0, 0), (0, 0), (0, MAX_WIDTH + 16 - x.shape[2]), (0, 0)))
            return x, y

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Beside()


def padding(source: object, count: int) -> tuple[float, float]:
    """Mean width of ``count`` batches, and the share of them that is padding."""
    widths, pads = [], []
    for index in range(count):
        x, _ = source.batch(0, index)  # type: ignore[attr-defined]
        inked = (x[:, :, :, 0] > 0).any(axis=1)
        last = x.shape[2] - np.argmax(inked[:, ::-1], axis=1)
        widths.append(x.shape[2])
        pads.append(1.0 - last.mean() / x.shape[2])
    return float(np.mean(widths)), float(np.mean(pads))


def seconds_a_step(batches: object, steps: int, epochs: int) -> list[float]:
    import keras

    from digitflow.models import line_reader

    model = line_reader.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0), loss=keras.losses.CTC())
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append((time.perf_counter() - self.started) / steps)

    model.fit(batches, epochs=epochs, verbose=0, shuffle=False, callbacks=[Clock()])
    return times


WAYS = ("one length, beside", "by width, beside", "by width, first")


def measure(way: str, steps: int, epochs: int) -> tuple[float, float, list[float]]:
    """Mean batch width, padding share and each epoch's seconds a step of one way, in this
    process."""
    images = read_idx(mnist_dir() / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(mnist_dir() / "train-labels-idx1-ubyte.gz", 8)
    digits = Digits(images[:55000], labels[:55000])
    source = OneLength(digits, seed=0) if way == WAYS[0] else StringBatches(digits, BATCH, 0)
    width, pad = padding(source, min(steps, 24))
    if way != WAYS[2]:
        return width, pad, seconds_a_step(beside(source, steps), steps, epochs)
    writer = EpochWriter(source, steps, processes=os.cpu_count() or 1)
    try:
        return width, pad, seconds_a_step(_keras_batches(writer), steps, epochs)
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches an epoch")
    parser.add_argument("--epochs", type=int, default=3, help="a way's epochs (not the first)")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one way, here
    args = parser.parse_args()
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
        width, pad, times = json.loads(run.stdout.strip().splitlines()[-1])
        step = statistics.median(times[1:])
        rows.append((way, width, pad, step))
        each = ", ".join(f"{t:.3f}" for t in times)
        print(f"{way}: {step:.3f} s a step (each epoch: {each})", flush=True)
    base = rows[0][3]
    print(f"\n{args.steps} steps an epoch, batches of {BATCH}, median of epochs 2-{args.epochs}")
    print("| batches | mean width | padding | s a step | steps a second | vs one length, beside |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, width, pad, step in rows:
        ratio = base / step
        print(f"| {name} | {width:.0f} | {pad:.0%} | {step:.3f} | {1 / step:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
