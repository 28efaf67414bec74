"""Recipes: overrides, schedules and the coupled vs decoupled weight decay of the optimizers."""

import keras
import numpy as np
import pytest

from kerascnn.errors import RunFolderError, UserInputError
from kerascnn.training.recipes import RECIPES, CoupledSGD, OneCycle, get_recipe

pytestmark = pytest.mark.jax


def test_resnet_cifar_is_he_et_al():
    r = get_recipe("resnet-cifar")
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.batch_size) == (
        "sgd",
        0.1,
        0.9,
        1e-4,
        128,
    )
    assert r.augment == "padcrop,flip"
    schedule = r.learning_rate(steps_per_epoch=390)
    total = 164 * 390
    lrs = [float(schedule(s)) for s in (0, total // 2 - 1, total // 2 + 1, int(0.75 * total) + 1)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.001], rtol=1e-6)


def test_overrides_and_errors():
    r = get_recipe("resnet-cifar", epochs=3, lr=0.05, augment=None)
    assert (r.epochs, r.lr, r.augment) == (3, 0.05, "padcrop,flip")  # None keeps the recipe's value
    with pytest.raises(
        ValueError, match="Unknown recipe='resnet-cifr'. Did you mean: resnet-cifar"
    ):
        get_recipe("resnet-cifr")
    with pytest.raises(ValueError, match=r"Unknown recipe field\(s\) \['lr_max'\]"):
        get_recipe("quick", lr_max=1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1; received epochs=0"):
        get_recipe("quick", epochs=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_recipe("quick", schedule="exp")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_compiles_a_model(name):
    r = get_recipe(name)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(**r.compile_args(steps_per_epoch=10, one_hot=r.needs_one_hot()))
    x = np.ones((8, 4), "float32")
    y = keras.utils.to_categorical(np.arange(8) % 3, 3) if r.needs_one_hot() else np.arange(8) % 3
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])


def test_one_cycle_shape():
    s = OneCycle(peak=1.0, total_steps=100, warmup=0.25, div=10.0)
    values = [float(s(t)) for t in (0, 25, 50, 100)]
    np.testing.assert_allclose(values, [0.1, 1.0, 2 / 3, 0.0], rtol=1e-5, atol=1e-6)


def _one_step(optimizer, w0, grad):
    var = keras.Variable(w0)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), var)])
    return keras.ops.convert_to_numpy(var)


def test_coupled_sgd_adds_decay_to_the_gradient_before_momentum():
    w0 = np.array([1.0, -2.0], "float32")
    g = np.array([0.5, 0.25], "float32")
    lr, wd = 0.1, 0.01
    w1 = _one_step(CoupledSGD(l2_decay=wd, learning_rate=lr, momentum=0.9), w0, g)
    np.testing.assert_allclose(w1, w0 - lr * (g + wd * w0), rtol=1e-6)
    # Two steps with momentum: the decay term enters the velocity (PyTorch semantics).
    opt = CoupledSGD(l2_decay=wd, learning_rate=lr, momentum=0.9)
    var = keras.Variable(w0)
    for _ in range(2):
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    v1 = -lr * (g + wd * w0)
    w1 = w0 + v1
    v2 = 0.9 * v1 - lr * (g + wd * w1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), w1 + v2, rtol=1e-5)


def test_coupled_sgd_can_leave_normalization_parameters_and_biases_out_of_the_decay():
    lr, wd = 0.1, 0.01
    kernel0 = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    bias0 = np.array([1.0, -2.0], "float32")
    g_kernel = np.full((2, 2), 0.5, "float32")
    g_bias = np.array([0.5, 0.25], "float32")
    for decay_vectors in (True, False):
        opt = CoupledSGD(l2_decay=wd, decay_vectors=decay_vectors, learning_rate=lr)
        kernel, bias = keras.Variable(kernel0), keras.Variable(bias0)
        opt.apply_gradients([(g_kernel, kernel), (g_bias, bias)])
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(kernel), kernel0 - lr * (g_kernel + wd * kernel0), rtol=1e-6
        )
        bias_decay = wd * bias0 if decay_vectors else 0.0
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(bias), bias0 - lr * (g_bias + bias_decay), rtol=1e-6
        )
    # the recipe passes it on, and keeps it through the optimizer's config
    opt = get_recipe("resnet-cifar", decay_vectors=False).make_optimizer(10)
    assert isinstance(opt, CoupledSGD) and opt.decay_vectors is False
    assert CoupledSGD.from_config(opt.get_config()).decay_vectors is False
    with pytest.raises(ValueError, match=r"decay_vectors=False with decoupled decay needs the"):
        get_recipe("adamw", decay_vectors=False).make_optimizer(10)
    with pytest.raises(ValueError, match=r"decay_vectors must be True or False; received .*=0"):
        get_recipe("resnet-cifar", decay_vectors=0)


def _backup_with_epoch(tmp_path, epoch):
    import json

    from kerascnn.training import run_folder

    (tmp_path / run_folder.META).write_text(json.dumps({"epoch": epoch}))
    return run_folder._read_meta(tmp_path)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (  # training.recipes
            lambda tmp_path: CoupledSGD(l2_decay=-1e-4),
            UserInputError,
            r"l2_decay must be a finite number >= 0; received l2_decay=-0.0001",
        ),
        (
            lambda tmp_path: CoupledSGD(weight_decay=5e-4),
            UserInputError,
            r"CoupledSGD takes l2_decay=, not weight_decay= .*received weight_decay=0.0005",
        ),
        (
            lambda tmp_path: get_recipe("quick", label_smoothing=0.1).make_loss(one_hot=False),
            UserInputError,
            r"label_smoothing needs one-hot labels .*received label_smoothing=0.1",
        ),
        (  # training.run_folder
            lambda tmp_path: _backup_with_epoch(tmp_path, -1),
            RunFolderError,
            r"training_metadata.json must record the epoch as an integer >= 0; received "
            r"epoch=-1",
        ),
    ],
)
def test_invalid_training_inputs_are_the_users_error(tmp_path, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(tmp_path)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_decoupled_decay_can_leave_biases_out(optimizer):
    # With a zero gradient, Adam's and SGD's own steps are zero, so one step leaves exactly
    # the decoupled decay w <- w * (1 - lr * wd) (Loshchilov & Hutter 2017), on rank > 1 only.
    lr, wd = 0.1, 0.05
    kernel0 = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    bias0 = np.array([1.0, -2.0], "float32")
    for decay_vectors in (True, False):
        kernel, bias = keras.Variable(kernel0), keras.Variable(bias0)
        recipe = get_recipe(
            "adamw", optimizer=optimizer, lr=lr, weight_decay=wd, schedule="constant",
            decay="decoupled", decay_vectors=decay_vectors,
        )  # fmt: skip
        opt = recipe.make_optimizer(10, [kernel, bias])
        opt.apply_gradients([(np.zeros_like(kernel0), kernel), (np.zeros_like(bias0), bias)])
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(kernel), kernel0 * (1 - lr * wd), rtol=1e-6
        )
        expected_bias = bias0 * (1 - lr * wd) if decay_vectors else bias0
        np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), expected_bias, rtol=1e-6)
