"""kerascnn.tasks.ImageClassifier: a backbone made a classifier that trains, saves, loads,
exports, mixes batches in its train step and derives its label format.

References are independent of the task: NumPy (pooling, dense, softmax, cross-entropy,
SGD), Keras's own layers and the parameter counts of ``kerascnn.zoo.create``."""

import importlib.util

import keras
import numpy as np
import pytest

from kerascnn import zoo
from kerascnn.errors import UserInputError
from kerascnn.layers.augment import mix as M
from kerascnn.layers.augment.flip_crop import RandomFlip
from kerascnn.tasks import ImageClassifier, input_layers, split_classifier

tf_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or importlib.util.find_spec("tensorflow") is None,
    reason="SavedModel export needs the TensorFlow backend",
)


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def _backbone(shape=(8, 8, 3), filters=6, pooled=False):
    """A tiny functional backbone: conv -> BN -> ReLU, a 4-D feature map (or flattened)."""
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(filters, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    if pooled:
        x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="tiny_backbone")


def _images(n=16, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, *shape)).astype("float32")


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- the graph
@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("activation", [None, "softmax"])
def test_head_is_pooling_dense_and_activation(activation):
    """Inference: backbone -> global average pooling -> Dense, computed with NumPy from the
    backbone's features and the Dense weights; softmax when asked."""
    backbone = _backbone()
    norm = keras.layers.Rescaling(1 / 255.0)
    task = ImageClassifier(backbone, 5, preprocessing=[norm], activation=activation)
    x = _images()
    features = _np(backbone(x / 255.0, training=False)).astype("float64")
    kernel, bias = (_np(w).astype("float64") for w in task.get_layer("predictions").weights)
    logits = features.mean(axis=(1, 2)) @ kernel + bias
    expected = _softmax(logits) if activation == "softmax" else logits
    np.testing.assert_allclose(_np(task(x, training=False)), expected, rtol=1e-4, atol=1e-5)
    assert task.output_kind == ("probabilities" if activation == "softmax" else "logits")
    assert task.count_params() == backbone.count_params() + 6 * 5 + 5


@pytest.mark.jax
@pytest.mark.torch
def test_pooled_backbone_and_bad_arguments():
    task = ImageClassifier(_backbone(pooled=True), 3, pooling=None, dropout=0.5)
    assert [type(layer).__name__ for layer in task.layers[-3:]] == [
        "Dropout",
        "Dense",
        "Activation",
    ]
    with pytest.raises(ValueError, match="pooling=None"):
        ImageClassifier(_backbone(pooled=True), 3)
    with pytest.raises(ValueError, match="pooling='avg'"):
        ImageClassifier(_backbone(), 3, pooling=None)
    with pytest.raises(ValueError, match="activation"):
        ImageClassifier(_backbone(), 3, activation="sigmoid")
    with pytest.raises(ValueError, match="num_classes"):
        ImageClassifier(_backbone(), None)
    with pytest.raises(
        UserInputError,
        match=r"ImageClassifier\(\) has no option 'polling' \(received polling='max'\); its "
        "options are: pooling, dropout, activation, kernel_regularizer, head_dtype, trainable",
    ):
        ImageClassifier(_backbone(), 3, polling="max")
    frozen = ImageClassifier(_backbone(), 3, trainable=False)
    assert not frozen.trainable and not frozen.trainable_weights
    assert ImageClassifier.from_config(frozen.get_config()).trainable is False


@pytest.mark.jax
@pytest.mark.torch
def test_from_preset_keeps_the_models_own_top():
    """The task of a registered name is the zoo model itself (its own top: ResNet's pooling
    and Dense, LeNet's fully connected layers) with a float32 output: the same parameters
    and, with the same weights, the same logits."""
    for name, classes in (("resnet20", 7), ("lenet5", 10)):
        task = ImageClassifier.from_preset(name, num_classes=classes)
        model = zoo.create(name, num_classes=classes)
        assert task.head is not None and task.count_params() == model.count_params()
        model.set_weights(task.get_weights())  # the same layers in the same order
        x = _images(2, tuple(model.inputs[0].shape[1:]))
        np.testing.assert_allclose(
            _np(task(x, training=False)), _np(model(x, training=False)), rtol=1e-5, atol=1e-5
        )
    backbone, head = split_classifier(zoo.create("lenet5"))
    assert len(backbone.outputs[0].shape) == 4
    assert isinstance(head.layers[1], keras.layers.Flatten)


