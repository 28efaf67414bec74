"""Dropout family: distributions with 5-sigma binomial bounds, the rate variable, errors."""

import math

import keras
import numpy as np
import pytest

import kerascnn.layers as L


def binomial_bound(p, n, sigmas=5.0):
    return sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.jax
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_keep_fraction_and_inverted_scaling(rate):
    n = 200_000
    x = np.ones((n,), "float32")
    y = np.asarray(L.dropout(x, rate, seed=keras.random.SeedGenerator(3)))
    kept = y != 0
    assert abs(kept.mean() - (1 - rate)) < binomial_bound(rate, n)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    # mean preserved: each entry has mean 1 and variance rate / (1 - rate)
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(rate / (1 - rate) / n)


@pytest.mark.jax
def test_layer_matches_function_distribution_and_rate_variable():
    layer = L.Dropout(0.25, seed=7)
    x = np.ones((100_000,), "float32")
    assert abs((np.asarray(layer(x, training=True)) == 0).mean() - 0.25) < binomial_bound(
        0.25, x.size
    )
    layer.set_rate(0.6)
    assert layer.current_rate == pytest.approx(0.6)
    assert abs((np.asarray(layer(x, training=True)) == 0).mean() - 0.6) < binomial_bound(
        0.6, x.size
    )
    assert layer.get_config()["rate"] == 0.25  # the constructor rate
    with pytest.raises(ValueError, match="rate must be a number in"):
        layer.set_rate(1.0)


@pytest.mark.jax
def test_rate_change_seen_by_compiled_function_without_retracing():
    # predict runs with training=False, so use the always-on member of the family
    x = np.ones((1, 50_000), "float32")
    layer = L.MCDropout(0.0, seed=1)
    model = keras.Sequential([keras.Input((x.shape[1],)), layer])
    model.compile(jit_compile=True)

    def fraction():
        return float((model.predict_on_batch(x) == 0).mean())

    assert fraction() == 0.0
    layer.set_rate(0.5)
    assert abs(fraction() - 0.5) < binomial_bound(0.5, x.size)
    if keras.backend.backend() == "tensorflow":
        assert model.predict_function.experimental_get_tracing_count() == 1


@pytest.mark.jax
def test_mc_dropout_is_on_without_training():
    y = np.asarray(L.MCDropout(0.5, seed=0)(np.ones((10_000,), "float32")))
    assert abs((y == 0).mean() - 0.5) < binomial_bound(0.5, y.size)


@pytest.mark.jax
@pytest.mark.parametrize(
    "shape,data_format",
    [
        ((400, 16, 32), "channels_last"),
        ((400, 32, 6, 6), "channels_first"),
        ((200, 3, 3, 3, 32), "channels_last"),
    ],
)
def test_spatial_dropout_drops_whole_channels(shape, data_format):
    rate = 0.3
    x = np.ones(shape, "float32")
    y = np.asarray(L.SpatialDropout(rate, data_format=data_format, seed=2)(x, training=True))
    channel_axis = -1 if data_format == "channels_last" else 1
    y = np.moveaxis(y, channel_axis, -1).reshape(
        shape[0], -1, np.moveaxis(x, channel_axis, -1).shape[-1]
    )
    per_channel_max, per_channel_min = y.max(axis=1), y.min(axis=1)
    np.testing.assert_array_equal(per_channel_max, per_channel_min)  # all of a channel or nothing
    dropped = per_channel_max == 0
    assert abs(dropped.mean() - rate) < binomial_bound(rate, dropped.size)
    np.testing.assert_allclose(per_channel_max[~dropped], 1 / (1 - rate), rtol=1e-6)


@pytest.mark.jax
def test_spatial_dropout_same_distribution_as_keras():
    rate, shape = 0.4, (500, 4, 4, 40)
    x = np.ones(shape, "float32")
    ours = np.asarray(L.SpatialDropout(rate, seed=5)(x, training=True))[:, 0, 0, :]
    theirs = np.asarray(keras.layers.SpatialDropout2D(rate, seed=5)(x, training=True))[:, 0, 0, :]
    n = ours.size
    for sample in (ours, theirs):
        assert abs((sample == 0).mean() - rate) < binomial_bound(rate, n)
    assert abs((ours == 0).mean() - (theirs == 0).mean()) < math.sqrt(2) * binomial_bound(rate, n)
    assert set(np.unique(ours)) == set(np.unique(theirs)) == {0.0, np.float32(1 / (1 - rate))}


def test_errors_name_argument_and_value():
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\); received rate=1.5"):
        L.Dropout(1.5)
    with pytest.raises(ValueError, match="received rate=True"):
        L.SpatialDropout(True)
    with pytest.raises(ValueError, match="seed must be None or an integer; received seed='a'"):
        L.Dropout(0.1, seed="a")
    with pytest.raises(
        ValueError, match="data_format must be None, 'channels_last' or 'channels_first'"
    ):
        L.SpatialDropout(0.1, data_format="nhwc")
    with pytest.raises(ValueError, match="3-D, 4-D or 5-D"):
        L.SpatialDropout(0.1)(np.ones((2, 3), "float32"))
