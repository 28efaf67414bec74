"""FusedBatchNormalization against keras.layers.BatchNormalization (REFERENCES.md item 11)."""

import os

import keras
import numpy as np
import pytest
from conftest import tf_only

import kerascnn
from kerascnn.layers.fused_batchnorm import (
    FusedBatchNormalization,
    fused_batch_norm,
    fused_batch_norm_factory,
)

SHAPE = (8, 5, 5, 6)
ATOL = 1e-5


def _x(rng, shape=SHAPE, loc=1.0, scale=2.0):
    return rng.normal(loc, scale, size=shape).astype("float32")


def _pair(shape=SHAPE, **kwargs):
    """A keras BN and a fused BN with the same (random) weights."""
    kwargs = {"momentum": 0.9, "epsilon": 1e-5, **kwargs}
    ref = keras.layers.BatchNormalization(**kwargs)
    ours = FusedBatchNormalization(**kwargs)
    ref.build(shape)
    ours.build(shape)
    rng = np.random.default_rng(1)
    for w in ref.weights:
        if w.name in ("gamma", "beta"):
            w.assign(rng.normal(1.0 if w.name == "gamma" else 0.0, 0.5, w.shape).astype("float32"))
    ours.set_weights(ref.get_weights())
    return ref, ours


def _assert_close(a, b, atol=ATOL, rtol=0.0):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)


@pytest.mark.jax
@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False}, {"epsilon": 1e-3}])
def test_equals_keras_batch_normalization(kwargs):
    ref, ours = _pair(**kwargs)
    rng = np.random.default_rng(0)
    for _ in range(5):  # several moving-average updates
        x = _x(rng)
        _assert_close(ours(x, training=True), ref(x, training=True))
    _assert_close(ours.moving_mean, ref.moving_mean)
    _assert_close(ours.moving_variance, ref.moving_variance)
    assert not np.allclose(np.asarray(ours.moving_mean), 0.0)  # the updates happened
    x = _x(rng)
    _assert_close(ours(x), ref(x))
    _assert_close(ours(x, training=False), ref(x, training=False))
    ours.trainable = ref.trainable = False  # frozen BN runs in inference mode, as Keras
    _assert_close(ours(x, training=True), ref(x, training=True))
    before = np.asarray(ours.moving_mean).copy()
    ours(x, training=True)
    _assert_close(ours.moving_mean, before, atol=0)


@pytest.mark.jax
@pytest.mark.parametrize("shape,axis", [((8, 6), -1), ((4, 6, 5, 5), 1), ((4, 3, 5, 6), -1)])
def test_other_ranks_and_axes_fall_back_to_keras(shape, axis):
    ref, ours = _pair(shape=shape, axis=axis)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = _x(rng, shape)
        _assert_close(ours(x, training=True), ref(x, training=True))
    _assert_close(ours.moving_variance, ref.moving_variance)
    _assert_close(ours(x), ref(x))


@pytest.mark.jax
def test_float64_keeps_full_precision():
    kwargs = dict(momentum=0.9, epsilon=1e-5)
    ref = keras.layers.BatchNormalization(dtype="float64", **kwargs)
    ours = FusedBatchNormalization(dtype="float64", **kwargs)
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(4, 5, 5, 6))
    for _ in range(2):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(x, training=True)),
            keras.ops.convert_to_numpy(ref(x, training=True)),
            rtol=0,
            atol=1e-12,
        )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours.moving_variance),
        keras.ops.convert_to_numpy(ref.moving_variance),
        atol=1e-12,
    )


@pytest.mark.jax
def test_config_and_weights_are_those_of_keras_batch_normalization():
    ref, ours = _pair()
    cfg = ours.get_config()
    assert cfg == ref.get_config() | {"name": cfg["name"]}
    assert [w.name for w in ours.weights] == [w.name for w in ref.weights]
    assert [w.trainable for w in ours.weights] == [w.trainable for w in ref.weights]
    assert ours.count_params() == ref.count_params() == 4 * SHAPE[-1]
    clone = keras.layers.BatchNormalization.from_config(cfg)
    assert clone.momentum == 0.9 and clone.epsilon == 1e-5


@tf_only
def test_the_fused_kernel_runs_on_tensorflow():
    import tensorflow as tf

    _, ours = _pair()
    x = _x(np.random.default_rng(0))

    @tf.function
    def train(x):
        return ours(x, training=True)

    @tf.function
    def infer(x):
        return ours(x, training=False)

    for fn in (train, infer):
        ops = {op.type for op in fn.get_concrete_function(x).graph.get_operations()}
        assert "FusedBatchNormV3" in ops, sorted(ops)
        assert "Mean" not in ops


