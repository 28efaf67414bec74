"""Helpers of the regularization experiments on top of
:mod:`kerascnn.experiments.common`: raw-pixel arrays, the small VGG-like network with its
dropout / penalty variants, training with per-epoch records (accuracy, time, weight norm).
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from kerascnn import layers as kl
from kerascnn import pipelines
from kerascnn.checks import check_choice, check_options
from kerascnn.errors import UserInputError
from kerascnn.experiments import common
from kerascnn.pipelines.sources import array_dataset

__all__ = [
    "Arrays",
    "CONV_KINDS",
    "DROPOUT_KINDS",
    "EpochRecorder",
    "kernel_norm",
    "kernels",
    "pipes",
    "REGULARIZATION",
    "setup",
    "small_vgg",
    "SWEEP_OPTIONS",
    "train",
]


# --------------------------------------------------------------------------- data
@dataclasses.dataclass
class Arrays:
    """Raw ``uint8`` pixels and integer labels of an experiment's training and validation
    parts (the models of these experiments take raw pixels: normalization is in the model)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @classmethod
    def of(cls, data: common.ExperimentData) -> Arrays:
        x_train, y_train = data.train.numpy()
        x_val, y_val = data.val.numpy()
        return cls(x_train, y_train.astype(np.int64), x_val, y_val.astype(np.int64))


def setup(name: str, options: dict, full: dict, quick: dict):
    """Resolve the options, create the output folder and load the data: returns
    ``(options, data, arrays, out, started)``."""
    started = time.time()
    o = common.resolve(options, full, quick)
    out = common.output_dir(o["out"], name)
    data = common.load_experiment_data(name, o)
    return o, data, Arrays.of(data), out, started


# --------------------------------------------------------------------------- networks
DROPOUT_KINDS = ("none", "dropout", "spatial", "dropconnect", "cutout")
CONV_KINDS = ("plain", "l1", "hadamard")
#: :func:`small_vgg`'s ``**regularization`` and their defaults
REGULARIZATION = {"drop": "none", "rate": 0.3, "conv": "plain", "l1": 0.0, "l2": 0.0, "seed": 0}


