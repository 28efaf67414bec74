"""MixUp and CutMix: label weights equal image weights / pasted area; mixing inside fit."""

import keras
import numpy as np
import pytest
from conftest import tf_only

from kerascnn.layers.augment import mix as M


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.jax
def test_mixup_labels_sum_to_one_and_equal_image_weights():
    n = 64
    # image i is the constant i, so the mixed image reveals its weights
    x = np.tile(np.arange(n, dtype="float32").reshape(n, 1, 1, 1), (1, 4, 4, 3))
    y_int = np.arange(n) % 10
    layer = M.MixUp(alpha=0.4, num_classes=10, seed=3)
    xm, ym = (_np(t) for t in layer(x, y_int, training=True))
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-5)
    lam, partners = (_np(t) for t in M.MixUp(alpha=0.4, num_classes=10, seed=3)._draw(n))
    np.testing.assert_allclose(xm[:, 0, 0, 0], lam * np.arange(n) + (1 - lam) * partners, atol=1e-3)
    ref = np.eye(10)[y_int] * lam[:, None] + np.eye(10)[y_int[partners]] * (1 - lam[:, None])
    np.testing.assert_allclose(ym, ref, atol=1e-5)
    # one-hot input gives the same; inference: images unchanged, labels one-hot
    xo, yo = M.MixUp(alpha=0.4, seed=3)(x, np.eye(10, dtype="float32")[y_int], training=True)
    np.testing.assert_allclose(_np(yo), ym, atol=1e-6)
    xi, yi = layer(x, y_int)
    np.testing.assert_array_equal(_np(xi), x)
    np.testing.assert_array_equal(_np(yi), np.eye(10)[y_int])


@pytest.mark.jax
@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_mix_weights_follow_beta(alpha):
    n = 20000
    lam = _np(M.MixUp(alpha=alpha, seed=1)._draw(n)[0])
    assert lam.min() >= 0 and lam.max() <= 1
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); 4-sigma band of the sample mean
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(lam.mean() - 0.5) < 4 * np.sqrt(var / n)
    assert abs(lam.var() - var) < 0.1 * var
    # and the distribution function against scipy-free Beta(1, 1) = uniform when alpha = 1
    if alpha == 1.0:
        assert abs((lam < 0.25).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)


@pytest.mark.jax
def test_cutmix_label_weights_equal_pasted_area_fraction():
    n, h, w = 64, 16, 20
    x = np.zeros((n, h, w, 1), "float32")
    x[n // 2 :] = 1.0
    y = (np.arange(n) >= n // 2).astype("int32")  # the label is the image's value
    layer = M.CutMix(alpha=1.0, num_classes=2, seed=9)
    xm, ym = (_np(t) for t in layer(x, y, training=True))
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-5)
    weights, partners = (_np(t) for t in M.CutMix(alpha=1.0, num_classes=2, seed=9)._draw(n))
    changed = (xm != x).reshape(n, -1).mean(1)  # pasted fraction where the partner differs
    differs = (partners >= n // 2) != (np.arange(n) >= n // 2)
    own = ym[np.arange(n), y]
    partner_w = ym[np.arange(n), 1 - y]
    np.testing.assert_allclose(partner_w[differs], changed[differs], atol=1e-6)
    np.testing.assert_allclose(own[differs], 1 - changed[differs], atol=1e-6)
    # the corrected lambda is the true box area, not the Beta draw
    fn_x, fn_y, lam = M.cutmix(
        x,
        np.eye(2, dtype="float32")[y],
        M.cutmix_boxes(
            np.full(n, 0.5, "float32"), h, w, np.zeros(n, "int32"), np.zeros(n, "int32")
        ),
        partners,
    )
    assert (_np(lam) > 0.5).all()  # boxes clipped at the corner paste less than 1 - 0.5


@pytest.mark.jax
@pytest.mark.parametrize("mixer", ["mixup", "cutmix"])
def test_mix_trainer_mixes_inside_fit_under_xla(mixer):
    net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4)])
    layer = (
        M.MixUp(0.4, num_classes=4, seed=1)
        if mixer == "mixup"
        else M.CutMix(1.0, num_classes=4, seed=1)
    )
    with pytest.warns(DeprecationWarning, match=r"MixTrainer is deprecated: use kerascnn.tasks"):
        trainer = M.MixTrainer(net, layer)
    trainer.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=True)
    assert trainer.jit_compile is True
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    y = np.arange(32) % 4
    state0 = _np(layer.generator.state)
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    # the mixer drew random numbers inside the training step
    assert not np.array_equal(_np(layer.generator.state), state0)
    np.testing.assert_allclose(trainer.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-5)


@tf_only
def test_mix_in_tf_data_map_after_batching():
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    y = np.arange(32) % 4
    layer = M.CutMix(1.0, num_classes=4, seed=1)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(16)
        .map(lambda a, b: layer(a, b, training=True))
    )
    for xb, yb in ds:
        assert xb.shape == (16, 8, 8, 3) and yb.shape == (16, 4)
        np.testing.assert_allclose(yb.numpy().sum(1), 1.0, atol=1e-5)


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("mixer", ["mixup", "cutmix"])
def test_mix_trainer_step_loss_and_update_equal_numpy_on_the_mixed_batch(mixer):
    """One training step of MixTrainer: its loss and its SGD update equal the ones computed
    with NumPy on the batch that a twin mixer (same seed) mixes, and differ from the unmixed
    batch's: the model was trained on the mixed batch, not merely a random state moved.
    Compiled with XLA on JAX; eagerly on TensorFlow (whose XLA and non-XLA stateless random
    numbers differ, so the twin could not reproduce them outside the step) and PyTorch."""
    n, classes, lr = 16, 4, 0.1

    def make():
        if mixer == "mixup":
            return M.MixUp(0.4, num_classes=classes, seed=5)
        return M.CutMix(1.0, num_classes=classes, seed=5)

    init = keras.initializers.RandomNormal(0.0, 0.3, seed=1)
    net = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, kernel_initializer=init),
        ]
    )
    kernel, bias = (_np(v).astype("float64") for v in net.weights)
    trainer = M.MixTrainer(net, make())
    trainer.compile(
        keras.optimizers.SGD(lr),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=keras.backend.backend() == "jax",
    )
    x = np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype("float32")
    y = np.arange(n) % classes
    loss = float(np.asarray(trainer.train_on_batch(x, y)))

    def numpy_step(images, targets):
        features = images.reshape(n, -1).astype("float64")
        logits = features @ kernel + bias
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        error = (np.exp(log_p) - targets) / n  # d loss / d logits
        return -(targets * log_p).sum(1).mean(), features.T @ error, error.sum(0)

    xm, ym = (_np(t) for t in make()(x, y, training=True))
    expected, grad_kernel, grad_bias = numpy_step(xm, ym)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert abs(loss - numpy_step(x, np.eye(classes)[y])[0]) > 1e-2  # mixing changed the loss
    new_kernel, new_bias = (_np(v) for v in net.weights)
    np.testing.assert_allclose(new_kernel, kernel - lr * grad_kernel, atol=1e-5)
    np.testing.assert_allclose(new_bias, bias - lr * grad_bias, atol=1e-5)
