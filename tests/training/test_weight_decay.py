"""L2 penalty in the loss vs decoupled weight decay (Loshchilov & Hutter 2017), numerically.

See docs/weight_decay.md. Keras's L2(l) adds l * sum(w**2) to the loss, gradient 2 l w; Keras's
decoupled decay multiplies the weights by (1 - lr * weight_decay) before the gradient step.
"""

import keras
import numpy as np
import pytest

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 5)).astype("float32")
Y = RNG.normal(size=(16, 3)).astype("float32")
W0 = RNG.normal(size=(5, 3)).astype("float32")
L2, LR = 0.05, 0.1


def _train(optimizer, l2=None, steps=3):
    reg = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3, use_bias=False, kernel_regularizer=reg)]
    )
    model.layers[0].kernel.assign(W0)
    model.compile(optimizer=optimizer, loss="mse")
    for _ in range(steps):
        model.train_on_batch(X, Y)
    return np.asarray(model.layers[0].kernel, dtype=np.float64)


def _sgd_reference(steps=3, l2=0.0, decay=0.0):
    """NumPy: w <- w - lr * (grad mse + 2 l2 w) - lr * decay * w."""
    w = W0.astype(np.float64)
    for _ in range(steps):
        grad = 2 * X.T @ (X @ w - Y) / Y.size
        w = w - LR * (grad + 2 * l2 * w) - LR * decay * w
    return w


@pytest.mark.jax
def test_sgd_l2_equals_decoupled_decay_of_2_l_lr():
    coupled = _train(keras.optimizers.SGD(LR), l2=L2)
    decoupled = _train(keras.optimizers.SGD(LR, weight_decay=2 * L2))  # per step: w *= 1 - 2*l*lr
    np.testing.assert_allclose(coupled, decoupled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(coupled, _sgd_reference(l2=L2), rtol=1e-4, atol=1e-6)
    plain = _train(keras.optimizers.SGD(LR))
    assert np.abs(coupled - plain).max() > 1e-2  # the decay did something


@pytest.mark.jax
def test_adam_l2_differs_from_adamw():
    coupled = _train(keras.optimizers.Adam(LR), l2=L2)
    decoupled = _train(keras.optimizers.AdamW(LR, weight_decay=2 * L2))
    # Adam divides the L2 gradient by sqrt(v): large weights are decayed less than AdamW does
    assert np.abs(coupled - decoupled).max() > 1e-3
    # AdamW's decay is exactly w <- w (1 - lr wd) on top of Adam's update
    adam = _train(keras.optimizers.Adam(LR), steps=1)
    adamw = _train(keras.optimizers.AdamW(LR, weight_decay=2 * L2), steps=1)
    np.testing.assert_allclose(adamw, adam - LR * 2 * L2 * W0, rtol=1e-5, atol=1e-6)
