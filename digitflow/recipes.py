"""Training recipes: learning-rate schedules, and the profiles quick, seed and best.

A profile is a set of train-flow parameters: ``quick`` checks the whole path in a minute,
``seed`` is the brief's recipe for the three seed models, ``best`` trains the challengers
with augmentation and a cosine schedule, then two epochs on the plain digits, and averages
them into an ensemble candidate.
Parameters given explicitly win over the profile's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from digitflow.errors import TrainingError
from digitflow.models import CHALLENGERS, SEED_MODELS

if TYPE_CHECKING:
    from digitflow.training import TrainConfig

Profile = Literal["quick", "seed", "best"]

# The challengers' recipe, as TrainConfig fields.
CHALLENGER: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 128,
    "learning_rate": 3e-3,
    "augment": True,
    "lr_schedule": "cosine",
    "clean_epochs": 2,
}
# The cosine schedule ends at this share of the peak rate.
FINAL_SHARE = 0.01
# Wall times on the 2-core CPU machine: see benchmarks/challenger.py's docstring.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"models": list(SEED_MODELS), "epochs": 2, "limit": 5000},
    "seed": {"models": list(SEED_MODELS), "epochs": 10, "batch_size": 200, "learning_rate": 1e-3},
    "best": {"models": list(CHALLENGERS), **CHALLENGER, "ensemble": list(CHALLENGERS)},
}


def apply_profile(fields: dict[str, Any]) -> dict[str, Any]:
    """Train-flow parameters with ``fields["profile"]``'s values under the explicit ones."""
    name = fields.get("profile") or "seed"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return {**PROFILES[name], **fields, "profile": name}


def member_seeds(seed: int, members: list[str]) -> dict[str, int]:
    """Each ensemble member's own seed (``seed``, ``seed + 1``, ...).

    With one seed for all, members see the batches in the same order under the same
    augmentations, and err on the same digits more often than they need to.
    """
    return {name: seed + k for k, name in enumerate(members)}


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
