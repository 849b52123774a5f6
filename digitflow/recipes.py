"""Training recipes: the hyper-parameters (declared once, here), learning-rate schedules,
and the profiles quick, seed and best.

A profile names models, their recipe and the ones to average into an ensemble: ``quick``
checks the whole path in a minute, ``seed`` is the brief's recipe for the three seed
models, ``best`` trains the challengers with augmentation and a cosine schedule, then two
epochs on the plain digits, and averages them into an ensemble candidate. Each profile
trains the line reader too, with a recipe of its own (``Profile.own``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from digitflow.errors import TrainingError
from digitflow.models import CHALLENGERS, READERS, SEED_MODELS

# The cosine schedule ends at this share of the peak rate.
FINAL_SHARE = 0.01
# A line reader is measured on this many strings of the validation slice (which select),
# as many of the test split (reported only) and, when tuned, as many guard strings.
READER_STRINGS = 1000


class Recipe(BaseModel):
    """How a model is trained; the defaults are the brief's seed recipe."""

    epochs: int = Field(default=10, ge=1, description="Epochs to train (the clean ones follow).")
    batch_size: int = Field(default=200, ge=1, description="Examples per batch.")
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam's (peak) learning rate.")
    limit: int | None = Field(default=None, ge=10, description="Train on this many examples.")
    seed: int = Field(
        default=1,
        description="Seeds shuffling and augmentation; an ensemble's members get seed, "
        "seed + 1, ... in the order listed.",
    )
    augment: bool = Field(default=False, description="Warp and re-stroke digits while fitting.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="cosine: one warm-up epoch, then decay to 1 %."
    )
    clean_epochs: int = Field(
        default=0,
        ge=0,
        description="Epochs on the plain digits at the schedule's final rate, after the others.",
    )
    warm_start: bool = Field(
        default=False,
        description="The line reader starts from the reader champion's weights, on strings "
        "it has not seen (the classifiers start afresh).",
    )
    restart_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="A line reader trained from new weights goes on for this share of its "
        "epochs more (rounded down), its schedule started again at half its peak rate, and "
        "ends on the moving average of its weights, as a warm start does (the classifiers "
        "ignore it).",
    )
    strings: int = Field(
        default=READER_STRINGS,
        ge=10,
        description="The line reader is measured on this many generated validation strings "
        "and as many test strings, and its gate compares it with the champion on the same "
        "(fewer: a quicker, less sure gate; the classifiers ignore it).",
    )


class TrainConfig(Recipe):
    """How to train one model: its recipe, and the size of its backend's thread pools."""

    model: str
    threads: int | None = Field(default=None, ge=1, description="Backend thread-pool size.")

    @property
    def total_epochs(self) -> int:
        """Every epoch of the run, the clean ones included."""
        return self.epochs + self.clean_epochs


ProfileName = Literal["quick", "seed", "best"]


@dataclass(frozen=True)
class Profile:
    """A starting point for a training run: its models, their recipe, its ensemble."""

    models: tuple[str, ...]
    recipe: Recipe
    ensemble: tuple[str, ...] = ()
    own: tuple[tuple[str, Recipe], ...] = ()  # models with a recipe of their own


