"""The contract every issue-3 layer keeps: config round trip, .keras round trip with
identical outputs, tf.data map, inside a model trained under XLA, identity at inference."""

import keras
import numpy as np
import pytest
from conftest import tf_only

import kerascnn.layers as L
from kerascnn.errors import UserInputError

IMAGE = (6, 6, 4)
VECTOR = (6,)

# (id, factory, input shape, is a regularizer that must be the identity at inference)
CASES = [
    ("dropout", lambda: L.Dropout(0.3, seed=1), IMAGE, True),
    ("mc_dropout", lambda: L.MCDropout(0.3, seed=1), IMAGE, False),
    ("spatial_dropout", lambda: L.SpatialDropout(0.3, seed=1), IMAGE, True),
    ("stochastic_depth", lambda: L.StochasticDepth(0.3, seed=1), IMAGE, True),
    ("dropconnect_dense", lambda: L.DropConnectDense(5, rate=0.3, seed=1), VECTOR, False),
    (
        "dropconnect_conv",
        lambda: L.DropConnectConv2D(3, 3, rate=0.3, padding="same", seed=1),
        IMAGE,
        False,
    ),
    ("hadamard_dense", lambda: L.HadamardDense(5, l1=1e-3), VECTOR, False),
    ("hadamard_conv", lambda: L.HadamardConv2D(3, 3, l1=1e-3, padding="same"), IMAGE, False),
    ("norm_batch", lambda: L.normalization("batch"), IMAGE, False),
    ("norm_layer", lambda: L.normalization("layer"), IMAGE, False),
    ("norm_instance", lambda: L.normalization("instance"), IMAGE, False),
    ("norm_group", lambda: L.normalization("group", groups=2), IMAGE, False),
]
IDS = [c[0] for c in CASES]


def _model(factory, shape):
    inp = keras.Input(shape)
    x = factory()(inp)
    if len(shape) > 1:
        x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2)(x)
    return keras.Model(inp, out)


def _data(shape, n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, *shape)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("name,factory,shape,_", CASES, ids=IDS)
def test_config_round_trip(name, factory, shape, _):
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert (
        keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer)
        ).get_config()
        == config
    )


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("name,factory,shape,_", CASES, ids=IDS)
def test_trains_under_xla_and_keras_round_trip(name, factory, shape, _, tmp_path):
    model = _model(factory, shape)
    xla = keras.backend.backend() != "torch"  # PyTorch has no XLA; it trains eagerly here
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=xla)
    assert model.jit_compile is xla
    x, y = _data(shape)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert model.jit_compile is xla
    assert np.isfinite(history.history["loss"][0])
    for layer in model.layers:
        if isinstance(layer, L.MCDropout):
            layer.set_rate(0.0)  # always on: make the comparison deterministic
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.layers[1]) is type(model.layers[1])
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize(
    "name,factory,shape", [c[:3] for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]]
)
def test_identity_at_inference(name, factory, shape):
    layer = factory()
    x, _ = _data(shape)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    assert not np.array_equal(np.asarray(layer(x, training=True)), x)


@tf_only
@pytest.mark.parametrize("name,factory,shape,_", CASES, ids=IDS)
def test_in_tf_data_map(name, factory, shape, _):
    import tensorflow as tf

    layer = factory()
    x, _ = _data(shape)
    direct = np.asarray(layer(x[:4], training=False))
    ds = (
        tf.data.Dataset.from_tensor_slices(x)
        .batch(4)
        .map(lambda t: (layer(t, training=True), layer(t)))
    )
    outs = list(ds.as_numpy_iterator())
    assert len(outs) == 2 and all(
        np.all(np.isfinite(a)) and np.all(np.isfinite(b)) for a, b in outs
    )
    if (
        not isinstance(layer, L.MCDropout) and name != "norm_batch"
    ):  # BN's training call moves its stats
        np.testing.assert_allclose(outs[0][1], direct, atol=1e-6)


def _no_dropout_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")


@pytest.mark.parametrize(
    "call, pattern",
    [
        (  # layers.shortcut
            lambda: L.ZeroPadShortcut(1, 4)(np.ones((1, 4, 4, 8), "float32")),
            r"out_channels must be at least the input's channels .*; received out_channels=4 "
            r"for an input of 8 channels",
        ),
        (  # layers.hadamard
            lambda: L.HadamardDense(3, l1=-1.0),
            r"l1 must be a number >= 0; received l1=-1.0",
        ),
        (  # layers.kernel_base
            lambda: L.HadamardConv2D(3, 3, padding="full"),
            r"padding must be one of 'valid', 'same'; received padding='full'",
        ),
        (  # layers.augment.mix
            lambda: L.MixUp(alpha=0),
            r"alpha must be a number > 0; received alpha=0",
        ),
        (  # layers.augment.flip_crop
            lambda: L.RandomPadCrop(32)(np.zeros((1, 32, 32, 3), "float32"), training=True),
            r"padding must be at most 31 for 32x32 images .*received padding=32",
        ),
        (  # layers.augment.cutout
            lambda: L.Cutout(size=0),
            r"size must be an integer >= 1 \(pixels\) or a float in \(0, 1\].*; received size=0",
        ),
        (  # layers.augment.color
            lambda: L.Posterize(bits=9),
            r"bits must be an integer in 1\.\.8; received bits=9",
        ),
        (  # layers.mc
            lambda: L.mc_predict(_no_dropout_model(), np.ones((2, 4), "float32")),
            r"model 'plain' has no dropout layer",
        ),
        (  # layers.standardize
            lambda: L.Standardize(mean=[0.0, 0.0], std=[1.0]),
            r"mean and std must have the same positive length .*received mean=\[0.0, 0.0\], "
            r"std=\[1.0\]",
        ),
        (  # layers.normalization
            lambda: L.AxisNormalization(axis=[1, 1]),
            r"axis must not repeat an axis; received axis=\[1, 1\]",
        ),
        (  # layers.dropout
            lambda: L.SpatialDropout(0.1)(np.ones((2, 3), "float32")),
            r"SpatialDropout needs a 3-D, 4-D or 5-D input .*received input_shape=\(2, 3\)",
        ),
        (  # layers.ode
            lambda: L.ODEFunction(kernel_size=2),
            r"kernel_size must be an odd integer >= 1; received kernel_size=2",
        ),
    ],
)
def test_invalid_layer_arguments_are_the_users_error(call, pattern):
    with pytest.raises(UserInputError, match=pattern):
        call()
