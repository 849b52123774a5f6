"""Challenger models, training-time augmentation, recipes and the ensemble candidate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from digitflow import models, recipes
from digitflow.errors import ModelError, ParameterError
from digitflow.plan import TrainRequest, plan_training
from digitflow.recipes import READER_BEST, Recipe, TrainConfig
from digitflow.storage import LocalStore
from tests.conftest import clone_store

PARAMETERS = {
    "challenger_cnn": 141_098,
    "challenger_dense": 871_210,
    "challenger_small": 132_266,
    "challenger_strided": 515_242,
}


def digits(n: int = 16, seed: int = 0) -> np.ndarray:
    """Synthetic float32 (n, 28, 28, 1) 'digits': a bright bar and a ring, jittered."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    images = np.zeros((n, 28, 28, 1), np.float32)
    for k in range(n):
        cy, cx = 14 + rng.integers(-3, 4, 2)
        ring = np.abs(np.hypot(yy - cy, xx - cx) - 6) < 1.5
        images[k, ..., 0] = np.where(ring | ((xx == cx) & (abs(yy - cy) < 9)), 1.0, 0.0)
    return images


@pytest.fixture
def store_copy(mnist_store: tuple[str, str], tmp_path: Path) -> tuple[LocalStore, str]:
    """A copy of the MNIST store this test may write to, and its dataset version."""
    uri, version = mnist_store
    return LocalStore(clone_store(uri, tmp_path / "store")), version


def test_challengers_are_registered_but_not_trained_by_default() -> None:
    assert set(models.CHALLENGERS) <= set(models.REGISTRY)
    assert not set(models.CHALLENGERS) & set(models.SEED_MODELS)


@pytest.mark.parametrize("name", models.CHALLENGERS)
def test_challenger_shape_parameters_and_batch_norm(name: str) -> None:
    model = models.build(name)
    print(f"{name}: {model.count_params():,} parameters")
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert model.count_params() == PARAMETERS[name]
    assert any(type(layer).__name__ == "BatchNormalization" for layer in model.layers)


def test_challenger_trains_with_augmentation_and_round_trips_in_safe_mode(tmp_path: Path) -> None:
    import keras

    from digitflow.augment import with_augmentation

    keras.utils.set_random_seed(0)
    model = models.build("challenger_cnn")
    x = digits(32)
    y = keras.utils.to_categorical(np.arange(32) % 2, 10)
    trainee = with_augmentation(model, seed=0)
    trainee.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    losses = [float(trainee.train_on_batch(x, y)) for _ in range(4)]
    assert losses[-1] < losses[0]
    path = tmp_path / "model.keras"
    model.save(path)  # the plain classifier: the augmentation stays behind
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert not any("augment" in layer.name for layer in loaded.layers)
    np.testing.assert_array_equal(
        np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False))
    )


def test_augmentation_is_identity_at_inference_and_changes_images_in_training() -> None:
    from digitflow.augment import augmentation

    x = digits(64)
    pipeline = augmentation(seed=3)
    np.testing.assert_array_equal(np.asarray(pipeline(x, training=False)), x)
    first = np.asarray(pipeline(x, training=True))
    second = np.asarray(pipeline(x, training=True))
    assert first.shape == x.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0 + 1e-6
    changed = np.abs(first - x).reshape(64, -1).mean(axis=1)
    assert (changed > 0.01).mean() > 0.9  # nearly every image moved
    assert np.abs(first - second).mean() > 0.01  # fresh randomness each batch
    ink = first.reshape(64, -1).sum(axis=1) / x.reshape(64, -1).sum(axis=1)
    assert ink.min() > 0.5 and ink.max() < 2.0  # still a digit, not a blur or a blot


