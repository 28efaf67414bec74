"""DropoutSchedule: the rate read inside the compiled (XLA) train step switches at the cutoff."""

import math
import warnings

import keras
import numpy as np
import pytest

import kerascnn.layers as L
from kerascnn.errors import UserInputError
from kerascnn.training import DropoutSchedule


@keras.saving.register_keras_serializable(package="kerascnn_tests")
class ZeroFraction(keras.layers.Layer):
    """Outputs, per example, the fraction of exactly-zero entries of its input; counts how
    often it is traced (a Python side effect runs only while tracing a compiled step)."""

    traces = 0

    def call(self, x):
        ZeroFraction.traces += 1
        return keras.ops.mean(
            keras.ops.cast(keras.ops.equal(x, 0.0), "float32"), axis=-1, keepdims=True
        )


def _probe_model(rate):
    inp = keras.Input((4000,))
    dropped = L.Dropout(rate, seed=0, name="drop")(inp)
    frac = ZeroFraction(name="zero_fraction")(dropped)
    out = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")(
        frac
    )  # something to train
    model = keras.Model(inp, [out, frac])
    # loss on the second output = mean |frac - 0| = the dropped fraction seen in the train step
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=["mse", "mae"], jit_compile=True)
    return model


@pytest.mark.jax
@pytest.mark.parametrize("mode", ["early", "late"])
def test_rate_switches_at_cutoff_inside_compiled_step(mode):
    rate, n = 0.3, 4000 * 8
    model = _probe_model(0.5)
    x = np.ones((8, 4000), "float32")
    y = [np.zeros((8, 1), "float32")] * 2
    traces = []
    count = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: traces.append(ZeroFraction.traces)
    )
    schedule = DropoutSchedule(mode, rate=rate, cutoff_epoch=2)
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[schedule, count])
    assert model.jit_compile is True
    seen = history.history["zero_fraction_loss"]
    on = [True, True, False, False] if mode == "early" else [False, False, True, True]
    for value, active in zip(seen, on, strict=True):
        if active:
            assert abs(value - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
        else:
            assert value == 0.0
    assert len(set(traces)) == 1  # the switch needed no retracing of the train step


@pytest.mark.jax
def test_rate_none_uses_each_layers_own_rate():
    inp = keras.Input((4,))
    x = L.StochasticDepth(0.2, name="sd1")(inp)
    x = L.Dropout(0.4, name="d2")(x)
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    model.compile(optimizer="sgd", loss="mse")
    schedule = DropoutSchedule("late", cutoff_epoch=1)
    model.fit(np.ones((4, 4)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[schedule])
    assert [model.get_layer(n).current_rate for n in ("sd1", "d2")] == [0.0, 0.0]
    model.fit(
        np.ones((4, 4)), np.ones((4, 1)), initial_epoch=1, epochs=2, verbose=0, callbacks=[schedule]
    )
    assert [model.get_layer(n).current_rate for n in ("sd1", "d2")] == pytest.approx([0.2, 0.4])


def test_errors_and_warning():
    with pytest.raises(
        UserInputError, match="mode must be one of 'early', 'late'; received mode='middle'"
    ):
        DropoutSchedule("middle", cutoff_epoch=1)
    with pytest.raises(
        ValueError, match="cutoff_epoch must be an integer >= 0; received cutoff_epoch=-1"
    ):
        DropoutSchedule("early", cutoff_epoch=-1)
    with pytest.raises(ValueError, match="received rate=1.0"):
        DropoutSchedule("early", rate=1.0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with (
        warnings.catch_warnings(record=True) as caught,
        pytest.raises(ValueError, match="found no kerascnn dropout-family layer"),
    ):
        warnings.simplefilter("always")
        model.fit(
            np.ones((2, 3)),
            np.ones((2, 1)),
            verbose=0,
            callbacks=[DropoutSchedule("early", cutoff_epoch=1)],
        )
    assert any("cannot change the rate of Keras dropout layers" in str(w.message) for w in caught)