@pytest.mark.jax
@pytest.mark.torch
def test_from_preset_new_head_and_its_refusals():
    """head="new": global average pooling and a new Dense "predictions" on the features."""
    task = ImageClassifier.from_preset("resnet20", num_classes=4, head="new", dropout=0.2)
    backbone, _ = split_classifier(zoo.create("resnet20"))
    width = int(backbone.outputs[0].shape[-1])
    assert task.head is None and task.get_layer("predictions").units == 4
    assert task.count_params() == backbone.count_params() + width * 4 + 4
    with pytest.raises(
        UserInputError, match="head must be one of 'zoo', 'new'; received head='auto'"
    ):
        ImageClassifier.from_preset("resnet20", head="auto")
    with pytest.raises(UserInputError, match="model_options cannot set 'include_top'"):
        ImageClassifier.from_preset("resnet20", model_options={"include_top": False})


@pytest.mark.jax
@pytest.mark.torch
def test_from_zoo_is_a_deprecated_from_preset():
    with pytest.warns(DeprecationWarning, match="use ImageClassifier.from_preset"):
        task = ImageClassifier.from_zoo("lenet5", 10)
    assert task.count_params() == zoo.create("lenet5", num_classes=10).count_params()


# --------------------------------------------------------------------------- train, save, load
@pytest.mark.jax
@pytest.mark.torch
def test_task_trains_saves_and_loads(tmp_path):
    """Loss decreases on a fixed batch; the .keras file loads back as an ImageClassifier
    with equal predictions, config and compiled loss."""
    keras.utils.set_random_seed(0)
    task = ImageClassifier(
        _backbone(),
        4,
        preprocessing=[keras.layers.Rescaling(1 / 255.0)],
        augmentation=[RandomFlip(seed=1)],
        dropout=0.1,
    )
    task.compile(keras.optimizers.Adam(0.01))
    assert isinstance(task.loss, keras.losses.SparseCategoricalCrossentropy)
    x, y = _images(), np.arange(16) % 4
    losses = [float(_np(task.train_on_batch(x, y, return_dict=True)["loss"])) for _ in range(15)]
    assert np.mean(losses[-3:]) < losses[0]  # (flips and dropout make single steps noisy)
    path = tmp_path / "task.keras"
    task.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ImageClassifier)
    assert loaded.get_config()["dropout"] == 0.1 and loaded.num_classes == 4
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), task.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    # recompiled from the file: evaluate works without compile()
    assert np.isfinite(loaded.evaluate(x, y, verbose=0)[0])