@tf_only
def test_function_returns_biased_variance_and_exact_epsilon():
    rng = np.random.default_rng(0)
    x = _x(rng, (4, 3, 3, 2))
    ones, zeros = np.ones(2, "float32"), np.zeros(2, "float32")
    y, mean, var = fused_batch_norm(x, ones, zeros, epsilon=1e-7, training=True)
    _assert_close(mean, x.mean(axis=(0, 1, 2)))
    _assert_close(var, x.var(axis=(0, 1, 2)))  # biased, as keras.ops.moments
    expected = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-7)
    _assert_close(y, expected)
    y, _, _ = fused_batch_norm(
        x, ones, zeros, np.asarray(mean), np.asarray(var), epsilon=1e-7, training=False
    )
    _assert_close(y, expected)


@tf_only
@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradients_equal_keras_under_tf_function_and_xla(jit_compile):
    import tensorflow as tf

    ref, ours = _pair()
    rng = np.random.default_rng(0)
    x = tf.constant(_x(rng))
    w = tf.constant(rng.normal(size=SHAPE).astype("float32"))

    @tf.function(jit_compile=jit_compile)
    def step(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * w) + tf.reduce_sum(y**2) * 0.1
        return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

    y_ref, g_ref = step(ref, x)
    y_ours, g_ours = step(ours, x)
    _assert_close(y_ours, y_ref)
    for a, b in zip(g_ours, g_ref, strict=True):
        scale = float(np.abs(np.asarray(b)).max())
        _assert_close(a, b, atol=ATOL * max(1.0, scale))
    _assert_close(ours.moving_mean, ref.moving_mean)
    _assert_close(ours.moving_variance, ref.moving_variance)


def _small_model(norm_layer):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = norm_layer(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))


@tf_only
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_matches_keras_batch_normalization(jit_compile):
    keras.utils.set_random_seed(0)
    ref = _small_model(keras.layers.BatchNormalization)
    ours = _small_model(FusedBatchNormalization)
    ours.set_weights(ref.get_weights())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=32)
    for m in (ref, ours):
        m.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert ours.jit_compile == jit_compile  # XLA stays on
    for a, b in zip(ours.get_weights(), ref.get_weights(), strict=True):
        _assert_close(a, b, atol=1e-4)
    _assert_close(ours.predict(x, verbose=0), ref.predict(x, verbose=0), atol=1e-4)


@pytest.mark.jax
def test_keras_round_trip_and_checkpoints_interchange(tmp_path):
    keras.utils.set_random_seed(0)
    ours = _small_model(FusedBatchNormalization)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    ours(x, training=True)  # move the statistics away from their initial values
    path = os.fspath(tmp_path / "m.keras")
    ours.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    _assert_close(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), atol=0)

    # weights saved with one layer load into the other, both ways
    ref = _small_model(keras.layers.BatchNormalization)
    ours.save_weights(os.fspath(tmp_path / "fused.weights.h5"))
    ref.load_weights(os.fspath(tmp_path / "fused.weights.h5"))
    _assert_close(ref.predict(x, verbose=0), ours.predict(x, verbose=0))
    ref.get_layer("bn").moving_mean.assign(np.full(6, 0.5, "float32"))
    ref.save_weights(os.fspath(tmp_path / "keras.weights.h5"))
    ours.load_weights(os.fspath(tmp_path / "keras.weights.h5"))
    _assert_close(ours.get_layer("bn").moving_mean, np.full(6, 0.5))
    _assert_close(ref.predict(x, verbose=0), ours.predict(x, verbose=0))


@tf_only
def test_mixed_precision():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        ref, ours = _pair()
    finally:
        keras.config.set_dtype_policy(policy)
    x = _x(np.random.default_rng(0)).astype("float16")
    y = ours(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert keras.backend.standardize_dtype(ours.moving_mean.dtype) == "float32"
    _assert_close(y, ref(x, training=True), atol=1e-2)
    _assert_close(ours.moving_mean, ref.moving_mean, atol=1e-3)


@pytest.mark.jax
def test_zoo_factory_builds_the_same_resnet():
    keras.utils.set_random_seed(0)
    ref = kerascnn.zoo.resnet(depth=8, input_shape=(16, 16, 3))
    ours = kerascnn.zoo.resnet(depth=8, input_shape=(16, 16, 3), norm=fused_batch_norm_factory())
    assert [layer.name for layer in ours.layers] == [layer.name for layer in ref.layers]
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in ours.layers) == 7
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    _assert_close(ours(x, training=True), ref(x, training=True), atol=1e-4)
    _assert_close(ours(x, training=False), ref(x, training=False), atol=1e-4)
