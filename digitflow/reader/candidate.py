"""The line reader as a candidate: trained on strings written with a dataset version's
training digits, measured on strings of its validation slice (which select) and of its
test split (reported only), and stored under the reader's layout with its card.

The validation strings are a function of the dataset version (its validation slice and
seed) and their count alone, so every reader, the champion included, is measured on the
very same images: the gate's paired test compares like with like.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digitflow import models, recipes, runtime
from digitflow.candidates import Card, CardDraft, Split
from digitflow.data import dataset
from digitflow.layout import READER
from digitflow.reader.strings import LabelledFields, StringBatches, fixed_set, strings_per_epoch
from digitflow.reader.synth import Digits
from digitflow.reader.training import ReaderEpoch, evaluate, fit_reader
from digitflow.recipes import TrainConfig
from digitflow.storage import ObjectStore
from digitflow.training import EpochMetrics, Images, load_images, save_model

logger = logging.getLogger(__name__)

INPUT = "float32 (32, W, 1) in [0, 1], ink bright on black (digitflow.reader.field)"
VALIDATION_STRINGS = 1000
TEST_STRINGS = 1000
MONITOR_STRINGS = 300  # read after each epoch, for its progress line


@dataclass(frozen=True)
class StringSet:
    """Generated strings to measure readers on, and the fingerprint of what they are."""

    strings: LabelledFields
    digest: str


def string_set(digits: Digits, indices: np.ndarray, count: int, seed: int) -> StringSet:
    """``count`` strings written with ``digits`` (the examples ``indices`` of a split)."""
    identity = np.concatenate([np.asarray(indices, np.int64), [count, seed]]).astype(np.int64)
    digest = hashlib.sha256(identity.tobytes()).hexdigest()[:16]
    return StringSet(fixed_set(digits, count, seed), digest)


def validation_strings(images: Images, seed: int, count: int = VALIDATION_STRINGS) -> StringSet:
    """The strings of a version's validation slice that readers are selected on."""
    return string_set(Digits(images.val, images.val_labels), images.val_indices, count, seed)


def test_strings(images: Images, seed: int, count: int = TEST_STRINGS) -> StringSet:
    """Strings of the test split: reported, never selected on."""
    indices = np.arange(len(images.test_labels))
    return string_set(Digits(images.test, images.test_labels), indices, count, seed + 1)


def validation_seed(store: ObjectStore, version: str) -> int:
    """The seed of a version's validation slice, which its strings are written with too."""
    return int(dataset.read_manifest(store, version)["validation"]["seed"])


def reporter(config: TrainConfig, on_epoch: Callable[[EpochMetrics], None]) -> Callable:
    def report(e: ReaderEpoch) -> None:
        metrics = EpochMetrics(
            model=config.model, epoch=e.epoch, epochs=e.epochs, loss=e.loss,
            accuracy=float("nan"), val_loss=float("nan"), val_accuracy=e.val_exact,
            seconds=e.seconds,
        )  # fmt: skip
        on_epoch(metrics)

    return report


def measure(model: object, strings: StringSet) -> tuple[Split, float]:
    exact, digit_accuracy, _ = evaluate(model, strings.strings)
    return Split(size=len(strings.strings), error=1.0 - exact), digit_accuracy


def train_reader(
    store: ObjectStore,
    dataset_version: str,
    config: TrainConfig,
    training_run: str,
    on_epoch: Callable[[EpochMetrics], None] = lambda m: None,
) -> Card:
    """Fit a line reader on generated strings and store it as a reader candidate."""
    start = time.perf_counter()
    device = runtime.configure(config.threads)
    runtime.set_seeds(config.seed)
    images = load_images(store, dataset_version, config.limit, config.seed)
    seed = validation_seed(store, dataset_version)
    monitor = validation_strings(images, seed, MONITOR_STRINGS).strings
    source = StringBatches(Digits(images.train, images.train_labels), config.batch_size,
                           config.seed)  # fmt: skip
    strings = strings_per_epoch(len(images.train_labels))
    steps = max(1, strings // config.batch_size)
    logger.info("training %s on %d strings an epoch (%s)", config.model, strings, device)
    model = models.build(config.model)
    history = fit_reader(
        model, source, monitor, epochs=config.epochs, steps_per_epoch=steps,
        rate=recipes.learning_rate(config, steps * config.batch_size),
        learning_rate=config.learning_rate,
        on_epoch=reporter(config, on_epoch),
    )  # fmt: skip
    history_key = READER.candidate(training_run, config.model, "history.json")
    store.write_bytes(history_key, json.dumps([vars(e) for e in history]).encode())
    validation, val_digits = measure(model, validation_strings(images, seed))
    test, test_digits = measure(model, test_strings(images, seed))
    draft = CardDraft(
        training_run=training_run, model_name=config.model, role="reader",
        dataset_version=dataset_version, validation=validation, test=test,
        parameter_count=int(model.count_params()), wall_s=time.perf_counter() - start,
        device=device, input=INPUT, params=config.model_dump(),
        train_examples=len(images.train_labels), history_key=history_key,
        scores={"validation_digit_accuracy": val_digits, "test_digit_accuracy": test_digits},
    )  # fmt: skip
    return save_model(store, model, draft, READER)
