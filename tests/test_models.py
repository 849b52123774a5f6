"""Every registered model: output shape, parameter count, one training step lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow import models
from digitflow.errors import ModelError

PARAMETERS = {"baseline_mlp": 623_290, "simple_cnn": 592_074, "larger_cnn": 59_933}


def test_seed_models_are_registered() -> None:
    assert set(models.SEED_MODELS) <= set(models.REGISTRY)


CLASSIFIERS = sorted(n for n in models.REGISTRY if models.role_of(n) == "classifier")


def test_every_model_has_a_role() -> None:
    assert {models.role_of(n) for n in models.REGISTRY} == set(models.ROLES)
    assert [n for n in models.REGISTRY if models.role_of(n) == "reader"] == list(models.READERS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_builder_shape_parameters_and_one_step(name: str) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = models.build(name)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    if name in PARAMETERS:
        assert model.count_params() == PARAMETERS[name]
    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, 32), 10)
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    before = float(model.evaluate(x, y, verbose=0))
    for _ in range(3):
        model.train_on_batch(x, y)
    assert float(model.evaluate(x, y, verbose=0)) < before


def test_unknown_model_fails_loudly_with_the_known_names() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'simple_cn'.*simple_cnn"):
        models.build("simple_cn")


@pytest.mark.parametrize("name", models.READERS)
def test_reader_reads_any_width_and_learns_from_one_step(name: str) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = models.build(name)
    assert model.input_shape == (None, 32, None, 1)
    rng = np.random.default_rng(0)
    for width in (16, 100, 333):  # one step per 4 columns, whatever the width
        logits = np.asarray(model(rng.random((2, 32, width, 1), dtype=np.float32)))
        assert logits.shape == (2, width // 4, 11)
    x = rng.random((16, 32, 96, 1), dtype=np.float32)
    y = np.zeros((16, 12), np.int32)
    y[:, :4] = rng.integers(1, 11, (16, 4))  # four digits each, 0 is the CTC blank
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CTC())
    before = float(model.evaluate(x, y, verbose=0))
    for _ in range(3):
        model.train_on_batch(x, y)
    assert float(model.evaluate(x, y, verbose=0)) < before
