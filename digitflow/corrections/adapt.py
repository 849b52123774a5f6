"""The reader champion fine-tuned on people's corrections, as a new reader candidate.

A share of each batch is corrected lines (drawn again and again, each time a little
stretched, shifted and re-stroked), the rest strings generated from MNIST's training
digits, so the reader learns the user's documents without forgetting the digits it was
trained on: on the generated strings it is also held to the champion's own reading (a
frozen copy of the champion as teacher, ``digitflow.reader.training.Teacher``), and its
batch statistics stay the champion's. The
candidate's card names the corrections version it learned from and the champion it
started from; the gate (``digitflow.corrections.gate``) weighs it on the held-out
corrections and on MNIST's guard strings together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from digitflow import recipes, runtime
from digitflow.candidates import Card, CardDraft
from digitflow.corrections.dataset import HELDOUT_EVERY, CorrectedLines, read_part
from digitflow.errors import ModelError, TrainingError
from digitflow.fitting import EpochMetrics, load_images
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.pointer import Champion, current_champion
from digitflow.reader import field, synth
from digitflow.reader.candidate import (
    INPUT,
    digit_scores,
    guard_strings,
    measure,
    measure_sets,
    reporter,
    save_reader,
    validation_seed,
)
from digitflow.reader.strings import MAX_WIDTH, StringBatches, squeeze
from digitflow.reader.synth import Digits
from digitflow.reader.training import Teacher, evaluate, fit_reader
from digitflow.recipes import TrainConfig
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)

MIN_CORRECTIONS = 10  # fewer corrected lines to learn from teach nothing worth a candidate


@dataclass(frozen=True)
class MixedBatches:
    """Batches of corrected lines and generated strings, a function of (epoch, index)."""

    lines: CorrectedLines
    generated: StringBatches
    corrected: int  # corrected lines in each batch
    seed: int
    max_width: int = MAX_WIDTH

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: inputs (n, 32, W, 1) and CTC labels (n, 12)."""
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        x, labels = self.generated.batch(epoch, index)
        inputs = [x[k, :, :, 0] for k in range(len(x))]
        extra = np.zeros((self.corrected, labels.shape[1]), np.int32)
        for k, pick in enumerate(rng.integers(0, len(self.lines), self.corrected)):
            inputs.append(squeeze(_jitter(self.lines.images[pick], rng), self.max_width))
            extra[k, : len(self.lines.texts[pick])] = [int(c) + 1 for c in self.lines.texts[pick]]
        batch, _ = field.pad_batch(inputs)
        return batch, np.concatenate([labels, extra])


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A corrected line a little stretched, shifted and thinned or thickened, in [0, 1]."""
    width = max(field.STRIDE, round(image.shape[1] * rng.uniform(0.85, 1.15)))
    out = cv2.resize(image, (width, field.HEIGHT), interpolation=cv2.INTER_LINEAR)
    shift = int(rng.integers(-2, 3))
    out = np.roll(out, shift, axis=0)
    if shift > 0:
        out[:shift] = 0
    elif shift < 0:
        out[shift:] = 0
    stroke = rng.uniform()
    if stroke < 0.2:
        out = cv2.erode(out, np.ones((2, 2), np.uint8))
    elif stroke < 0.4:
        out = cv2.dilate(out, np.ones((2, 2), np.uint8))
    return out.astype(np.float32) * (1.0 / 255.0)


def freeze_normalisation(model: Any) -> None:
    """Keep the champion's batch statistics: a few hundred lines of one kind of document
    would otherwise shift them, and the reader would forget the digits it knew."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # Keras 3: also runs the layer in inference mode


def trainable(lines: CorrectedLines) -> CorrectedLines:
    """The lines a reader can learn: at most as many digits as its labels hold."""
    keep = [k for k, t in enumerate(lines.texts) if len(t) <= synth.MAX_DIGITS]
    return CorrectedLines([lines.ids[k] for k in keep], [lines.images[k] for k in keep],
                          [lines.texts[k] for k in keep])  # fmt: skip


