"""One training run from names: model, data source and recipe. The CLI's ``train``
command is a thin layer over :func:`train_from_names`."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras

from kerascnn import pipelines, zoo
from kerascnn.pipelines.validate import check_trainable
from kerascnn.tasks import ImageClassifier
from kerascnn.training.loop import FitResult, fit
from kerascnn.training.recipes import get_recipe
from kerascnn.training.run_folder import check_run_folder


@dataclasses.dataclass
class TrainedRun:
    model: keras.Model
    result: FitResult
    class_names: list[str]


def load_train_val(
    source: str,
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir=None,
    on_bad_file: str = "error",
):
    """Training and validation parts of ``source``: the sample's own split, else a stratified
    ``validation_fraction`` carved from the training split with ``seed``."""
    if source == pipelines.SAMPLE_NAME:
        return pipelines.load(source, "train"), pipelines.load(source, "validation")
    kwargs = dict(
        validation_fraction=validation_fraction, seed=seed, data_dir=data_dir,
        on_bad_file=on_bad_file,
    )  # fmt: skip
    return pipelines.load(source, "train", **kwargs), pipelines.load(source, "validation", **kwargs)


def train_from_names(
    model_name: str,
    dataset: str = pipelines.SAMPLE_NAME,
    *,
    recipe: str = "quick",
    out_dir: str | os.PathLike | None = None,
    placement: str = "model",
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir=None,
    jit_compile="auto",
    mixed_precision: str | None = None,
    model_overrides: dict | None = None,
    callbacks=(),
    verbose="auto",
    strategy="auto",
    lr_scaling: str = "linear",
    overwrite: bool = False,
    on_bad_file: str = "error",
    **recipe_overrides,
) -> TrainedRun:
    """Build ``model_name`` for ``dataset``, train it with ``recipe`` and return the model: a
    :class:`kerascnn.tasks.ImageClassifier` (``from_zoo``: the zoo model's backbone and
    head) with raw-pixel inputs, owning the normalization, the in-model augmentation, the
    float32 logits under ``mixed_precision`` and MixUp / CutMix (mixed in its train step).
    The data pipelines deliver integer labels; the task's ``label_format`` decides the loss.

    ``strategy`` (``"auto"``, ``"none"``, ``"mirrored"``, ``"multiworker"`` or a
    ``tf.distribute.Strategy``; see :mod:`kerascnn.training.distribute`) places the run on
    several devices or machines: the recipe's ``batch_size`` is then per replica, the global
    batch ``batch_size * replicas``, and the learning rate is scaled by ``lr_scaling``
    (``"linear"``, ``"sqrt"`` or ``"none"``; :func:`~kerascnn.training.distribute.scale_recipe`).

    ``out_dir`` is checked before any data is read (:func:`~kerascnn.training.run_folder.check_run_folder`):
    a finished run there is refused unless ``overwrite``; an unfinished one is resumed. The
    data is validated before training (:func:`kerascnn.pipelines.validate.check_trainable`).
    ``on_bad_file`` is passed to :func:`kerascnn.pipelines.load` (image folders).
    """
    from kerascnn.training import distribute

    zoo.model_info(model_name)  # unknown names fail before any data is read
    rec = get_recipe(recipe, **recipe_overrides)
    if out_dir is not None:
        check_run_folder(out_dir, overwrite)
    # before any other TensorFlow op: MultiWorkerMirroredStrategy must start first
    strat = distribute.resolve_for_backend(strategy)
    multiworker = strat is not None and distribute.is_multiworker(strat)
    rec = distribute.scale_recipe(rec, distribute.num_replicas(strat), lr_scaling)
    if mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
        raise ValueError(
            "mixed_precision must be None, 'mixed_float16' or 'mixed_bfloat16'; "
            f"received mixed_precision={mixed_precision!r}"
        )
    keras.utils.set_random_seed(seed)
    train, val = load_train_val(dataset, validation_fraction, seed, data_dir, on_bad_file)
    check_trainable(train, val)
    # The task mixes batches in its train_step and converts labels itself; the multi-worker
    # loop (distribute.fit_distributed) calls the model, not its train_step, so it gets the
    # mixing and one-hot labels from the pipeline.
    mix_in = "pipeline" if multiworker else "model"
    labels = "onehot" if multiworker and rec.needs_one_hot() else "sparse"
    # Augmentation in the model leaves the input pipeline only shuffle + batch: the NumPy
    # loader does that on every backend, without tf.data's pause at each epoch's start
    # (benchmarks/loader_throughput.py). tf.data where it is needed (tfds, placement="pipeline")
    # and for tf.distribute's multi-worker sharding.
    numpy_ok = placement == "model" and train.readable and not multiworker
    loader = "numpy" if numpy_ok else "auto"
    # Under MultiWorkerMirroredStrategy every variable of the model must be created in the
    # strategy's scope: so must the augmentation layers' seed generators (placement="model").
    in_scope = multiworker and placement == "model"
    with distribute.scope_of(strat) if in_scope else contextlib.nullcontext():
        pipe = pipelines.build(
            train, batch_size=rec.batch_size, seed=seed, augment=rec.augment or None,
            placement=placement, normalize_in="model", labels=labels,
            drop_remainder=multiworker, loader=loader, mix_in=mix_in,
        )  # fmt: skip
    val_pipe = pipelines.build(
        val, batch_size=rec.batch_size, shuffle=False, normalize=pipe.normalization,
        normalize_in="model", labels=labels, loader=loader,
    )  # fmt: skip
    previous_policy = keras.mixed_precision.global_policy()

    def build_model() -> ImageClassifier:
        if mixed_precision:
            keras.mixed_precision.set_global_policy(mixed_precision)
        try:  # the task's output layer is float32 under any policy: the loss sees float32
            return ImageClassifier.from_zoo(
                model_name, train.num_classes, input_shape=train.image_shape,
                zoo_kwargs=model_overrides, preprocessing=pipe.model_preprocessing,
                augmentation=pipe.model_augmentation,
                mixer=pipe.mix if mix_in == "model" else None,
                label_smoothing=rec.label_smoothing, name=model_name,
            )  # fmt: skip
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)

    if multiworker:
        with strat.scope():  # the model is created under the scope, the optimizer in the loop
            net = build_model()
        one_hot = rec.needs_one_hot()  # the pipeline's labels (see mix_in above)
        result = distribute.fit_distributed(
            net, pipe, val_pipe, rec, strategy=strat, out_dir=out_dir, one_hot=one_hot,
            verbose=verbose, callbacks=callbacks, overwrite=overwrite,
        )  # fmt: skip
    else:  # one device, MirroredStrategy or JAX DataParallel: model.fit under the scope
        with distribute.scope_of(strat):  # model, optimizer and metrics created under it
            net = build_model()
            one_hot = net.label_format == "onehot"  # derived from the task
            result = fit(
                net, pipe, val_pipe, rec, out_dir=out_dir, one_hot=one_hot,
                jit_compile=jit_compile, callbacks=callbacks, verbose=verbose, overwrite=overwrite,
            )  # fmt: skip
    return TrainedRun(net, result, list(train.info.class_names))