def test_bilinear_sampling_shifts_exactly_and_fills_with_background() -> None:
    from digitflow.augment import bilinear_sample

    x = digits(2)
    rows = np.arange(28, dtype=np.float32)[None, :, None] + np.zeros((2, 28, 28), np.float32)
    cols = np.arange(28, dtype=np.float32)[None, None, :] + np.zeros((2, 28, 28), np.float32)
    np.testing.assert_allclose(np.asarray(bilinear_sample(x, rows, cols)), x, atol=1e-6)
    shifted = np.asarray(bilinear_sample(x, rows, cols - 1.0))  # read one pixel to the left
    np.testing.assert_allclose(shifted[:, :, 1:], x[:, :, :-1], atol=1e-6)
    assert np.all(shifted[:, :, 0] == 0.0)
    half = np.asarray(bilinear_sample(x, rows, cols + 0.5))
    np.testing.assert_allclose(half[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, atol=1e-6)


def test_custom_layers_are_registered_and_load_in_safe_mode(tmp_path: Path) -> None:
    import keras

    from digitflow.augment import RandomWarp, StrokeWidth

    inputs = keras.Input((28, 28, 1))
    x = StrokeWidth(thicken=0.5, seed=2)(RandomWarp(degrees=7.0, seed=1)(inputs))
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    model.save(tmp_path / "aug.keras")
    loaded = keras.saving.load_model(tmp_path / "aug.keras", safe_mode=True)
    assert isinstance(loaded.layers[1], RandomWarp) and loaded.layers[1].degrees == 7.0
    assert isinstance(loaded.layers[2], StrokeWidth) and loaded.layers[2].thicken == 0.5


def test_cosine_schedule_warms_up_then_decays() -> None:
    config = TrainConfig(model="challenger_cnn", epochs=10, batch_size=100, lr_schedule="cosine")
    schedule = recipes.learning_rate(config, examples=1000)  # 10 steps an epoch
    lrs = [float(schedule(step)) for step in (0, 5, 10, 50, 100)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(1e-3)
    assert lrs[2] > lrs[3] > lrs[4] and lrs[4] == pytest.approx(1e-5)
    assert recipes.learning_rate(TrainConfig(model="larger_cnn"), 1000) == 1e-3  # seed recipe


def test_clean_epochs_run_at_the_rate_the_schedule_ends_at() -> None:
    cosine = TrainConfig(model="challenger_cnn", learning_rate=3e-3, lr_schedule="cosine")
    assert recipes.final_rate(cosine) == pytest.approx(3e-5)
    schedule = recipes.learning_rate(cosine, examples=1000)
    assert float(schedule(cosine.epochs * 5)) == pytest.approx(3e-5)  # 5 steps an epoch
    assert recipes.final_rate(TrainConfig(model="larger_cnn", learning_rate=2e-3)) == 2e-3


@pytest.mark.slow
def test_clean_epochs_follow_the_augmented_ones(store_copy: tuple[LocalStore, str]) -> None:
    from digitflow.fitting import EpochMetrics
    from digitflow.training import train_model

    store, version = store_copy
    config = TrainConfig(
        model="simple_cnn", epochs=2, clean_epochs=1, limit=600, augment=True, lr_schedule="cosine"
    )
    epochs: list[EpochMetrics] = []
    record = train_model(store, version, config, "run-c", on_epoch=epochs.append)
    assert [(m.epoch, m.epochs) for m in epochs] == [(1, 3), (2, 3), (3, 3)]
    card = json.loads(store.read_bytes(record.card_key))
    assert card["params"]["clean_epochs"] == 1
    history = json.loads(store.read_bytes(card["history_key"]))
    assert {len(values) for values in history.values()} == {3}


def test_profiles_fill_what_is_not_given() -> None:
    best = TrainRequest(profile="best", epochs=1)
    assert best.epochs == 1 and best.augment is True and best.lr_schedule == "cosine"
    assert best.clean_epochs == 2 and best.batch_size == 128
    assert best.models == [*models.CHALLENGERS, *models.READERS]
    assert best.ensemble == list(models.CHALLENGERS)
    quick = TrainRequest(profile="quick")
    assert quick.models == [*models.SEED_MODELS, *models.READERS] and quick.limit == 5000
    assert quick.ensemble == [] and TrainRequest().profile == "seed"
    with pytest.raises(ValidationError, match="profile"):
        TrainRequest.model_validate({"profile": "fast"})


def test_a_profiles_ensemble_shrinks_to_the_models_named() -> None:
    two = TrainRequest(profile="best", models=["challenger_cnn", "challenger_small"])
    assert two.ensemble == ["challenger_cnn", "challenger_small"]
    assert TrainRequest(profile="best", models=["challenger_dense"]).ensemble == []
    assert TrainRequest(profile="best", ensemble=[]).ensemble == []  # asked for none


def test_the_plan_hands_the_profile_recipe_to_every_model() -> None:
    request = TrainRequest(profile="best", overrides={"challenger_small": {"epochs": 5}})
    configs = {c.model: c for c in plan_training(request).configs}
    assert set(configs) == {*models.CHALLENGERS, *models.READERS}
    for name in models.CHALLENGERS:
        config = configs[name]
        assert config.augment and config.lr_schedule == "cosine" and config.clean_epochs == 2
        assert config.total_epochs == (7 if name == "challenger_small" else 32)
    reader = configs["line_reader"]  # its own recipe, not the challengers'
    assert reader.model_dump(include=set(Recipe.model_fields)) == READER_BEST.model_dump()


def test_the_quick_readers_strings_are_few_and_the_option_wins_over_them() -> None:
    def reader(request: TrainRequest) -> int:
        return {c.model: c for c in plan_training(request).configs}["line_reader"].strings

    assert reader(TrainRequest(profile="quick")) == 200
    assert reader(TrainRequest(profile="quick", strings=500)) == 500
    assert reader(TrainRequest()) == recipes.READER_STRINGS


def test_the_line_reader_keeps_its_recipe_under_the_options_given() -> None:
    given = TrainRequest(epochs=2, limit=3000)  # the main job's shrunk options
    configs = {c.model: c for c in plan_training(given).configs}
    assert {c.epochs for c in configs.values()} == {2}
    assert {c.limit for c in configs.values()} == {3000}
    reader = configs["line_reader"]
    assert (reader.batch_size, reader.learning_rate) == (64, 2e-3)
    assert configs["simple_cnn"].batch_size == 200
    cores = os.cpu_count() or 1
    assert reader.threads == cores and configs["simple_cnn"].threads == max(1, cores // 4)
    with pytest.raises(ParameterError, match="only classifiers"):
        plan_training(TrainRequest(models=["simple_cnn", "line_reader"],
                                   ensemble=["simple_cnn", "line_reader"]))  # fmt: skip


def test_the_seed_reader_restarts_for_a_quarter_of_its_epochs_and_a_warm_start_never() -> None:
    def reader(request: TrainRequest) -> TrainConfig:
        return {c.model: c for c in plan_training(request).configs}["line_reader"]

    again = recipes.restart(reader(TrainRequest()))  # the main job's reader: 48 epochs
    assert again is not None
    assert (again.epochs, again.learning_rate) == (12, 1e-3)
    assert again.lr_schedule == "cosine" and again.batch_size == 64
    shorter = recipes.restart(reader(TrainRequest(epochs=8, learning_rate=4e-3)))
    assert shorter is not None and (shorter.epochs, shorter.learning_rate) == (2, 2e-3)
    assert recipes.restart(reader(TrainRequest(epochs=2))) is None  # CI's: under one epoch
    assert recipes.restart(reader(TrainRequest(profile="quick"))) is None
    assert recipes.restart(reader(TrainRequest(profile="best"))) is None  # not measured
    assert recipes.restart(reader(TrainRequest(warm_start=True))) is None
    assert recipes.restart(reader(TrainRequest(restart_share=0.0))) is None
    assert recipes.restart(TrainConfig(model="simple_cnn", epochs=48)) is None
    with pytest.raises(ValidationError):
        Recipe(restart_share=1.5)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"models": ["simple_cnn"], "ensemble": ["simple_cnn", "larger_cnn"]}, "ensemble"),
        ({"models": ["simple_cnn", "larger_cnn"], "ensemble": ["simple_cnn"]}, "ensemble"),
        ({"models": ["simple_cnn", "simple_cnn"]}, "models"),
        ({"overrides": {"challenger_cnn": {"epochs": 2}}}, "overrides"),
        ({"overrides": {"simple_cnn": {"epochs": 0}}}, "overrides"),
    ],
)
def test_a_plan_that_cannot_work_names_the_parameter(fields: dict, field: str) -> None:
    with pytest.raises(ParameterError) as error:
        plan_training(TrainRequest(**fields))
    assert error.value.field == field


