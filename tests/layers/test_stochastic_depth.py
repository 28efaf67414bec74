"""Stochastic depth: per-example drop of the whole branch, inverted scaling, decay rule."""

import math

import keras
import numpy as np
import pytest

import kerascnn
import kerascnn.layers as L


@pytest.mark.jax
@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_drop_path_drops_whole_examples(scale_by_keep):
    rate, n = 0.3, 20_000
    x = np.ones((n, 3, 3, 2), "float32")
    y = np.asarray(
        L.drop_path(x, rate, seed=keras.random.SeedGenerator(0), scale_by_keep=scale_by_keep)
    )
    flat = y.reshape(n, -1)
    np.testing.assert_array_equal(flat.max(axis=1), flat.min(axis=1))  # whole example or nothing
    dropped = flat[:, 0] == 0
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    scale = 1 / (1 - rate) if scale_by_keep else 1.0
    np.testing.assert_allclose(flat[~dropped, 0], scale, rtol=1e-6)
    if scale_by_keep:  # mean preserved
        assert abs(flat[:, 0].mean() - 1) < 5 * math.sqrt(rate / (1 - rate) / n)


@pytest.mark.jax
def test_layer_wraps_function_and_is_identity_unless_training():
    x = np.random.default_rng(0).normal(size=(1000, 4)).astype("float32")
    layer = L.StochasticDepth(0.5, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(L.drop_path(x, 0.5, training=False), x)
    y = np.asarray(layer(x, training=True))
    kept = np.all(y != 0, axis=1)
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-6)
    assert abs(kept.mean() - 0.5) < 5 * math.sqrt(0.25 / 1000)


def test_linear_decay_rule_and_resnet_uses_it():
    assert L.linear_drop_path_rates(0.5, 4) == [0.125, 0.25, 0.375, 0.5]
    with pytest.raises(
        ValueError, match="num_blocks must be an integer >= 1; received num_blocks=0"
    ):
        L.linear_drop_path_rates(0.1, 0)
    with pytest.raises(ValueError, match="received rate=1"):
        L.linear_drop_path_rates(1, 3)
    model = kerascnn.zoo.resnet(depth=20, drop_path_rate=0.3, input_shape=(16, 16, 3))
    rates = [layer.rate for layer in model.layers if isinstance(layer, L.StochasticDepth)]
    assert rates == pytest.approx(L.linear_drop_path_rates(0.3, 9))