@pytest.mark.jax
@pytest.mark.torch
def test_mixed_precision_outputs_float32():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        task = ImageClassifier(_backbone(), 3)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert task.get_layer("predictions").compute_dtype == "bfloat16"
    out = task(_images(4), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    clone = ImageClassifier.from_config(task.get_config())  # under the float32 policy
    assert clone.get_layer("predictions").compute_dtype == "bfloat16"


# --------------------------------------------------------------------------- labels
@pytest.mark.jax
@pytest.mark.torch
def test_label_format_is_derived():
    """Sparse without mixing; one-hot with a mixer or label smoothing; the auto loss follows,
    integer labels serve a one-hot loss (converted) and a sparse one alike."""
    plain = ImageClassifier(_backbone(), 4)
    assert plain.label_format == "sparse"
    assert ImageClassifier(_backbone(), 4, label_smoothing=0.1).label_format == "onehot"
    mixed = ImageClassifier(_backbone(), 4, mixer=M.MixUp(0.2, seed=1))
    assert mixed.label_format == "onehot"
    mixed.compile("sgd")
    assert isinstance(mixed.loss, keras.losses.CategoricalCrossentropy)
    with pytest.raises(ValueError, match="sparse loss"):
        mixed.compile("sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    x, y = _images(8), np.arange(8) % 4
    logits = _np(plain(x, training=False)).astype("float64")
    expected = -np.log(_softmax(logits)[np.arange(8), y]).mean()
    for loss in (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.losses.CategoricalCrossentropy(from_logits=True),  # integer labels converted
    ):
        plain.compile("sgd", loss=loss, metrics=["accuracy"])
        value, accuracy = plain.evaluate(x, y, verbose=0)
        np.testing.assert_allclose(value, expected, rtol=1e-4)
        np.testing.assert_allclose(accuracy, (logits.argmax(-1) == y).mean(), atol=1e-6)


# --------------------------------------------------------------------------- mixing
@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("mixer", ["mixup", "cutmix"])
def test_mixing_in_the_train_step_equals_numpy_on_the_mixed_batch(mixer):
    """One training step of a task with a mixer: its loss and SGD update of the head equal
    NumPy's on the batch a twin mixer (same seed) mixes, not the unmixed batch's. The
    backbone (a Flatten) has no weights: only the Dense head learns. XLA on JAX; eager on TF / PyTorch."""
    n, classes, lr = 16, 4, 0.1

    def make():
        if mixer == "mixup":
            return M.MixUp(0.4, num_classes=classes, seed=5)
        return M.CutMix(1.0, num_classes=classes, seed=5)

    inputs = keras.Input((8, 8, 3))
    backbone = keras.Model(inputs, keras.layers.Flatten()(inputs), name="flat")
    task = ImageClassifier(backbone, classes, pooling=None, mixer=make())
    dense = task.get_layer("predictions")
    dense.kernel.assign(np.random.default_rng(1).normal(0, 0.3, dense.kernel.shape))
    kernel, bias = (_np(v).astype("float64") for v in dense.weights)
    task.compile(keras.optimizers.SGD(lr), jit_compile=keras.backend.backend() == "jax")
    x = np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype("float32")
    y = np.arange(n) % classes
    state0 = _np(task.mixer.generator.state)
    loss = float(np.asarray(task.train_on_batch(x, y, return_dict=True)["loss"]))
    assert not np.array_equal(_np(task.mixer.generator.state), state0)

    def numpy_step(images, targets):
        features = images.reshape(n, -1).astype("float64")
        log_p = np.log(_softmax(features @ kernel + bias))
        error = (np.exp(log_p) - targets) / n
        return -(targets * log_p).sum(1).mean(), features.T @ error, error.sum(0)

    xm, ym = (_np(t) for t in make()(x, y, training=True))
    expected, grad_kernel, grad_bias = numpy_step(xm, ym)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert not np.allclose(xm, x)  # the twin did mix, and the step trained on its batch:
    assert abs(loss - numpy_step(x, np.eye(classes)[y])[0]) > 1e-3  # not the plain one's
    np.testing.assert_allclose(_np(dense.kernel), kernel - lr * grad_kernel, atol=1e-5)
    np.testing.assert_allclose(_np(dense.bias), bias - lr * grad_bias, atol=1e-5)
    # validation / evaluate: plain integer labels, no mixing
    np.testing.assert_allclose(task.predict(x, verbose=0), _np(task(x, training=False)), atol=1e-6)
    assert np.isfinite(task.evaluate(x, y, verbose=0)[0])


@pytest.mark.jax
def test_mixing_task_fits_under_xla_and_saves(tmp_path):
    task = ImageClassifier(_backbone(), 4, mixer=M.CutMix(1.0, seed=2))
    task.compile("sgd", jit_compile=True)
    x, y = _images(32), np.arange(32) % 4
    history = task.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0)
    assert np.all(np.isfinite(history.history["val_loss"]))
    task.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.mixer, M.CutMix) and loaded.label_format == "onehot"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), task.predict(x, verbose=0), atol=1e-6)


@pytest.mark.jax
@pytest.mark.torch
def test_pipeline_leaves_mixing_to_the_model(tmp_path):
    from kerascnn import pipelines

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
        y=np.arange(40) % 4,
    )
    data = pipelines.load(tmp_path / "d.npz")
    layers = input_layers(data, "flip,mixup:0.2", normalize="scale")
    assert isinstance(layers.mixer, M.MixUp)
    assert [type(layer).__name__ for layer in layers.augmentation] == ["RandomFlip"]
    assert [type(layer).__name__ for layer in layers.preprocessing] == ["Rescaling"]
    pipe = pipelines.build(data, batch_size=8, normalize="none", loader="numpy")
    xb, yb = pipe.dataset[0]
    assert yb.ndim == 1 and "int" in str(yb.dtype)
    assert xb.dtype == np.uint8  # raw pixels: neither normalized nor mixed


