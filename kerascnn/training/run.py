"""One training run from names: model, data source and recipe. The CLI's ``train``
command is a thin layer over :func:`train_from_names`."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os

import keras

from kerascnn import pipelines, zoo
from kerascnn.pipelines.validate import check_trainable
from kerascnn.tasks import ImageClassifier, input_layers
from kerascnn.training.config import RunConfig
from kerascnn.training.loop import FitResult, fit
from kerascnn.training.recipes import get_recipe
from kerascnn.training.run_folder import (
    CLASS_NAMES,
    atomic_write_text,
    check_run_folder,
    record_command,
    run_folder,
)


@dataclasses.dataclass
class TrainedRun:
    model: keras.Model
    result: FitResult
    class_names: list[str]
    curves: os.PathLike | None = None  # the run folder's curves.png (the plots extra)
    export_path: str | None = None  # the SavedModel version written (RunConfig.export)


def load_train_val(
    source: str,
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir=None,
    on_bad_file: str = "error",
    image_size=None,
):
    """Training and validation parts of ``source``: the sample's own split (or an npz's
    ``x_val`` / ``y_val``), else a stratified ``validation_fraction`` carved from the
    training split with ``seed``. ``image_size`` (``(height, width)``) resizes the images
    (see :func:`kerascnn.pipelines.load`)."""
    if source == pipelines.SAMPLE_NAME and image_size is None:
        return pipelines.load(source, "train"), pipelines.load(source, "validation")
    kwargs = dict(
        validation_fraction=validation_fraction, seed=seed, data_dir=data_dir,
        on_bad_file=on_bad_file, image_size=image_size,
    )  # fmt: skip
    return pipelines.load(source, "train", **kwargs), pipelines.load(source, "validation", **kwargs)


def train_from_names(
    model_name: str,
    dataset: str = pipelines.SAMPLE_NAME,
    *,
    callbacks=(),
    verbose="auto",
    check_data=None,
    **options,
) -> TrainedRun:
    """:func:`train` with the run given as keyword options: ``model_name``, ``dataset`` and
    ``**options`` make a :class:`~kerascnn.training.config.RunConfig` (its fields, e.g.
    ``recipe="resnet-cifar"``, ``out_dir=...``, ``seed=...``, and recipe fields such as
    ``epochs=30, lr=0.05``); ``callbacks``, ``verbose`` and ``check_data`` as in :func:`train`.
    """
    config = RunConfig.from_options(model_name, dataset, **options)
    return train(config, callbacks=callbacks, verbose=verbose, check_data=check_data)


def train(config: RunConfig, *, callbacks=(), verbose="auto", check_data=None) -> TrainedRun:
    """Build ``config.model`` for ``config.dataset``, train it with ``config.recipe`` and
    return the model: a :class:`kerascnn.tasks.ImageClassifier`
    (:meth:`~kerascnn.tasks.ImageClassifier.from_preset`: the model's backbone and own top) with raw-pixel inputs, owning the normalization, the in-model
    augmentation, the float32 logits under ``mixed_precision`` and MixUp / CutMix (mixed in
    its train step). The data pipelines deliver integer labels; the task's ``label_format``
    decides the loss.

    ``config.strategy`` (``"auto"``, ``"none"``, ``"mirrored"``, ``"multiworker"`` or a
    ``tf.distribute.Strategy``; see :mod:`kerascnn.training.distribute`) places the run on
    several devices or machines: the recipe's ``batch_size`` is then per replica, the global
    batch ``batch_size * replicas``, and the learning rate is scaled by ``config.lr_scaling``
    (:func:`~kerascnn.training.distribute.scale_recipe`).

    ``config.out_dir`` is checked before any data is read
    (:func:`~kerascnn.training.run_folder.check_run_folder`) and owned by this process until
    the run ends (:func:`~kerascnn.training.run_folder.own_run_folder`): a finished run there
    is refused unless ``config.overwrite`` (which moves the old run aside, deletes it when
    this one finishes and puts it back if this one fails before its first epoch); an
    unfinished one is resumed if this is the config that started it (``command.json``);
    ``class_names.txt`` is written before training. The data is validated before training
    (:func:`kerascnn.pipelines.validate.check_trainable`). With the ``plots`` extra
    installed, the run's curves are drawn into ``curves.png`` (``TrainedRun.curves``).

    ``config.export``: the target is checked before any data is read, the signature (image
    shape, classes) once the data is read, and the trained model is exported
    (:func:`kerascnn.export.serving_export`; ``TrainedRun.export_path``).

    ``check_data(train)``, if given, is called with the training data once it is read and
    validated, before training (the CLI prints what it read there). ``callbacks`` are Keras
    callbacks added to the run's own; ``verbose`` is ``fit``'s.
    """
    from kerascnn.training import distribute

    model_name, out_dir, seed = config.model, config.out_dir, config.seed
    zoo.model_info(model_name)  # unknown names fail before any data is read
    rec = get_recipe(config.recipe, **config.recipe_overrides)
    if config.export is not None:  # a target that cannot take the export fails now
        from kerascnn.export import check_export_target

        check_export_target(config.export)
    # before any other TensorFlow op: MultiWorkerMirroredStrategy must start first
    strat = distribute.resolve_for_backend(config.strategy, norm=config.model_overrides.get("norm"))
    multiworker = strat is not None and distribute.is_multiworker(strat)
    # the run folder's owner: this process, the multi-worker chief or JAX's process 0
    chief = distribute.is_writer(strat)
    owner = out_dir is not None and chief
    if owner:
        check_run_folder(out_dir, config.overwrite)  # before any data is read
    # owned until the run ends; with overwrite, the old run is moved aside now and put back
    # if this one fails before its first epoch (a data error, say)
    overwrite = config.overwrite
    folder = run_folder(out_dir, overwrite, check_backup=not multiworker) if owner else None
    with folder or contextlib.nullcontext() as out:
        rec = distribute.scale_recipe(rec, distribute.num_replicas(strat), config.lr_scaling)
        keras.utils.set_random_seed(seed)
        train, val = load_train_val(
            config.dataset, config.validation_fraction, seed, config.data_dir,
            config.on_bad_file, config.image_size,
        )  # fmt: skip
        check_trainable(train, val)
        if check_data is not None:
            check_data(train)
        if config.export is not None:  # the export's signature, before training
            check_export_target(
                config.export, image_shape=train.image_shape,
                class_names=train.info.class_names,
                allow_new_signature=config.allow_new_signature,
            )  # fmt: skip
        if owner:
            record_command(out, run_record(config, train, rec))
            atomic_write_text(out / CLASS_NAMES, "\n".join(train.info.class_names) + "\n")
            overwrite = False  # done above
        # Augmentation in the model leaves the input pipeline only shuffle + batch: the NumPy
        # loader does that on every backend, without tf.data's pause at each epoch's start
        # (benchmarks/loader_throughput.py). tf.data where it is needed (tfds, placement="pipeline")
        # and for tf.distribute's multi-worker sharding.
        numpy_ok = config.placement == "model" and train.readable and not multiworker
        loader = "numpy" if numpy_ok else "auto"
        # The pipelines deliver integer labels; the task mixes (MixUp / CutMix, its mixer)
        # and converts labels in its train step, also in the multi-worker loop. Under
        # MultiWorkerMirroredStrategy every variable of the model must be created in the
        # strategy's scope: so must the seed generators of the augmentation layers and the mixer
        # (under JAX data parallelism too: they are replicated like the model's variables).
        in_scope = multiworker or distribute.is_data_parallel(strat)
        with distribute.scope_of(strat) if in_scope else contextlib.nullcontext():
            layers = input_layers(train, rec.augment or None, seed=seed)
            in_pipeline = layers.augmentation if config.placement == "pipeline" else None
            pipe = pipelines.build(
                train, batch_size=rec.batch_size, seed=seed, augment=in_pipeline,
                normalize="none", drop_remainder=multiworker, loader=loader,
            )  # fmt: skip
        val_pipe = pipelines.build(
            val, batch_size=rec.batch_size, shuffle=False, normalize="none", loader=loader
        )
        task_layers = layers.task_options()
        if config.placement == "pipeline":
            task_layers["augmentation"] = []
        previous_policy = keras.mixed_precision.global_policy()

        def build_model() -> ImageClassifier:
            if config.mixed_precision:
                keras.mixed_precision.set_global_policy(config.mixed_precision)
            try:  # the task's output layer is float32 under any policy: the loss sees float32
                return ImageClassifier.from_preset(
                    model_name, num_classes=train.num_classes, input_shape=train.image_shape,
                    model_options=distribute.model_options(config.model_overrides),
                    **task_layers, label_smoothing=rec.label_smoothing, name=model_name,
                )  # fmt: skip
            finally:
                keras.mixed_precision.set_global_policy(previous_policy)

        # model, optimizer and metrics created under the strategy's scope; the label format is
        # the task's (kerascnn.training.loop.label_onehot)
        with distribute.scope_of(strat):
            net = build_model()
        # the loop over strategy.run (model.fit fails under multiworker; see distribute), or
        # JAX data parallelism (each process fed its rows, process 0 writing the run folder)
        if multiworker or distribute.is_data_parallel(strat):
            result = distribute.fit_distributed(
                net, pipe, val_pipe, rec, strategy=strat, out_dir=out_dir, verbose=verbose,
                jit_compile=config.jit_compile,
                callbacks=callbacks, overwrite=overwrite,
            )  # fmt: skip
        else:  # one device or MirroredStrategy: model.fit under the scope
            with distribute.scope_of(strat):
                result = fit(
                    net, pipe, val_pipe, rec, out_dir=out_dir, jit_compile=config.jit_compile,
                    callbacks=callbacks, verbose=verbose, overwrite=overwrite,
                )  # fmt: skip
        curves = None
        if owner:  # the folder's owner draws its curves (multi-worker: the chief alone)
            from kerascnn.plotting import require_plots
            from kerascnn.training.curves import save_curves

            try:
                require_plots()
            except ImportError:
                pass
            else:
                curves = save_curves(out, model_name)
        export_path = None
        if config.export is not None and chief:
            from kerascnn.export import serving_export

            export_path = serving_export(
                net, config.export, class_names=list(train.info.class_names),
                allow_new_signature=config.allow_new_signature,
            )  # fmt: skip
        return TrainedRun(net, result, list(train.info.class_names), curves, export_path)


def run_record(config: RunConfig, train, recipe) -> dict:
    """What ``command.json`` records of a run: the config's choices that make the run what
    it is, the training data's fingerprint (examples, SHA-256 of the labels, classes, image
    shape) and the recipe as the run scaled it. Where the run goes (``out_dir``,
    ``overwrite``, ``export``) and how it is placed (``strategy``) are not part of it."""
    return {
        "model": config.model, "model_overrides": config.model_overrides,
        "dataset": str(config.dataset), "examples": len(train),
        "labels_sha256": hashlib.sha256(train.labels.astype("int64").tobytes()).hexdigest(),
        "class_names": list(train.info.class_names), "image_shape": list(train.image_shape),
        "recipe": dataclasses.asdict(recipe), "seed": config.seed, "placement": config.placement,
        "validation_fraction": config.validation_fraction,
        "mixed_precision": config.mixed_precision,
    }  # fmt: skip
