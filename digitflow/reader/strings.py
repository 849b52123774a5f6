"""Sets of generated strings: batches for training, fixed sets for validation and test.

Every batch and every set is a function of its seed and index alone, so a training run
can be repeated, and two readers compared on a validation set see the very same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from digitflow.reader import field, synth
from digitflow.reader.synth import Digits

# Long strings are squeezed to this width (in input columns) for training.
MAX_WIDTH = 256
# Batches are written this many at a time and cut by width, so that a batch's strings are
# about as wide as each other and little of it is padding: its cost goes with its widest.
GROUP = 8


def strings_per_epoch(digits: int) -> int:
    """Strings in an epoch: as many as it takes to write each of ``digits`` about once."""
    mean = float((synth.LENGTHS * synth.LENGTH_SHARES).sum())
    return max(1, round(digits / mean))


@dataclass(frozen=True)
class LabelledFields:
    """Fields ready for the reader and the digits each holds."""

    fields: list[field.Field]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def fixed_set(digits: Digits, count: int, seed: int) -> LabelledFields:
    """``count`` generated fields (lengths as documents have them), the same for a seed."""
    rng = np.random.default_rng(seed)
    by_label = digits.by_label()
    fields, texts = [], []
    for _ in range(count):
        grey, text = synth.make_field(digits, by_label, rng)
        fields.append(field.prepare(grey))
        texts.append(text)
    return LabelledFields(fields, texts)


def squeeze(pixels: np.ndarray, width: int) -> np.ndarray:
    """Narrow an input wider than ``width`` to it (long strings in a bounded batch)."""
    import cv2

    if pixels.shape[1] <= width:
        return pixels
    return cv2.resize(pixels, (width, field.HEIGHT), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class StringBatches:
    """Training batches of generated strings: inputs (n, 32, W, 1) and CTC labels (n, 12).

    Labels hold digit + 1, padded with 0 (the CTC blank, as Keras' CTC loss expects).
    Batches ``GROUP * g`` to ``GROUP * g + GROUP - 1`` of an epoch are written together
    (lengths as documents have them), sorted by width and cut in turn, in an order drawn
    with them. The last group is kept, so asking for batches in order writes each once.
    """

    digits: Digits
    batch_size: int
    seed: int
    max_width: int = MAX_WIDTH
    # Epoch 0 writes the strings of this epoch: a reader that goes on training from where
    # an earlier run stopped sees strings that run did not.
    first_epoch: int = 0
    _kept: dict = dataclass_field(default_factory=dict, compare=False, repr=False)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``."""
        key = (self.first_epoch + epoch, index // GROUP)
        if key not in self._kept:
            self._kept.clear()
            self._kept[key] = self._group(*key)
        return self._kept[key][index % GROUP]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_kept": {}}  # a copy for another process: not the group

    def _group(self, epoch: int, group: int) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch, group])
        by_label = self.digits.by_label()
        inputs, texts = [], []
        for _ in range(GROUP * self.batch_size):
            grey, text = synth.make_field(self.digits, by_label, rng, synth.random_text(rng))
            inputs.append(squeeze(field.field_input(grey, dark=True), self.max_width))
            texts.append(text)
        by_width = np.argsort([x.shape[1] for x in inputs], kind="stable")
        batches = []
        for part in rng.permutation(GROUP):
            members = by_width[part * self.batch_size : (part + 1) * self.batch_size]
            labels = np.zeros((self.batch_size, synth.MAX_DIGITS), np.int32)
            for k, m in enumerate(members):
                labels[k, : len(texts[m])] = [int(c) + 1 for c in texts[m]]
            x, _ = field.pad_batch([inputs[m] for m in members])
            batches.append((x, labels))
        return batches
