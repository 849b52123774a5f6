"""An ensemble candidate: one Keras model that averages its members' probabilities.

Built from trained candidates of one training run (each checksum-verified as it is
loaded), evaluated on validation and test as training evaluates a model, and stored as
the run's candidate ``ensemble``. It is stored, loaded, gated and scored like any single
model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from digitflow import runtime
from digitflow.candidates import Card, CardDraft, Member, read_card
from digitflow.errors import ModelError
from digitflow.fitting import INPUT, load_data, save_model
from digitflow.layout import CLASSIFIER
from digitflow.model_files import load_model
from digitflow.storage import ObjectStore, open_store
from digitflow.training import measure

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble"


def combine(members: list[Any], name: str = ENSEMBLE) -> Any:
    """A functional model whose output is the mean of ``members``' softmax outputs."""
    import keras

    names = [m.name for m in members]
    if len(members) < 2 or len(set(names)) != len(names):
        raise ModelError(f"an ensemble needs two or more differently named members, got {names}")
    inputs = keras.Input(shape=(28, 28, 1), name="digits")
    mean = keras.layers.Average(name="mean_probabilities")([m(inputs) for m in members])
    return keras.Model(inputs, mean, name=name)


def member_cards(store: ObjectStore, training_run: str, members: list[str]) -> list[Card]:
    """The members' cards; ModelError unless they are distinct and share a dataset version."""
    if len(set(members)) != len(members) or len(members) < 2:
        raise ModelError(f"an ensemble needs two or more distinct members, got {members}")
    if ENSEMBLE in members:
        raise ModelError(f"{ENSEMBLE!r} cannot be a member of itself")
    cards = [read_card(store, training_run, name) for name in members]
    versions = {c.dataset_version for c in cards}
    if len(versions) > 1:
        raise ModelError(
            f"members of {training_run} were trained on different dataset versions "
            f"{sorted(versions)}: retrain them on one version before combining them"
        )
    return cards


def build_ensemble(
    store: ObjectStore,
    training_run: str,
    members: list[str],
    name: str = ENSEMBLE,
    threads: int | None = None,
) -> Card:
    """Average trained candidates of ``training_run`` into a new candidate ``name``."""
    start = time.perf_counter()
    device = runtime.configure(threads)
    cards = member_cards(store, training_run, members)
    model = combine([load_model(store, c.model_key, c.sha256) for c in cards], name)
    version = cards[0].dataset_version
    validation, test = measure(model, load_data(store, version, limit=None, seed=1))
    draft = CardDraft(
        training_run=training_run, model_name=name, dataset_version=version,
        validation=validation, test=test, parameter_count=int(model.count_params()),
        wall_s=time.perf_counter() - start, device=device, input=INPUT,
        params={"combine": "mean of member probabilities", "members": members},
        members=[Member(model_name=c.model_name, model_key=c.model_key, sha256=c.sha256,
                        val_error=c.val_error, test_error=c.test_error) for c in cards],
    )  # fmt: skip
    card = save_model(store, model, draft, CLASSIFIER)
    logger.info("%s of %s: validation error %.4f", name, ", ".join(members), card.val_error)
    return card


def ensemble_from_uri(
    store_uri: str,
    training_run: str,
    members: list[str],
    on_event: Callable[[Any], None] = lambda event: None,
    threads: int | None = None,
) -> Card:
    """``build_ensemble`` on the store a URI names (picklable, for ``run_in_process``)."""
    return build_ensemble(open_store(store_uri), training_run, members, threads=threads)
