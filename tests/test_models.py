"""Every registered model: output shape, parameter count, one training step lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow import models
from digitflow.errors import ModelError

PARAMETERS = {"baseline_mlp": 623_290, "simple_cnn": 592_074, "larger_cnn": 59_933}


def test_seed_models_are_registered() -> None:
    assert set(models.SEED_MODELS) <= set(models.REGISTRY)


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
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