def small_vgg(
    input_shape,
    num_classes: int,
    *,
    filters: int = 32,
    num_blocks: int = 3,
    convs_per_block: int = 2,
    hidden: int = 128,
    pool: str = "gap",
    name: str = "small_vgg",
    **regularization,
) -> keras.Model:
    """The experiments' VGG-like net: blocks of 3x3 convs (ReLU) + 2x2 max pool, filters
    doubling per block, global average pooling (``pool="gap"``) or flattening
    (``pool="flatten"``), a hidden dense layer, a linear classifier.

    ``**regularization`` (:data:`REGULARIZATION`, defaults: none): ``drop``: ``"dropout"``
    (``Dropout(rate)`` after every pool and after the hidden layer), ``"spatial"``
    (``SpatialDropout(rate)`` after every pool, ``Dropout`` after the hidden layer),
    ``"dropconnect"`` (every conv and dense kernel is a DropConnect one), ``"cutout"``
    (``Cutout`` of a quarter of the image on the input; no dropout); ``rate`` (0.3);
    ``conv``: ``"plain"``, ``"l1"`` (an ``L1(l1)`` penalty on every kernel) or
    ``"hadamard"`` (Hadamard layers with the same L1 strength); ``l2``: an ``L2(l2)`` penalty
    on every kernel (``l2 * sum(w**2)``); ``seed``: of the random layers (0).
    """
    options = check_options("small_vgg", regularization, REGULARIZATION)
    drop, rate, conv = options["drop"], options["rate"], options["conv"]
    l1, l2, seed = options["l1"], options["l2"], options["seed"]
    check_choice("drop", drop, DROPOUT_KINDS)
    check_choice("conv", conv, CONV_KINDS)
    check_choice("pool", pool, ("gap", "flatten"))
    seeds = iter(range(seed * 1000, seed * 1000 + 1000))

    def conv_layer(f, lname):
        if drop == "dropconnect":
            return kl.DropConnectConv2D(
                f, 3, rate, padding="same", activation="relu", seed=next(seeds), name=lname
            )
        if conv == "hadamard":
            return kl.HadamardConv2D(f, 3, padding="same", activation="relu", l1=l1, name=lname)
        reg = _regularizer(conv, l1, l2)
        return keras.layers.Conv2D(
            f, 3, padding="same", activation="relu", kernel_regularizer=reg, name=lname
        )

    def dense_layer(units, lname, activation=None):
        if drop == "dropconnect":
            return kl.DropConnectDense(
                units, rate, activation=activation, seed=next(seeds), name=lname
            )
        if conv == "hadamard":
            return kl.HadamardDense(units, l1=l1, activation=activation, name=lname)
        reg = _regularizer(conv, l1, l2)
        return keras.layers.Dense(units, activation=activation, kernel_regularizer=reg, name=lname)

    inputs = keras.Input(input_shape, name="images")
    x = inputs
    if drop == "cutout":
        x = kl.Cutout(size=max(1, input_shape[0] // 4), seed=next(seeds), name="cutout")(x)
    for b in range(1, num_blocks + 1):
        f = filters * 2 ** (b - 1)
        for c in range(1, convs_per_block + 1):
            x = conv_layer(f, f"block{b}_conv{c}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if drop == "dropout":
            x = kl.Dropout(rate, seed=next(seeds), name=f"block{b}_dropout")(x)
        elif drop == "spatial":
            x = kl.SpatialDropout(rate, seed=next(seeds), name=f"block{b}_spatial_dropout")(x)
    if pool == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    x = dense_layer(hidden, "fc1", activation="relu")(x)
    if drop in ("dropout", "spatial"):
        x = kl.Dropout(rate, seed=next(seeds), name="fc1_dropout")(x)
    outputs = dense_layer(num_classes, "head")(x)
    return keras.Model(inputs, outputs, name=name)


def _regularizer(conv, l1, l2):
    if conv == "l1" and l1:
        return keras.regularizers.L1(l1)
    return keras.regularizers.L2(l2) if l2 else None


def kernels(model: keras.Model) -> list:
    """The effective conv / dense kernels of ``model`` (Hadamard layers: ``a * b``)."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (kl.HadamardConv2D, kl.HadamardDense)):
            out.append(np.asarray(keras.ops.convert_to_numpy(layer.kernel)))
        elif isinstance(layer, keras.layers.Layer) and hasattr(layer, "kernel"):
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) or isinstance(
                layer, (kl.DropConnectConv2D, kl.DropConnectDense)
            ):
                out.append(np.asarray(keras.ops.convert_to_numpy(layer.kernel)))
    return out


def kernel_norm(model: keras.Model) -> float:
    """The global L2 norm of all conv / dense kernels."""
    return float(
        np.sqrt(sum(float(np.sum(np.square(k, dtype=np.float64))) for k in kernels(model)))
    )


# --------------------------------------------------------------------------- training
class EpochRecorder(keras.callbacks.Callback):
    """Per epoch: training seconds (without validation), the kernel norm if asked, and the
    logs; ``rows`` holds one dict per epoch."""

    def __init__(self, norm: bool = False):
        super().__init__()
        self.norm = norm
        self.rows: list[dict] = []
        self._start = None
        self._train_seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._train_seconds
        if seconds is None:
            seconds = time.perf_counter() - self._start
        row = {"epoch": epoch + 1, "train_seconds": round(seconds, 3)}
        row.update({k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"})
        if self.norm:
            row["weight_norm"] = kernel_norm(self.model)
        self.rows.append(row)


def pipes(
    data: common.ExperimentData,
    batch_size: int,
    seed: int,
    augment=None,
    placement: str = "model",
    x_train=None,
    y_train=None,
):
    """``(train, validation, layers)``: :class:`~kerascnn.pipelines.Pipeline` s of raw
    pixels and integer labels, and the task's :class:`~kerascnn.tasks.InputLayers` of
    ``augment`` (normalization, MixUp / CutMix, and with ``placement="model"`` the
    augmentation; with ``"pipeline"`` the augmentation runs in the training pipeline);
    :func:`~kerascnn.experiments.common.classifier` puts them in the model. ``x_train``, ``y_train`` replace the training
    images / labels (memorization)."""
    from kerascnn.tasks import input_layers

    check_choice("placement", placement, ("model", "pipeline"))
    train = data.train
    if x_train is not None:
        train = array_dataset(
            data.source, "train", x_train, np.asarray(y_train), data.train.class_names
        )
    layers = input_layers(train, augment or None, seed=seed)
    in_pipeline = None
    if placement == "pipeline":
        in_pipeline, layers = layers.augmentation, dataclasses.replace(layers, augmentation=[])
    pipe = pipelines.build(
        train, batch_size=batch_size, seed=seed, augment=in_pipeline, normalize="none"
    )
    val = pipelines.build(
        data.val, batch_size=max(batch_size, 256), shuffle=False, normalize="none"
    )
    return pipe, val, layers


#: :func:`train`'s ``**recipe_options`` (of its default recipe) and their defaults
SWEEP_OPTIONS = {
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "constant",
    "momentum": 0.9,
}


def train(
    model,
    pipe,
    val,
    *,
    epochs: int,
    recipe=None,
    callbacks=(),
    norm: bool = False,
    **recipe_options,
) -> list[dict]:
    """Compile ``model`` (an :class:`~kerascnn.tasks.ImageClassifier`: the loss matches its
    label format) with a :class:`~kerascnn.training.Recipe` and train it for ``epochs``;
    returns one row per epoch (see :class:`EpochRecorder`).

    ``recipe``: the recipe to use; default ``"vgg-sweep"`` with ``**recipe_options``
    (:data:`SWEEP_OPTIONS`): ``optimizer``: ``"adam"`` (default), ``"adamw"`` (decoupled
    ``weight_decay``), ``"sgd"`` (with ``weight_decay``: Keras's decoupled decay); ``lr``
    (1e-3), ``weight_decay`` (0), ``schedule`` (``"constant"``) and ``momentum`` (0.9).
    Decoupled decay skips biases, as an L2 penalty on kernels does. Trains through
    :func:`kerascnn.training.fit` (writing no files); a non-finite loss ends the run: the
    rows are the epochs before it, and a line names where it diverged.
    """
    from kerascnn.training import TrainingDiverged, fit, get_recipe

    sweep = check_options("train", recipe_options, SWEEP_OPTIONS)
    if recipe is not None and recipe_options:
        raise UserInputError(
            f"train takes a recipe or the options of the default one, not both; received "
            f"recipe={recipe.name!r} and {', '.join(sorted(recipe_options))}"
        )
    if recipe is None:
        recipe = get_recipe(
            "vgg-sweep",
            optimizer=sweep["optimizer"],
            lr=sweep["lr"],
            momentum=sweep["momentum"],
            weight_decay=sweep["weight_decay"],
            decay="decoupled" if sweep["weight_decay"] else "coupled",
            decay_vectors=not sweep["weight_decay"],
            schedule=sweep["schedule"],
            batch_size=1,
        )
    recipe = dataclasses.replace(recipe, epochs=epochs, early_stopping=0)
    recorder = EpochRecorder(norm=norm)
    try:
        fit(model, pipe, val, recipe, callbacks=[*callbacks, recorder], verbose=0)
    except TrainingDiverged as error:
        common.log(model.name, f"stopped: {error}")
    return recorder.rows
