"""Hadamard reparameterization: w = a * b, penalty = L1 at balance, SGD reaches the lasso solution."""

import keras
import numpy as np
import pytest

import kerascnn.layers as L


def lasso_ista(X, y, lam, steps=20_000):
    """min_w mean((X w - y)^2) + lam |w|_1 by proximal gradient (ISTA), NumPy only."""
    n = len(y)
    lipschitz = 2 * np.linalg.eigvalsh(X.T @ X / n).max()
    w = np.zeros(X.shape[1])
    for _ in range(steps):
        z = w - (2 / n) * X.T @ (X @ w - y) / lipschitz
        w = np.sign(z) * np.maximum(np.abs(z) - lam / lipschitz, 0.0)
    return w


@pytest.mark.jax
def test_effective_kernel_and_penalty_bounds_l1():
    layer = L.HadamardDense(7, l1=0.01)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    y = np.asarray(layer(x))
    a, b = np.asarray(layer.kernel_a), np.asarray(layer.kernel_b)
    np.testing.assert_allclose(np.asarray(layer.kernel), a * b, rtol=1e-6)
    np.testing.assert_allclose(y, x @ (a * b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.abs(a), np.abs(b))  # unbalanced start, so signs can flip
    penalty = float(sum(np.asarray(v) for v in layer.losses))
    np.testing.assert_allclose(penalty, 0.005 * (np.sum(a**2) + np.sum(b**2)), rtol=1e-5)
    assert penalty >= 0.01 * np.abs(a * b).sum()  # C(a^2 + b^2) >= 2C|ab|, equal at balance
    conv = L.HadamardConv2D(4, 3, l1=0.0)
    conv(np.zeros((1, 5, 5, 2), "float32"))
    assert conv.losses == [] and tuple(conv.kernel.shape) == (3, 3, 2, 4)


@pytest.mark.jax
def test_sgd_on_reparameterized_model_reaches_the_lasso_solution():
    rng = np.random.default_rng(0)
    n, d, lam = 200, 20, 0.1
    X = rng.normal(size=(n, d))
    w_true = np.zeros(d)
    w_true[[2, 7, 11]] = [1.5, -2.0, 1.0]
    y = X @ w_true + 0.1 * rng.normal(size=n)
    w_lasso = lasso_ista(X, y, lam)

    model = keras.Sequential([keras.Input((d,)), L.HadamardDense(1, l1=lam, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    steps = 2500  # full-batch SGD, one step per repeated copy of the data
    model.fit(
        np.tile(X, (steps, 1)).astype("float32"),
        np.tile(y, steps).astype("float32")[:, None],
        batch_size=n,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    w = np.asarray(model.layers[0].kernel)[:, 0]
    zeros = w_lasso == 0
    assert zeros.sum() >= 15  # the lasso solution is sparse ...
    assert np.all(np.abs(w[zeros]) < 1e-3)  # ... and SGD found the same zeros without a prox step
    np.testing.assert_allclose(w, w_lasso, atol=5e-3)
    penalty = float(sum(np.asarray(v) for v in model.losses))
    np.testing.assert_allclose(penalty, lam * np.abs(w).sum(), rtol=1e-3)  # balanced at the minimum
    # plain L1 by subgradient SGD would oscillate around zero instead (not tested: known)


def test_errors():
    with pytest.raises(ValueError, match="l1 must be a number >= 0; received l1=-1"):
        L.HadamardDense(3, l1=-1)
    with pytest.raises(ValueError, match="filters must be an integer >= 1"):
        L.HadamardConv2D(0, 3)
