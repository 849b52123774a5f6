"""The line reader as a candidate: trained on strings written with a dataset version's
training digits, measured on strings of its validation slice (which select) and of its
test split (reported only), and stored under the reader's layout with its card.

The validation strings are a function of the dataset version (its validation slice and
seed) and their count alone, so every reader, the champion included, is measured on the
very same images: the gate's paired test compares like with like. What a reader read of
them when it was trained is stored beside it (``reads.json``), so that the gate, which
needs every string's reading, does not read them all again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitflow import models, recipes, runtime
from digitflow.candidates import Card, CardDraft, Split, read_card
from digitflow.data import dataset
from digitflow.errors import NotFoundError, TrainingError
from digitflow.exported import export_reader
from digitflow.fitting import EpochMetrics, Images, load_images, save_model
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.pointer import Champion, current_champion
from digitflow.reader import field
from digitflow.reader.infer import read_inputs, score_strings
from digitflow.reader.quantize import quantize_export
from digitflow.reader.strings import LabelledFields, StringBatches, fixed_set, strings_per_epoch
from digitflow.reader.synth import Digits
from digitflow.reader.training import ReaderEpoch, fit_reader
from digitflow.recipes import TrainConfig
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)

INPUT = "float32 (32, W, 1) in [0, 1], ink bright on black (digitflow.reader.field)"
MONITOR_STRINGS = 300  # at most: the first validation strings, read after each epoch
READS = "reads.json"  # beside a reader: what it read of its validation, test (guard) strings
_DIGITS = set("0123456789")


@dataclass(frozen=True)
class StringSet:
    """Generated strings to measure readers on, and the fingerprint of what they are."""

    strings: LabelledFields
    digest: str


# The sets written last in this process, by what they were asked for (indices, count, seed)
# and the images they were written with: a training's progress line and its measurement
# share the validation strings, and gates or trainings that follow one another in a
# process write each set once (about 4 s a thousand strings on 2 cores).
_WRITTEN: OrderedDict[tuple[str, str], StringSet] = OrderedDict()
_WRITTEN_KEPT = 4
_WRITING = threading.Lock()


def string_set(digits: Digits, indices: np.ndarray, count: int, seed: int) -> StringSet:
    """``count`` strings written with ``digits`` (the examples ``indices`` of a split).

    Its digest is a hash of the strings themselves, texts and pixels: what a reader read
    of a set (stored readings, a gate's paired masks) holds for another set only if it is
    the same, however it was asked for, and a change in how strings are written changes
    the digest. Written once per process: a set asked for again (the same indices, count
    and seed, with the same images) is the one already written, its pixels read-only."""
    identity = np.concatenate([np.asarray(indices, np.int64), [count, seed]]).astype(np.int64)
    key = (
        hashlib.sha256(identity.tobytes()).hexdigest(),
        hashlib.sha256(digits.images.tobytes() + digits.labels.tobytes()).hexdigest(),
    )
    with _WRITING:
        if key not in _WRITTEN:
            strings = fixed_set(digits, count, seed)
            for f in strings.fields:
                f.pixels.setflags(write=False)
            _WRITTEN[key] = StringSet(strings, _fingerprint(strings))
            while len(_WRITTEN) > _WRITTEN_KEPT:
                _WRITTEN.popitem(last=False)
        _WRITTEN.move_to_end(key)
        return _WRITTEN[key]


def _fingerprint(strings: LabelledFields) -> str:
    """A hash of a set's texts and pixels, in order (16 hex digits)."""
    h = hashlib.sha256()
    for f, text in zip(strings.fields, strings.texts, strict=True):
        pixels = np.ascontiguousarray(f.pixels)
        h.update(f"{text}:{pixels.dtype}:{pixels.shape};".encode())
        h.update(pixels.tobytes())
    return h.hexdigest()[:16]


def validation_strings(images: Images, seed: int, count: int = recipes.READER_STRINGS) -> StringSet:
    """The strings of a version's validation slice that readers are selected on."""
    return string_set(Digits(images.val, images.val_labels), images.val_indices, count, seed)


def test_strings(images: Images, seed: int, count: int = recipes.READER_STRINGS) -> StringSet:
    """Strings of the test split: reported, never selected on."""
    indices = np.arange(len(images.test_labels))
    return string_set(Digits(images.test, images.test_labels), indices, count, seed + 1)


def monitor_strings(images: Images, seed: int, count: int) -> LabelledFields:
    """The first validation strings of the set of ``count``, read after each epoch for its
    progress line (the set is then written once, for this and the reader's measure)."""
    strings = validation_strings(images, seed, count).strings
    return LabelledFields(strings.fields[:MONITOR_STRINGS], strings.texts[:MONITOR_STRINGS])


def guard_strings(images: Images, seed: int, count: int = recipes.READER_STRINGS) -> StringSet:
    """Strings of the validation slice that no gate selects on: the gate of tuned readers
    checks on them that MNIST is read no worse. A champion was chosen for reading the
    validation strings well, so on those it looks better than it reads; on these it does
    not."""
    return validation_strings(images, seed + 2, count)


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


@dataclass(frozen=True)
class Measured:
    """How well a reader read a string set, and what it read of each string."""

    split: Split
    digit_accuracy: float
    read: list[str]


def read_texts(model: object, strings: StringSet) -> list[str]:
    """What a loaded reader reads of each string of a set."""
    return [line.text for line in read_inputs(model, [f.pixels for f in strings.strings.fields])]


def measure(model: object, strings: StringSet) -> Measured:
    read = read_texts(model, strings)
    scores = score_strings(strings.strings.texts, read)
    split = Split(size=len(strings.strings), error=1.0 - scores.exact_rate)
    return Measured(split, scores.digit_accuracy, read)


def save_reads(store: ObjectStore, card: Card, sets: dict[str, tuple[StringSet, Measured]]) -> None:
    """Store what a stored reader read of each string set (``validation``, ``test``, and
    ``guard`` for a tuned reader), for that model file (its checksum), those strings (their
    digest) and the way lines are read (``field.READING``) only."""
    body = {part: {"digest": s.digest, "read": m.read} for part, (s, m) in sets.items()}
    key = READER.candidate(card.training_run, card.model_name, READS)
    record = {"sha256": card.sha256, "reading": field.READING, **body}
    store.write_bytes(key, json.dumps(record).encode())


def stored_reads(
    store: ObjectStore, reader: Card | Champion, part: str, strings: StringSet
) -> list[str] | None:
    """What ``reader`` read of ``strings`` (its ``part``: validation, test or guard) when it was
    stored, if that was kept for this very model file, these very strings and the way lines
    are read now (``field.READING``); else None, and it must read them again. A missing or
    damaged record is not an error: it costs a reading, nothing else. A record without
    ``part`` is no damage (a reader trained, not tuned, never read guard strings) and
    passes without a warning."""
    key = READER.candidate(reader.training_run, reader.model_name, READS)
    try:
        body = json.loads(store.read_bytes(key))
        if isinstance(body, dict) and part not in body:
            return None
        entry = body[part]
        fits = (body["sha256"] == reader.sha256 and body.get("reading") == field.READING
                and entry["digest"] == strings.digest)  # fmt: skip
        read = entry["read"]
    except NotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring %s: %s", key, exc)
        return None
    if not fits or not isinstance(read, list) or len(read) != len(strings.strings):
        return None
    if not all(isinstance(text, str) and set(text) <= _DIGITS for text in read):
        logger.warning("ignoring %s: a reading that is not a digit string", key)
        return None
    return read


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
    monitor = monitor_strings(images, seed, config.strings)
    model, origin = starting_point(store, config)
    digits = Digits(images.train, images.train_labels)
    strings = strings_per_epoch(len(images.train_labels))
    steps = max(1, strings // config.batch_size)
    logger.info("training %s on %d strings an epoch (%s)%s", config.model, strings, device,
                f", from {origin.started_from} at epoch {origin.first_epoch + 1}"
                if origin.started_from else "")  # fmt: skip
    again = recipes.restart(config)
    total = config.epochs + (again.epochs if again else 0)

    def fit(recipe: TrainConfig, before: int, average: float | None) -> list[ReaderEpoch]:
        """``recipe``'s epochs, on the strings from ``before`` epochs on."""
        source = StringBatches(digits, config.batch_size, config.seed,
                               first_epoch=origin.first_epoch + before)  # fmt: skip
        return fit_reader(
            model, source, monitor, epochs=recipe.epochs, steps_per_epoch=steps,
            rate=recipes.learning_rate(recipe, steps * config.batch_size),
            learning_rate=recipe.learning_rate, on_epoch=reporter(config, on_epoch),
            average=average, before=before, total=total,
        )  # fmt: skip

    history = fit(config, 0, origin.average)
    if again is not None:
        # Its restart: on from where it is, on strings it has not seen, as a warm start from
        # it would go on, ending on the average of its weights as such a start does.
        logger.info("%s: %d epochs more from epoch %d, at a peak rate of %g", config.model,
                    again.epochs, config.epochs, again.learning_rate)  # fmt: skip
        history += fit(again, config.epochs, recipes.WARM_AVERAGE)
    history_key = READER.candidate(training_run, config.model, "history.json")
    store.write_bytes(history_key, json.dumps([vars(e) for e in history]).encode())
    sets = measure_sets(model, images, seed, config.strings)
    draft = CardDraft(
        training_run=training_run, model_name=config.model, role="reader",
        dataset_version=dataset_version, validation=sets["validation"][1].split,
        test=sets["test"][1].split, parameter_count=int(model.count_params()),
        wall_s=time.perf_counter() - start, device=device, input=INPUT,
        params={**config.model_dump(), **origin.params(again)},
        train_examples=len(images.train_labels),
        history_key=history_key, scores=digit_scores(sets),
    )  # fmt: skip
    return save_reader(store, model, draft, sets)


def save_reader(
    store: ObjectStore, model: Any, draft: CardDraft, sets: dict[str, tuple[StringSet, Measured]]
) -> Card:
    """Save a fitted reader as a candidate: the model, its export (its reading model, in 8
    bits where that reads the validation strings as well), its card, and what it read of
    ``sets``."""
    card = save_model(store, model, draft, READER, in_8_bits(*sets["validation"]),
                      exporter=export_reader)  # fmt: skip
    save_reads(store, card, sets)
    return card


def in_8_bits(strings: StringSet, measured: Measured) -> Callable[[Path], dict[str, float]]:
    """What turns a reader's export into 8 bits, where it reads ``strings`` (the validation
    strings, which Keras read as ``measured``) as well (digitflow.reader.quantize)."""

    def refine(onnx: Path) -> dict[str, float]:
        fields = strings.strings
        return quantize_export(onnx, [f.pixels for f in fields.fields], fields.texts,
                               measured.read)  # fmt: skip

    return refine


@dataclass(frozen=True)
class Start:
    """Where a reader's training starts: its weights' origin and its strings' first epoch."""

    started_from: str | None  # the champion it goes on from (None: new weights)
    first_epoch: int  # epochs of strings that the weights have already learnt from

    @property
    def average(self) -> float | None:
        """The momentum of the moving average of its weights that the fit ends on: a
        reader going on from its champion's (``recipes.WARM_AVERAGE``), else none."""
        return recipes.WARM_AVERAGE if self.started_from else None

    def params(self, restart: TrainConfig | None = None) -> dict[str, object]:
        """What the card records of it, and of the restart after its epochs if it had one
        (``recipes.restart``), which ends on the average of its weights too."""
        return {"started_from": self.started_from, "first_epoch": self.first_epoch,
                "restart_epochs": restart.epochs if restart else 0,
                "weight_average": recipes.WARM_AVERAGE if restart else self.average}  # fmt: skip


def starting_point(store: ObjectStore, config: TrainConfig) -> tuple[Any, Start]:
    """The reader to fit: a new one, or, with ``warm_start``, the reader champion, to go on
    from the epoch after the last whose strings it (and the readers it went on from) saw."""
    if not config.warm_start:
        return models.build(config.model), Start(None, 0)
    champion, _ = current_champion(store, READER)
    if champion is None:
        raise TrainingError(
            f"{config.model}: a warm start needs a reader champion to start from, and "
            f"{store.uri} has none: train and promote a reader first"
        )
    if champion.model_name != config.model:
        raise TrainingError(
            f"{config.model}: the reader champion is a {champion.model_name}, not a "
            f"{config.model}: a warm start goes on from a model of the same kind"
        )
    card = read_card(store, champion.training_run, champion.model_name, READER)
    seen = sum(int(card.params.get(k) or 0) for k in ("first_epoch", "epochs", "restart_epochs"))
    return load_model(store, champion.model_key, champion.sha256), Start(champion.id, seen)


def measure_sets(
    model: object, images: Images, seed: int, count: int
) -> dict[str, tuple[StringSet, Measured]]:
    """A fitted reader measured on ``count`` validation and as many test strings."""
    sets = {
        "validation": validation_strings(images, seed, count),
        "test": test_strings(images, seed, count),
    }
    return {part: (strings, measure(model, strings)) for part, strings in sets.items()}


def digit_scores(sets: dict[str, tuple[StringSet, Measured]]) -> dict[str, float]:
    """The card's digit accuracies of what ``measure_sets`` measured."""
    return {f"{part}_digit_accuracy": m.digit_accuracy for part, (_, m) in sets.items()}
