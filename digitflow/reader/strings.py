"""Sets of generated strings: batches for training, fixed sets for validation and test.

Every batch and every set is a function of its seed and index alone, so a training run
can be repeated, and two readers compared on a validation set see the very same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitflow.reader import field, synth
from digitflow.reader.synth import Digits

# Long strings are squeezed to this width (in input columns) for training.
MAX_WIDTH = 256
# The batch's strings are of about one length, so that little of a batch is padding.
_LENGTH_SPREAD = 1


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
    """

    digits: Digits
    batch_size: int
    seed: int
    max_width: int = MAX_WIDTH

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        by_label = self.digits.by_label()
        centre = int(rng.choice(synth.LENGTHS, p=synth.LENGTH_SHARES))
        labels = np.zeros((self.batch_size, synth.MAX_DIGITS), np.int32)
        inputs = []
        for k in range(self.batch_size):
            spread = int(rng.integers(-_LENGTH_SPREAD, _LENGTH_SPREAD + 1))
            length = int(np.clip(centre + spread, 1, synth.MAX_DIGITS))
            grey, text = synth.make_field(
                self.digits, by_label, rng, synth.random_text(rng, length)
            )
            inputs.append(squeeze(field.field_input(grey, dark=True), self.max_width))
            labels[k, : len(text)] = [int(c) + 1 for c in text]
        x, _ = field.pad_batch(inputs)
        return x, labels
