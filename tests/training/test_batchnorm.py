"""recalibrate_batchnorm: moving statistics equal the dataset statistics of each BN input."""

import keras
import numpy as np
import pytest

import kerascnn.layers as L
from kerascnn.errors import DataValidationError, UserInputError
from kerascnn.training import recalibrate_batchnorm


def _model():
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)  # must stay off during recalibration
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = L.AxisNormalization([0, 1, 2], name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(2)(x))


@pytest.mark.jax
def test_moving_statistics_equal_dataset_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(16, 6, 6, 3)).astype("float32") for _ in range(4)]
    data = np.concatenate(batches)

    # bn1's input does not depend on any BN: plain dataset statistics of conv1's output
    h1 = np.asarray(keras.Model(model.input, model.get_layer("conv1").output)(data)).astype(
        np.float64
    )
    # bn2's input: bn1 normalizing each batch with its own statistics (as in training), dropout off
    conv2 = model.get_layer("conv2")
    bn1, relu = model.get_layer("bn1"), model.layers[3]
    h2 = []
    for xb in batches:
        a = np.asarray(model.get_layer("conv1")(xb)).astype(np.float64)
        normed = (a - a.mean((0, 1, 2))) / np.sqrt(a.var((0, 1, 2)) + bn1.epsilon)
        normed = normed * np.asarray(bn1.gamma) + np.asarray(bn1.beta)
        h2.append(np.asarray(conv2(np.asarray(relu(normed.astype("float32"))))).astype(np.float64))
    h2 = np.concatenate(h2)

    counts = recalibrate_batchnorm(model, [(xb, np.zeros((16, 2))) for xb in batches])
    assert counts == {"bn1": 64 * 36, "bn2": 64 * 36}
    for name, h in (("bn1", h1), ("bn2", h2)):
        layer = model.get_layer(name)
        np.testing.assert_allclose(
            np.asarray(layer.moving_mean), h.mean((0, 1, 2)), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            np.asarray(layer.moving_variance), h.var((0, 1, 2)), rtol=1e-4, atol=1e-4
        )
    # after recalibration, inference-mode bn1 outputs are standardized over the dataset
    out = np.asarray(keras.Model(model.input, bn1.output)(data))
    np.testing.assert_allclose(out.mean((0, 1, 2)), np.asarray(bn1.beta), atol=1e-3)


@pytest.mark.jax
def test_steps_and_errors():
    model = _model()
    x = np.ones((4, 6, 6, 3), "float32")
    assert recalibrate_batchnorm(model, [x, x, x], steps=2)["bn1"] == 2 * 4 * 36
    with pytest.raises(
        UserInputError, match="model must contain a BatchNormalization layer to recalibrate"
    ):
        recalibrate_batchnorm(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), [np.ones((1, 3))]
        )
    with pytest.raises(
        UserInputError, match="steps must be None or an integer >= 1; received steps=0"
    ):
        recalibrate_batchnorm(model, [x], steps=0)
    with pytest.raises(DataValidationError, match="dataset must yield at least one batch"):
        recalibrate_batchnorm(model, [])


def test_tf_data_dataset():
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data batches are converted to NumPy; covered by the list test on JAX")
    import tensorflow as tf

    model = _model()
    x = np.random.default_rng(1).normal(size=(20, 6, 6, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((20, 2)))).batch(8)
    recalibrate_batchnorm(model, ds)
    h = np.asarray(keras.Model(model.input, model.get_layer("conv1").output)(x)).astype(np.float64)
    np.testing.assert_allclose(
        np.asarray(model.get_layer("bn1").moving_mean), h.mean((0, 1, 2)), atol=1e-4
    )
