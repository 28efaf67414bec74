"""fold_batchnorm: inference outputs unchanged within 1e-4, batch norms gone."""

import os

import keras
import numpy as np
import pytest

import kerascnn
from kerascnn.fold import fold_batchnorm, foldable_pairs
from kerascnn.layers.fused_batchnorm import fused_batch_norm_factory

RNG = np.random.default_rng(0)


def _randomize_statistics(model, rng=RNG):
    """Give every batch norm non-trivial statistics, scale and offset (a fresh model's
    folding would be close to the identity and test little)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, c).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.normal(1.0, 0.5, c).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0.0, 0.5, c).astype("float32"))


def _check(model, x, atol=1e-4):
    _randomize_statistics(model)
    expected = np.asarray(model(x, training=False))
    folded = fold_batchnorm(model)
    got = np.asarray(folded(x, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=atol * scale)
    assert not np.allclose(expected, 0)
    assert foldable_pairs(folded) == []
    # the original is untouched
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), expected)
    return folded


@pytest.mark.jax
@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 20},  # option A shortcuts
        {"depth": 20, "shortcut": "B"},  # projection conv + BN shortcuts
        {"depth": 20, "version": 2},  # pre-activation: BN after add / before conv
        {"depth": 29, "block": "bottleneck", "groups": 2, "shortcut": "B"},  # grouped conv
    ],
)
def test_cifar_resnets_outputs_unchanged(kwargs):
    model = kerascnn.zoo.resnet(**kwargs, input_shape=(16, 16, 3))
    x = RNG.normal(size=(4, 16, 16, 3)).astype("float32")
    folded = _check(model, x)
    bns = [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    left = [
        layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert [layer.name for layer in folded.layers] == [layer.name for layer in model.layers]
    if kwargs.get("version", 1) == 1:
        assert left == []  # every BN of a v1 ResNet follows a conv
    else:
        assert 0 < len(left) < len(bns)  # pre-activation BNs follow adds, not convs


@pytest.mark.jax
def test_resnet56_and_fused_batch_norm():
    model = kerascnn.zoo.resnet(depth=56, norm=fused_batch_norm_factory())
    x = RNG.normal(size=(8, 32, 32, 3)).astype("float32")
    folded = _check(model, x)
    assert len(folded.trainable_weights) < len(model.trainable_weights)


@pytest.mark.jax
def test_mobilenet_depthwise_and_dense_bn():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=True, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="b1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, center=False, name="b2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="fc")(x)
    outputs = keras.layers.BatchNormalization(scale=False, name="b3")(x)
    model = keras.Model(inputs, outputs)
    assert foldable_pairs(model) == [("c1", "b1"), ("dw", "b2"), ("fc", "b3")]
    _check(model, RNG.normal(size=(4, 12, 12, 3)).astype("float32"))


@pytest.mark.jax
def test_pairs_that_must_not_fold_are_kept():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="shared_out")(inputs)
    b1 = keras.layers.BatchNormalization(name="bn_a")(a)  # conv output used twice
    b2 = keras.layers.Add()([a, b1])
    c = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="act_conv")(b2)
    c = keras.layers.BatchNormalization(name="bn_c")(c)  # conv has an activation
    d = keras.layers.Conv2D(4, 1, name="d")(c)
    d = keras.layers.BatchNormalization(axis=1, name="bn_d")(d)  # wrong axis
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(d))
    assert foldable_pairs(model) == []
    folded = _check(model, RNG.normal(size=(2, 8, 8, 3)).astype("float32"), atol=1e-5)
    assert len(folded.layers) == len(model.layers)


@pytest.mark.jax
def test_sequential_model_and_keras_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, use_bias=False, name="c"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
        ]
    )
    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    folded = _check(model, x)
    path = os.fspath(tmp_path / "folded.keras")
    folded.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(folded(x)), atol=1e-6)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional or built Sequential"):
        fold_batchnorm(Net())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel export")
def test_folded_saved_model_serves_the_same_outputs(tmp_path):
    import tensorflow as tf

    model = kerascnn.zoo.resnet(depth=20)
    x = RNG.normal(size=(4, 32, 32, 3)).astype("float32")
    _randomize_statistics(model)
    path = kerascnn.export.saved_model(fold_batchnorm(model), tmp_path / "sm")
    loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x))
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(
        np.asarray(served), expected, atol=1e-4 * max(1.0, np.abs(expected).max())
    )


def test_a_subclassed_model_is_the_users_error():
    from kerascnn.errors import UserInputError

    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(
        UserInputError,
        match="fold_batchnorm needs a functional or built Sequential model; received a Net",
    ):
        fold_batchnorm(Net())