def test_an_unknown_model_is_refused_with_the_registered_names() -> None:
    with pytest.raises(ModelError, match="unknown model 'resnet'.*baseline_mlp"):
        plan_training(TrainRequest(models=["baseline_mlp", "resnet"]))


def test_ensemble_members_train_with_seeds_of_their_own() -> None:
    request = TrainRequest(
        models=["baseline_mlp", "simple_cnn", "larger_cnn"], ensemble=["simple_cnn", "larger_cnn"],
        seed=5, overrides={"larger_cnn": {"seed": 40}},
    )  # fmt: skip
    seeds = {c.model: c.seed for c in plan_training(request).configs}
    assert seeds == {"baseline_mlp": 5, "simple_cnn": 5, "larger_cnn": 40}
    del request.overrides["larger_cnn"]
    assert plan_training(request).configs[2].seed == 6
    alone = TrainRequest(models=["simple_cnn", "larger_cnn"], seed=5)
    assert {config.seed for config in plan_training(alone).configs} == {5}


def test_threads_share_the_cores_in_local_mode_only() -> None:
    local = plan_training(TrainRequest(models=list(models.SEED_MODELS))).configs
    assert {c.threads for c in local} == {max(1, (os.cpu_count() or 1) // 3)}
    assert {c.threads for c in plan_training(TrainRequest(mode="workers")).configs} == {None}


@pytest.mark.slow
def test_ensemble_averages_members_and_loads_like_any_candidate(
    store_copy: tuple[LocalStore, str],
) -> None:
    from digitflow.candidates import read_card
    from digitflow.ensemble import build_ensemble
    from digitflow.fitting import load_data
    from digitflow.model_files import load_model
    from digitflow.training import train_model

    store, version = store_copy
    members = ["baseline_mlp", "simple_cnn"]
    for name in members:
        train_model(store, version, TrainConfig(model=name, epochs=1, limit=1000), "run-e")
    record = build_ensemble(store, "run-e", members)
    card = json.loads(store.read_bytes(record.card_key))
    assert record.model_key == "models/candidates/run-e/ensemble/model.keras"
    assert card["params"]["members"] == members
    assert [m["model_name"] for m in card["members"]] == members
    cards = [read_card(store, "run-e", name) for name in members]
    assert [m["sha256"] for m in card["members"]] == [c.sha256 for c in cards]
    ensemble = load_model(store, record.model_key, record.sha256)
    x = load_data(store, version, limit=100, seed=1).x_val[:200]
    loaded = [load_model(store, c.model_key, c.sha256) for c in cards]
    mean = np.mean([np.asarray(m(x, training=False)) for m in loaded], axis=0)
    np.testing.assert_allclose(np.asarray(ensemble(x, training=False)), mean, atol=1e-6)
    assert record.val_error == pytest.approx(card["validation"]["error"])


@pytest.mark.slow
def test_ensemble_refuses_a_tampered_member(store_copy: tuple[LocalStore, str]) -> None:
    from digitflow.ensemble import build_ensemble
    from digitflow.training import train_model

    store, version = store_copy
    for name in ("baseline_mlp", "larger_cnn"):
        train_model(store, version, TrainConfig(model=name, epochs=1, limit=200), "run-t")
    key = "models/candidates/run-t/larger_cnn/model.keras"
    store.write_bytes(key, store.read_bytes(key)[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="does not match the card"):
        build_ensemble(store, "run-t", ["baseline_mlp", "larger_cnn"])
    assert not store.exists("models/candidates/run-t/ensemble/card.json")
    with pytest.raises(ModelError, match="two or more distinct"):
        build_ensemble(store, "run-t", ["baseline_mlp", "baseline_mlp"])