def ready(
    store: ObjectStore, corrections_version: str
) -> tuple[Champion, CorrectedLines, CorrectedLines]:
    """The reader champion to tune, the corrected lines it can learn from and the held-out
    ones, checked before any tuning: without a champion, with too few lines to learn from,
    or with none held out for the gate to judge the tuned reader on, there is no candidate
    to make (ModelError, TrainingError)."""
    champion, _ = current_champion(store, READER)
    if champion is None:
        raise ModelError(f"no line reader champion in {store.uri} to adapt: train and promote "
                         "one first (`digitflow retrain`)")  # fmt: skip
    lines = trainable(read_part(store, corrections_version, "train"))
    if len(lines) < MIN_CORRECTIONS:
        raise TrainingError(
            f"corrections {corrections_version} hold {len(lines)} lines to learn from; "
            f"adapting needs at least {MIN_CORRECTIONS}: review more, then run it again"
        )
    heldout = read_part(store, corrections_version, "heldout")
    if not len(heldout):
        raise TrainingError(
            f"corrections {corrections_version} hold no held-out line (one in "
            f"{HELDOUT_EVERY} is held out, by where it lies), so the gate could not judge a "
            "reader tuned on them: review more, then run it again"
        )
    return champion, lines, heldout


def adapt_reader(
    store: ObjectStore, dataset_version: str, corrections_version: str, training_run: str,
    config: TrainConfig | None = None, on_epoch: Callable[[EpochMetrics], None] = lambda m: None,
    steps: int = recipes.ADAPT_STEPS,
) -> Card:  # fmt: skip
    """Fine-tune the reader champion on a corrections version; store it as a candidate."""
    start = time.perf_counter()
    config = config or TrainConfig(model="line_reader", **recipes.ADAPT_RECIPE.model_dump())
    champion, lines, heldout = ready(store, corrections_version)
    device = runtime.configure(config.threads)
    import keras

    runtime.set_seeds(config.seed)
    model = load_model(store, champion.model_key, champion.sha256)
    freeze_normalisation(model)
    images = load_images(store, dataset_version, config.limit, config.seed)
    seed = validation_seed(store, dataset_version)
    corrected = max(1, round(config.batch_size * recipes.ADAPT_SHARE))
    generated = StringBatches(Digits(images.train, images.train_labels),
                              config.batch_size - corrected, config.seed)  # fmt: skip
    source = MixedBatches(lines, generated, corrected, config.seed)
    teacher = None
    if recipes.ADAPT_DISTIL > 0:  # the champion as it was loaded, before any step
        teacher = Teacher(keras.models.clone_model(model), rows=generated.batch_size,
                          weight=recipes.ADAPT_DISTIL)  # fmt: skip
        teacher.model.set_weights(model.get_weights())
    logger.info("adapting %s on %d corrected lines (%s)", champion.id, len(lines), device)
    fit_reader(
        model, source, heldout.labelled(), epochs=config.epochs, steps_per_epoch=steps,
        rate=recipes.learning_rate(config, steps * config.batch_size),
        learning_rate=config.learning_rate,
        on_epoch=reporter(config, on_epoch), teacher=teacher,
    )  # fmt: skip
    sets = measure_sets(model, images, seed, config.strings)
    scores = digit_scores(sets)
    guard = guard_strings(images, seed, config.strings)
    sets["guard"] = (guard, measure(model, guard))
    scores["heldout_corrections_exact"] = evaluate(model, heldout.labelled())[0]
    draft = CardDraft(
        training_run=training_run, model_name=config.model, role="reader",
        dataset_version=dataset_version, validation=sets["validation"][1].split,
        test=sets["test"][1].split,
        parameter_count=int(model.count_params()), wall_s=time.perf_counter() - start,
        device=device, input=INPUT, params={**config.model_dump(), "distil": recipes.ADAPT_DISTIL},
        train_examples=len(lines), scores=scores,
        corrections_version=corrections_version, adapted_from=champion.id,
    )  # fmt: skip
    return save_reader(store, model, draft, sets)


def adapt_from_uri(
    store_uri: str, dataset_version: str, corrections_version: str, training_run: str,
    config: TrainConfig, steps: int, on_event: Callable[[EpochMetrics], None],
) -> Card:  # fmt: skip
    """``adapt_reader`` on the store a URI names (picklable arguments, for a child process)."""
    from digitflow.storage import open_store

    return adapt_reader(open_store(store_uri), dataset_version, corrections_version,
                        training_run, config, on_event, steps)  # fmt: skip