# The challengers' recipe. Wall times on the 2-core CPU machine: benchmarks/challenger.py.
CHALLENGER = Recipe(
    epochs=30, batch_size=128, learning_rate=3e-3, augment=True, lr_schedule="cosine",
    clean_epochs=2,
)  # fmt: skip
# The line reader's recipe: an epoch is as many generated strings as it takes to write
# each training digit about once (``digitflow.reader.strings.strings_per_epoch``). Wall
# times on the 2-core CPU machine: the README's line-reader section.
# After its 48 epochs it goes on for 12 more from where it is, as a warm start from it
# would (``RESTART_RATE``, ``WARM_AVERAGE``): so it is the reader the README measures.
# Measured as such a warm start, it read about a point more of 1,080 real check amounts
# on average (+2.5, +0.8, +2.3 and -1.1: within one run's noise) and, in the one run where
# the gate compared them, misread fewer generated strings (docs/record/reading.md, "The
# restart in the recipe"). The `best`
# recipe's 144 epochs were not measured with it.
READER_RECIPE = Recipe(
    epochs=48, batch_size=64, learning_rate=2e-3, lr_schedule="cosine", restart_share=0.25
)
READER_BEST = READER_RECIPE.model_copy(update={"epochs": 144, "restart_share": 0.0})
READER_QUICK = READER_RECIPE.model_copy(update={"epochs": 2, "limit": 5000, "strings": 200})
# A reader that goes on from its champion (``warm_start``) ends on the moving average of
# its weights over its steps, at this momentum (about its last 500 steps; in a run of 12
# epochs the champion's weights keep 3 % of it, in a shorter one more): two runs read 6
# and 11 more of 1,080 real check amounts on the average than on their last step
# (docs/record/reading.md, "Readers averaged"); so does a reader's restart. A run from new
# weights ends on its last step: unmeasured with it, and a short one would end near its
# first.
WARM_AVERAGE = 0.998
# A reader's restart (``Recipe.restart_share``) peaks at this share of its recipe's rate:
# the warm starts measured went on at 1e-3 from readers trained at a peak of 2e-3.
RESTART_RATE = 0.5
# The reader champion fine-tuned on corrections (``digitflow.corrections.adapt``): short
# epochs at a low peak rate, half of each batch corrected lines and the rest generated,
# the batch normalisation frozen. Half corrected reads more of the user's fields than a
# quarter; at 12 epochs it fell just outside the gate's margin on MNIST's guard strings,
# at 24 just inside: measured against other shares, rates and lengths on real check
# amounts in docs/record/tuning.md.
ADAPT_RECIPE = Recipe(epochs=24, batch_size=32, learning_rate=3e-4, lr_schedule="cosine")
ADAPT_STEPS = 100  # batches an epoch
ADAPT_SHARE = 0.5  # of each batch: corrected lines
# On the generated strings of each batch, the tuned reader pays this times its divergence
# from the champion's reading (``digitflow.reader.training.Teacher``): it learns the
# user's hand without forgetting MNIST's.
ADAPT_DISTIL = 1.0
PROFILES: dict[str, Profile] = {
    "quick": Profile(SEED_MODELS + READERS, Recipe(epochs=2, limit=5000),
                     own=(("line_reader", READER_QUICK),)),
    "seed": Profile(SEED_MODELS + READERS, Recipe(), own=(("line_reader", READER_RECIPE),)),
    "best": Profile(CHALLENGERS + READERS, CHALLENGER, ensemble=CHALLENGERS,
                    own=(("line_reader", READER_BEST),)),
}  # fmt: skip


def member_seeds(seed: int, members: list[str]) -> dict[str, int]:
    """Each ensemble member's own seed (``seed``, ``seed + 1``, ...).

    With one seed for all, members see the batches in the same order under the same
    augmentations, and err on the same digits more often than they need to.
    """
    return {name: seed + k for k, name in enumerate(members)}


def restart(config: TrainConfig) -> TrainConfig | None:
    """The line reader's restart after its epochs (``Recipe.restart_share``), as the
    recipe of a run of its own: its epochs and peak rate. None where there is none: a warm
    start, which goes on from its champion's weights already, has none."""
    epochs = int(config.epochs * config.restart_share)
    if config.warm_start or epochs == 0:
        return None
    return config.model_copy(
        update={"epochs": epochs, "learning_rate": config.learning_rate * RESTART_RATE}
    )


def learning_rate(config: TrainConfig, examples: int) -> Any:
    """The optimizer's learning rate: a constant, or warm-up + cosine decay over the run.

    The warm-up lasts one epoch (at most a tenth of the run) and rises linearly from 0;
    the decay ends at 1 % of ``config.learning_rate`` (``FINAL_SHARE``).
    """
    import keras

    if config.lr_schedule == "constant":
        return config.learning_rate
    per_epoch = -(-examples // config.batch_size)
    steps = config.epochs * per_epoch
    warmup = min(per_epoch, steps // 10)
    if steps - warmup < 1:
        raise TrainingError(f"{config.model}: a cosine schedule needs at least 2 batches")
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        steps - warmup,
        alpha=FINAL_SHARE,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def final_rate(config: TrainConfig) -> float:
    """The rate the schedule ends at: that of the clean epochs which follow it."""
    share = FINAL_SHARE if config.lr_schedule == "cosine" else 1.0
    return config.learning_rate * share
