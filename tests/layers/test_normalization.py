"""AxisNormalization against Keras's BN / LN / GN, parameter counts, the factory and the zoo hook."""

import keras
import numpy as np
import pytest

import kerascnn
import kerascnn.layers as L

RNG = np.random.default_rng(0)
SHAPE = (8, 5, 5, 6)  # (batch, h, w, c)


def _randomize(a, b):
    """Give both layers the same random scale and offset."""
    a.gamma.assign(RNG.normal(size=a.gamma.shape).astype("float32"))
    a.beta.assign(RNG.normal(size=a.beta.shape).astype("float32"))
    b.gamma.assign(np.asarray(a.gamma))
    b.beta.assign(np.asarray(a.beta))


def _x(shape=SHAPE, loc=1.0, scale=2.0):
    return RNG.normal(loc, scale, size=shape).astype("float32")


@pytest.mark.jax
def test_batch_kind_equals_keras_batch_normalization():
    ours = L.AxisNormalization([0, 1, 2], momentum=0.9, epsilon=1e-3)
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    ours.build(SHAPE)
    ref.build(SHAPE)
    _randomize(ours, ref)
    for _ in range(5):  # several moving-average updates
        x = _x()
        np.testing.assert_allclose(
            np.asarray(ours(x, training=True)), np.asarray(ref(x, training=True)), atol=1e-5
        )
    np.testing.assert_allclose(np.asarray(ours.moving_mean), np.asarray(ref.moving_mean), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours.moving_variance), np.asarray(ref.moving_variance), atol=1e-5
    )
    assert not np.allclose(np.asarray(ours.moving_mean), 0)  # the updates happened
    x = _x()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours(x, training=False)), np.asarray(ref(x, training=False)), atol=1e-5
    )
    # parameters: c scales + c offsets, c + c moving statistics
    assert [tuple(w.shape) for w in ours.trainable_weights] == [(6,), (6,)]
    assert ours.count_params() == ref.count_params() == 4 * 6
    ours.trainable = ref.trainable = False  # frozen BN runs in inference mode, as Keras
    np.testing.assert_allclose(
        np.asarray(ours(x, training=True)), np.asarray(ref(x, training=True)), atol=1e-5
    )


@pytest.mark.jax
@pytest.mark.parametrize("axis", [[1, 2, 3], [-1], [2, 3]])
def test_layer_kind_equals_keras_layer_normalization(axis):
    ours = L.AxisNormalization(axis)
    ref = keras.layers.LayerNormalization(axis=axis, epsilon=1e-3)
    ours.build(SHAPE)
    ref.build(SHAPE)
    _randomize(ours, ref)
    x = _x()
    for training in (True, False):
        np.testing.assert_allclose(
            np.asarray(ours(x, training=training)), np.asarray(ref(x)), atol=1e-5
        )
    assert ours.gamma.shape == ref.gamma.shape


def test_layer_norm_parameter_counts_as_the_lecture():
    h, w, c = SHAPE[1:]
    per_image = L.AxisNormalization([1, 2, 3])
    per_image.build(SHAPE)
    assert tuple(per_image.gamma.shape) == (h, w, c)
    assert per_image.count_params() == 2 * h * w * c
    per_channel = L.AxisNormalization([1, 2, 3], param_axes=-1)
    per_channel.build(SHAPE)
    assert per_channel.count_params() == 2 * c
    for kind, count in (
        ("batch", 4 * c),
        ("layer", 2 * h * w * c),
        ("instance", 2 * c),
        ("group", 2 * c),
    ):
        layer = L.normalization(kind, groups=3) if kind == "group" else L.normalization(kind)
        layer.build(SHAPE)
        assert layer.count_params() == count, kind
        assert len(layer.trainable_weights) == 2


@pytest.mark.jax
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_kind_equals_keras_group_normalization(groups):
    ours = (
        L.AxisNormalization([1, 2, 3], groups=groups)
        if groups > 1
        else L.AxisNormalization([1, 2, 3], param_axes=-1)
    )
    ref = keras.layers.GroupNormalization(groups=groups, epsilon=1e-3)
    ours.build(SHAPE)
    ref.build(SHAPE)
    _randomize(ours, ref)
    x = _x()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5)