# --------------------------------------------------------------------------- export
def _tiny_task(activation=None):
    keras.utils.set_random_seed(3)
    task = ImageClassifier(
        _backbone(), 5, preprocessing=[keras.layers.Rescaling(1 / 255.0)],
        augmentation=[RandomFlip(seed=1)], activation=activation,
    )  # fmt: skip
    task.compile(keras.optimizers.SGD(0.05))
    x, y = _images(16), np.arange(16) % 5
    task.fit(x, y, epochs=2, verbose=0)  # moving statistics of the batch norm move
    return task, x


@tf_only
def test_saved_model_equals_predict(tmp_path):
    import tensorflow as tf

    from kerascnn.export import saved_model

    task, x = _tiny_task()
    path = saved_model(task, tmp_path / "sm")
    loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, task.predict(x, verbose=0), atol=1e-5)


@tf_only
@pytest.mark.parametrize("activation", [None, "softmax"])
def test_serving_export_asks_the_task(activation, tmp_path):
    """Probabilities of the export sum to 1 and equal predict (a softmax task) or NumPy's
    softmax of predict (a logits task): never softmaxed twice."""
    import tensorflow as tf

    from kerascnn.export import serving_export

    task, x = _tiny_task(activation)
    path = serving_export(task, tmp_path / "models")
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](images=tf.constant(x.astype("uint8")))
    predicted = task.predict(x.astype("uint8").astype("float32"), verbose=0)
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    expected = predicted if activation == "softmax" else _softmax(predicted.astype("float64"))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@tf_only
def test_export_of_softmax_behind_a_float32_output_layer(tmp_path):
    """A plain model ending in keras.layers.Softmax followed by a linear float32 Activation
    (the mixed-precision output layer) is still recognized as giving probabilities."""
    import tensorflow as tf

    from kerascnn.activations import outputs_are_probabilities
    from kerascnn.export import serving_export

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    x = keras.layers.Softmax()(keras.layers.Dense(3)(x))
    model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32")(x))
    assert outputs_are_probabilities(model)
    images = _images(6).astype("uint8")
    path = serving_export(model, tmp_path / "models")
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    predicted = model.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy(), predicted, atol=1e-5)


# --------------------------------------------------------------------------- kerascnn train
@pytest.mark.jax
def test_train_from_names_builds_the_task_with_mixing_and_mixed_precision(tmp_path):
    """``kerascnn train``'s network is an ImageClassifier: the zoo model's parameters, the
    pipeline's normalization and flip inside, MixUp in its train step (integer labels from
    the loader), float32 outputs under mixed precision, and a model.keras that loads."""
    from conftest import write_brightness_npz

    from kerascnn.training.run import train_from_names

    npz = write_brightness_npz(tmp_path / "tiny.npz", 96)
    run = train_from_names(
        "lenet5", str(npz), recipe="vgg-sweep", epochs=1, batch_size=32,
        augment="flip,mixup:0.2", mixed_precision="mixed_bfloat16", out_dir=tmp_path / "run",
        verbose=0,
    )  # fmt: skip
    task = run.model
    assert isinstance(task, ImageClassifier) and isinstance(task.mixer, M.MixUp)
    assert task.label_format == "onehot" and task.output_kind == "logits"
    assert [type(layer).__name__ for layer in task.augmentation] == ["RandomFlip"]
    assert len(task.preprocessing) == 1
    normalization = task.preprocessing[0].count_params()  # per-channel mean and std
    assert (
        task.count_params() - normalization
        == zoo.create("lenet5", input_shape=(32, 32, 3), num_classes=3).count_params()
    )
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    assert keras.backend.standardize_dtype(task(x, training=False).dtype) == "float32"
    assert np.isfinite(run.result.val_accuracy)
    loaded = keras.models.load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), task.predict(x, verbose=0), atol=1e-5)
