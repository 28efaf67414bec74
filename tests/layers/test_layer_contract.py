"""The contract every issue-3 layer keeps: config round trip, .keras round trip with
identical outputs, tf.data map, inside a model trained under XLA, identity at inference."""

import keras
import numpy as np
import pytest
from conftest import tf_only

import kerascnn.layers as L

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