@pytest.mark.jax
def test_instance_kind_equals_group_norm_with_one_channel_per_group():
    ours = L.normalization("instance")
    ref = keras.layers.GroupNormalization(groups=SHAPE[-1], epsilon=1e-3)
    ours.build(SHAPE)
    ref.build(SHAPE)
    _randomize(ours, ref)
    x = _x()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours(x)),
        np.asarray(L.normalization("group", groups=99)(x)) * np.asarray(ours.gamma)
        + np.asarray(ours.beta),
        atol=1e-4,
    )


def test_factory_and_errors():
    assert L.normalization("group").groups == 32
    assert L.normalization("batch", epsilon=1e-5, name="bn").epsilon == 1e-5
    with pytest.raises(
        ValueError,
        match="kind must be one of 'batch', 'layer', 'instance', 'group'; received kind='weight'",
    ):
        L.normalization("weight")
    with pytest.raises(ValueError, match="axis must be an integer or a non-empty list"):
        L.AxisNormalization([])
    with pytest.raises(ValueError, match="groups must be an integer >= 1; received groups=0"):
        L.AxisNormalization([1, 2, 3], groups=0)
    with pytest.raises(ValueError, match="momentum must be a number in"):
        L.AxisNormalization([0], momentum=1.0)
    with pytest.raises(ValueError, match="groups=4 must divide the 6 channels"):
        L.AxisNormalization([1, 2, 3], groups=4).build(SHAPE)
    with pytest.raises(ValueError, match="needs group_axis=-1 in axis"):
        L.AxisNormalization([1, 2], groups=2).build(SHAPE)


@pytest.mark.parametrize("norm", ["layer", "instance", "group"])
def test_zoo_norm_hook(norm):
    model = kerascnn.zoo.resnet(depth=8, norm=norm, input_shape=(8, 8, 3), zero_init_residual=True)
    norms = [layer for layer in model.layers if isinstance(layer, L.AxisNormalization)]
    assert norms and all(layer.epsilon == 1e-5 for layer in norms)
    assert any(np.all(np.asarray(layer.gamma) == 0) for layer in norms)  # zero_init reached gamma
    y = model(np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32"))
    assert np.all(np.isfinite(np.asarray(y)))


@pytest.mark.jax
def test_weight_options_act_as_in_keras_batch_normalization(tmp_path):
    """The weights' options keep Keras's names and effects, survive get_config / from_config
    and a .keras round trip, and a config written before the constraints existed loads."""
    options = dict(
        beta_initializer=keras.initializers.Constant(0.5),
        gamma_initializer=keras.initializers.Constant(2.0),
        moving_variance_initializer=keras.initializers.Constant(3.0),
        beta_regularizer=keras.regularizers.L2(0.1),
        gamma_regularizer=keras.regularizers.L1(0.01),
        gamma_constraint=keras.constraints.NonNeg(),
    )
    ours = L.AxisNormalization([0, 1, 2], **options)
    ref = keras.layers.BatchNormalization(**options)
    ours.build(SHAPE)
    ref.build(SHAPE)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        np.testing.assert_array_equal(
            np.asarray(getattr(ours, name)), np.asarray(getattr(ref, name))
        )
    np.testing.assert_allclose(
        sorted(float(v) for v in ours.losses), sorted(float(v) for v in ref.losses), rtol=1e-6
    )
    # beta: 0.1 * 6 * 0.5**2; gamma: 0.01 * 6 * 2
    assert sorted(float(v) for v in ours.losses) == pytest.approx([0.12, 0.15])
    step = keras.optimizers.SGD(1.0)
    step.apply([np.full((6,), 5.0, "float32")], [ours.gamma])  # 2 - 5 < 0: clipped to 0
    np.testing.assert_array_equal(np.asarray(ours.gamma), np.zeros(6, "float32"))

    config = ours.get_config()
    again = L.AxisNormalization.from_config(config)
    assert again.get_config() == config
    x = _x()
    model = keras.Sequential([keras.Input(SHAPE[1:]), ours])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert isinstance(loaded.layers[-1].gamma_constraint, keras.constraints.NonNeg)

    older = {k: v for k, v in config.items() if not k.endswith("_constraint")}
    assert L.AxisNormalization.from_config(older).gamma_constraint is None
    with pytest.raises(ValueError, match="gama_initializer"):
        L.AxisNormalization([0, 1, 2], gama_initializer="zeros")
