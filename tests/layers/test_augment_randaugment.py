"""RandAugment chooses its operations per image; "not chosen" is the identity."""

import importlib

import keras
import numpy as np
import pytest

R = importlib.import_module("kerascnn.layers.augment.randaugment")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.jax
def test_chosen_ops_uniform_by_chi_square_and_differ_within_a_batch():
    layer = R.RandAugment(num_ops=2, magnitude=9, seed=11)
    ops_idx, signs = layer.sample(1024)
    ops_idx = _np(ops_idx)
    assert ops_idx.shape == (1024, 2)
    counts = np.bincount(ops_idx.ravel(), minlength=14)
    expected = ops_idx.size / 14
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # chi-square with 13 degrees of freedom: P(chi2 > 34.53) = 0.001
    assert chi2 < 34.53, counts
    assert len({tuple(row) for row in ops_idx[:16]}) > 1  # images of one batch differ
    assert set(np.unique(_np(signs))) == {-1.0, 1.0}


@pytest.mark.jax
def test_layer_applies_its_sampled_per_image_ops():
    x = np.random.default_rng(0).integers(30, 220, (16, 32, 32, 3)).astype("float32")
    twin = R.RandAugment(2, 9, seed=4)
    ops_idx, signs = twin.sample(16)
    y = _np(R.RandAugment(2, 9, seed=4)(x, training=True))
    np.testing.assert_allclose(y, _np(R.randaugment(x, ops_idx, signs, 9.0)), atol=1e-3)


@pytest.mark.jax
def test_each_image_gets_only_its_own_op():
    x = np.random.default_rng(1).integers(30, 220, (4, 40, 40, 3)).astype("float32")
    idx = R.OP_INDEX
    ops_idx = np.array(
        [
            [idx["identity"]] * 2,
            [idx["solarize"], idx["identity"]],
            [idx["translate_x"], idx["identity"]],
            [idx["equalize"], idx["identity"]],
        ],
        "int32",
    )
    signs = np.ones((4, 2), "float32")
    y = _np(R.randaugment(x, ops_idx, signs, 10.0))
    np.testing.assert_allclose(y[0], x[0], atol=1e-3)  # identity is exact
    np.testing.assert_allclose(y[1], 255.0 - x[1], atol=1e-3)  # magnitude 10: threshold 0
    shift = 18  # translate by 0.45 of the width (40) at magnitude 10
    np.testing.assert_allclose(y[2][:, shift:], x[2][:, :-shift], atol=1e-3)
    np.testing.assert_allclose(y[2][:, :shift], 128.0, atol=1e-3)
    from kerascnn.layers.augment.color import equalize

    np.testing.assert_allclose(y[3], _np(equalize(x[3:4]))[0], atol=1e-3)


@pytest.mark.jax
def test_magnitude_zero_is_identity_up_to_grey_level_rounding():
    x = np.random.default_rng(2).integers(0, 256, (8, 16, 16, 3)).astype("float32")
    layer = R.RandAugment(2, 0, seed=1)
    ops_idx, signs = layer.sample(8)
    non_stat = np.isin(_np(ops_idx), [R.OP_INDEX[n] for n in ("auto_contrast", "equalize")]).any(
        axis=1
    )
    y = _np(R.randaugment(x, ops_idx, signs, 0.0))
    np.testing.assert_allclose(y[~non_stat], x[~non_stat], atol=1e-3)
