"""DropConnect: fraction of dropped weights (5-sigma binomial bound), scaling, per-batch mask."""

import math

import keras
import numpy as np
import pytest

import kerascnn.layers as L
from kerascnn.errors import UserInputError


def bound(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.jax
def test_drop_connect_function_fraction_and_scaling():
    w = np.random.default_rng(0).normal(size=(300, 300)).astype("float32")
    y = np.asarray(L.drop_connect(w, 0.4, seed=keras.random.SeedGenerator(1)))
    dropped = y == 0
    assert abs(dropped.mean() - 0.4) < bound(0.4, w.size)
    np.testing.assert_allclose(y[~dropped], w[~dropped] / 0.6, rtol=1e-6)


@pytest.mark.jax
def test_dense_training_uses_masked_kernel_shared_by_batch_and_inference_full_kernel():
    rate, d, units = 0.3, 128, 96
    layer = L.DropConnectDense(units, rate=rate, seed=4, bias_initializer="ones")
    eye = np.eye(d, dtype="float32")
    layer.build((None, d))
    kernel = np.asarray(layer.kernel)
    effective = np.asarray(layer(eye, training=True)) - 1.0  # row i = row i of the masked kernel
    dropped = np.abs(effective) < 1e-6
    assert abs(dropped.mean() - rate) < bound(rate, kernel.size)
    np.testing.assert_allclose(
        effective[~dropped], kernel[~dropped] / (1 - rate), rtol=1e-5, atol=1e-6
    )
    # one mask per batch: identical examples get identical outputs
    same = np.asarray(layer(np.ones((4, d), "float32"), training=True))
    np.testing.assert_array_equal(same, np.broadcast_to(same[:1], same.shape))
    # inference: the full kernel, no scaling
    np.testing.assert_allclose(np.asarray(layer(eye)), kernel + 1.0, rtol=1e-6)


@pytest.mark.jax
def test_conv_drops_requested_fraction_of_kernel_weights():
    rate, cin, filters = 0.5, 64, 64
    layer = L.DropConnectConv2D(filters, 1, rate=rate, use_bias=False, seed=9)
    onehot = np.eye(cin, dtype="float32").reshape(cin, 1, 1, cin)
    out = np.asarray(layer(onehot, training=True))[:, 0, 0, :]
    kernel = np.asarray(layer.kernel)[0, 0]
    dropped = out == 0
    assert abs(dropped.mean() - rate) < bound(rate, out.size)
    np.testing.assert_allclose(out[~dropped], kernel[~dropped] / (1 - rate), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(onehot))[:, 0, 0, :], kernel, rtol=1e-6)
    assert layer.mask_per_batch is True
    assert layer.compute_output_shape((None, 9, 9, 3)) == (None, 9, 9, filters)


def test_errors():
    with pytest.raises(ValueError, match="units must be an integer >= 1; received units=0"):
        L.DropConnectDense(0, rate=0.1)
    with pytest.raises(ValueError, match="received rate=-0.1"):
        L.DropConnectDense(3, rate=-0.1)
    with pytest.raises(
        UserInputError, match="padding must be one of 'valid', 'same'; received padding='full'"
    ):
        L.DropConnectConv2D(3, 3, rate=0.1, padding="full")
    with pytest.raises(ValueError, match="kernel_size must be a positive integer or a pair"):
        L.DropConnectConv2D(3, (3, 0), rate=0.1)
