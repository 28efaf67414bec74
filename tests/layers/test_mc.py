"""Monte-Carlo dropout prediction: spread, BN untouched bit for bit, convergence as rate -> 0."""

import keras
import numpy as np
import pytest

import kerascnn.layers as L


def _model(rate=0.3, logits=False, dropconnect=False):
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(rate)(x)  # Keras's own dropout is switched on too
    x = keras.layers.Dense(16, activation="relu")(x)
    x = L.Dropout(rate, name="our_dropout")(x)
    if dropconnect:
        out = L.DropConnectDense(4, rate=rate, activation=None if logits else "softmax")(x)
    else:
        out = keras.layers.Dense(4, activation=None if logits else "softmax")(x)
    model = keras.Model(inp, out)
    data = np.random.default_rng(1).normal(size=(32, 6, 6, 3)).astype("float32")
    model(data, training=True)  # move BN's statistics away from their initial values
    return model


X = np.random.default_rng(0).normal(size=(10, 6, 6, 3)).astype("float32")


def _bn_state(model):
    return [
        np.array(v)
        for layer in model.layers
        for v in layer.non_trainable_weights
        if "moving" in v.path
    ]


@pytest.mark.jax
def test_spread_and_batchnorm_untouched():
    model = _model()
    before = _bn_state(model)
    pred = L.mc_predict(model, X, samples=30, return_samples=True)
    after = _bn_state(model)
    assert len(before) == 2 and all(
        np.array_equal(a, b) for a, b in zip(before, after, strict=True)
    )
    assert pred.mean.shape == pred.std.shape == (10, 4) and pred.samples.shape == (30, 10, 4)
    assert pred.std.mean() > 1e-3 and np.all(pred.mutual_information > 0)
    np.testing.assert_allclose(pred.mean.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pred.mean, pred.samples.mean(axis=0))
    assert np.all(pred.entropy >= pred.mutual_information)
    # the 30 samples of one example are different draws, not one repeated mask
    assert len({tuple(np.round(s, 6)) for s in pred.samples[:, 0]}) == 30
    # and the original model is intact: deterministic inference
    np.testing.assert_array_equal(model.predict(X, verbose=0), model.predict(X, verbose=0))


@pytest.mark.jax
def test_mean_converges_to_deterministic_prediction_as_rate_goes_to_zero():
    model = _model(rate=0.4, logits=True)
    deterministic = keras.ops.convert_to_numpy(keras.ops.softmax(model(X, training=False)))
    errors = []
    for rate in (0.4, 0.1, 0.01, 0.0):
        for layer in model.layers:
            if isinstance(layer, L.Dropout):
                layer.set_rate(rate)
            elif isinstance(layer, keras.layers.Dropout):
                layer.rate = rate  # Keras dropout reads its Python rate at trace time
        pred = L.mc_predict(model, X, samples=30)  # logits inferred, softmax applied
        errors.append(np.abs(pred.mean - deterministic).max())
    assert errors[0] > errors[2] and errors[1] > errors[2]
    assert errors[2] < 0.02 and errors[3] < 1e-5


@pytest.mark.jax
def test_per_batch_mask_layers_are_sampled_one_pass_at_a_time():
    model = _model(dropconnect=True)
    pred = L.mc_predict(model, X[:3], samples=5, return_samples=True)
    assert len({tuple(np.round(s, 6)) for s in pred.samples[:, 0]}) == 5
    assert pred.std.mean() > 1e-3


def test_errors():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="has no dropout layer"):
        L.mc_predict(plain, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="samples must be an integer >= 2; received samples=1"):
        L.mc_predict(plain, np.zeros((2, 3)), samples=1)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.drop = keras.layers.Dropout(0.5)

        def call(self, x):
            return self.drop(x)

    with pytest.raises(ValueError, match="functional or Sequential"):
        L.mc_predict(Sub(), np.zeros((2, 3), "float32"))
