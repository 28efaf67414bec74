"""The fit loop around ``model.fit``: default callbacks, XLA and precision choices, the run
folder (:mod:`kerascnn.training.run_folder`).

The bookkeeping of a run (the callbacks of :func:`default_callbacks`, the
:class:`FitResult`, ``model.keras`` and ``result.json``) is :func:`run_training`'s, shared
by :func:`fit` (``model.fit``) and the multi-worker loop of
:mod:`kerascnn.training.distribute` (:func:`train_epochs` around its own epoch).

    result = kerascnn.training.fit(model, train_pipe, val_pipe, recipe, out_dir="runs/r20")
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import warnings

import keras

from kerascnn.checks import check_jit_compile, check_options
from kerascnn.errors import UserInputError
from kerascnn.training.callbacks import EpochLine
from kerascnn.training.recipes import Recipe
from kerascnn.training.run_folder import (
    BACKUP,
    RunRecorder,
    SafeBackupAndRestore,
    finish_run,
    run_folder,
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first non-finite loss and remember where (Keras's ``TerminateOnNaN``
    prints a line; this one lets :func:`fit` raise an error naming the epoch)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.where = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.where is None and loss is not None and not math.isfinite(float(loss)):
            self.where = ("loss", float(loss), self.epoch + 1, batch + 1)
            self.model.stop_training = True

    def error(self) -> TrainingDiverged:
        what, value, epoch, batch = self.where
        at = f"epoch {epoch}" + (f", batch {batch}" if batch else "")
        return TrainingDiverged(
            f"the {what} became {value} at {at}; nothing of that epoch was saved: lower the "
            "learning rate"
        )

    def on_epoch_end(self, epoch, logs=None):
        # First in the callback list: raising here keeps the checkpoint, the log and the
        # backup of the last good epoch (the diverged epoch's weights are not written).
        # The epoch's losses are checked too: a huge but finite training loss can leave
        # weights whose validation loss is NaN.
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if self.where is None and value is not None and not math.isfinite(float(value)):
                what = "validation loss" if key == "val_loss" else "loss"
                self.where = (what, float(value), epoch + 1, None)
        if self.where is not None:
            raise self.error()


class LoaderEpoch(keras.callbacks.Callback):
    """Tell a :class:`~kerascnn.pipelines.loader.BatchLoader` which epoch starts, so that its
    shuffle follows the training epoch (also when ``BackupAndRestore`` resumes mid-run)."""

    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def on_epoch_begin(self, epoch, logs=None):
        self.loader.set_epoch(epoch)


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns (also written to ``out_dir/result.json``)."""

    history: dict
    epochs_run: int
    best_epoch: int | None
    stopped_early: bool
    val_accuracy: float | None
    out_dir: str | None


def steps_per_epoch(batches) -> int:
    """Batches per epoch of a ``keras.utils.PyDataset`` or a batched ``tf.data.Dataset``;
    ``ValueError`` when unknown, infinite or empty."""
    if isinstance(batches, keras.utils.PyDataset):
        steps = batches.num_batches
        steps = -1 if steps is None else steps
    elif hasattr(batches, "cardinality"):
        steps = int(batches.cardinality())
    else:
        steps = -1
    if steps <= 0:
        raise UserInputError(
            "train must be finite batches with a known length: a kerascnn Pipeline, a "
            f"keras.utils.PyDataset or a batched tf.data.Dataset; received {type(batches).__name__} "
            f"with {steps if steps >= 0 else 'an unknown number of'} batches"
        )
    return steps


def resolve_jit_compile(jit_compile) -> bool:
    """``"auto"``: JAX: jit always (on the CPU 1.1-1.7x faster than Keras's op-by-op step);
    TensorFlow: XLA only with a GPU (on the CPU XLA trained 0.09-0.38x as fast: ResNet-56 21
    vs 86 images/s); PyTorch: eager (torch.compile 0.63-0.90x on the CPU, 38-95 s to
    compile). ``benchmarks/results/2026-12-04-xla-cpu.json``, AMD EPYC, 2 cores, AVX2 + FMA +
    AVX-512 + AVX512_BF16; on a GPU the on/off ratio is unmeasured."""
    if check_jit_compile(jit_compile) == "auto":
        if keras.backend.backend() == "jax":
            return True  # JAX without jit runs op by op: 1.1-1.7x slower even on the CPU
        if keras.backend.backend() == "torch":
            return False  # torch.compile: 0.63-0.90x on the CPU for these nets; opt in with True
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return jit_compile


def default_callbacks(
    out_dir: pathlib.Path | None,
    has_validation: bool,
    patience: int,
    monitor: str = "val_accuracy",
    tensorboard: bool = False,
    extra=(),
    *,
    backup=None,
) -> list:
    """The callbacks of every kerascnn training run, :func:`fit`'s and the multi-worker
    loop's (:mod:`kerascnn.training.distribute`): the NaN guard (first: a diverged epoch
    writes nothing), EarlyStopping (with validation data and ``patience > 0``; the best
    epoch's weights restored), the run folder's log and best-model checkpoint
    (:class:`RunRecorder`, when ``out_dir`` is given), the backup for resuming, optional
    TensorBoard, then ``extra``.

    ``backup``: ``None`` for :class:`SafeBackupAndRestore` in ``out_dir/backup`` (weights,
    optimizer, random states and early stopping's state), or the callbacks that replace it
    (the multi-worker loop's checkpoint backup, also on workers that write no run folder),
    or a function of the run's ``EarlyStopping`` (``None`` without) that returns them.
    """
    callbacks: list = [StopOnNaN()]
    early = None
    if has_validation and patience > 0:
        early = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=patience,
            restore_best_weights=True,
            verbose=1,
            # explicit: a model trained outside model.fit has no compiled metrics to ask
            mode="min" if monitor.endswith("loss") else "max",
        )
        callbacks.append(early)
    if out_dir is not None:
        # log and best model before the backup: an epoch whose backup exists is logged
        callbacks.append(RunRecorder(out_dir, monitor if has_validation else None))
    if backup is None and out_dir is not None:  # after EarlyStopping: it restores its state
        backup = [SafeBackupAndRestore(out_dir / BACKUP, early_stopping=early)]
    elif callable(backup):
        backup = backup(early)
    callbacks += list(backup or ())
    if out_dir is not None and tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard")))
    return callbacks + list(extra)


def train_epochs(
    model: keras.Model,
    callbacks,
    epochs: int,
    run_epoch,
    *,
    steps: int | None = None,
    verbose=0,
    optimizer=None,
) -> keras.callbacks.History:
    """``model.fit``'s epoch loop and callback protocol around another training step.

    ``run_epoch(epoch, callback_list)`` trains one epoch and returns its logs (``loss``,
    ``accuracy``, and ``val_loss``, ``val_accuracy`` with validation data); it calls the
    list's batch hooks (``on_train_batch_begin/end``, ``on_test_begin``, ...) as
    ``model.fit`` does, and stops the epoch when ``model.stop_training`` is set in one.
    As in ``model.fit``: ``on_train_begin`` may set ``model._initial_epoch`` (a resumed
    backup), ``model.stop_training`` (EarlyStopping, the NaN guard) ends the run after
    the epoch, ``on_train_end`` runs only when training completes. Returns the ``History``.
    """
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, model=model,
            verbose=verbose, epochs=epochs, steps=steps,
        )  # fmt: skip
    model.stop_training = False
    model._initial_epoch = None  # set by a backup callback in on_train_begin
    callbacks.on_train_begin()
    logs = None
    for epoch in range(model._initial_epoch or 0, epochs):
        callbacks.on_epoch_begin(epoch)
        logs = dict(run_epoch(epoch, callbacks))
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    if optimizer is not None and epochs > 0:
        optimizer.finalize_variable_values(model.trainable_weights)  # e.g. EMA weights
    callbacks.on_train_end(logs=logs)
    return model.history


def run_training(
    model: keras.Model,
    train,
    callbacks: list,
    out: pathlib.Path | None,
    *,
    write: bool = True,
) -> FitResult:
    """The bookkeeping of every kerascnn training run around ``train(callbacks)``, which
    trains ``model`` with that callback list (``model.fit``, or :func:`train_epochs` around
    the multi-worker loop's epoch) and returns its ``History``.

    Raises :class:`TrainingDiverged` when the NaN guard (``callbacks[0]``, see
    :func:`default_callbacks`) stopped the run; builds the :class:`FitResult` (from the
    run folder's log when there is one, so that a resumed run's result covers every
    epoch); finishes the run folder ``out`` when ``write`` (:func:`finish_run`:
    ``model.keras``, ``result.json``, then the backup removed; the multi-worker loop's
    chief; other workers write nothing)."""
    history = train(callbacks)
    nan_guard = next(c for c in callbacks if isinstance(c, StopOnNaN))
    if nan_guard.where is not None:
        raise nan_guard.error()
    early = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
    recorder = next((c for c in callbacks if isinstance(c, RunRecorder)), None)
    if recorder is not None and recorder.rows:  # the whole run, also when it was resumed
        hist, epochs = recorder.history(), recorder.epochs()
    else:
        hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        epochs = list(history.epoch)
    best_epoch = None
    val_acc = None
    if "val_accuracy" in hist and hist["val_accuracy"]:
        best_index = max(range(len(hist["val_accuracy"])), key=hist["val_accuracy"].__getitem__)
        val_acc = hist["val_accuracy"][best_index] if early else hist["val_accuracy"][-1]
        best_epoch = (epochs[best_index] + 1) if epochs else None
    result = FitResult(
        history=hist,
        epochs_run=(epochs[-1] + 1) if epochs else 0,
        best_epoch=best_epoch,
        stopped_early=bool(early and early.stopped_epoch),
        val_accuracy=val_acc,
        out_dir=str(out) if out else None,
    )
    if out is not None and write:
        finish_run(model, out, dataclasses.asdict(result))
    return result


def label_onehot(model: keras.Model, recipe: Recipe, one_hot: bool | None = None) -> bool:
    """Whether the training loss of ``model`` takes one-hot labels.

    An :class:`~kerascnn.tasks.ImageClassifier` says so itself (its ``label_format``: one-hot
    with a mixer or label smoothing; the data stays integer class ids, the task converts
    them); ``one_hot`` is then refused, and so is a recipe ``label_smoothing`` other than the
    task's. A plain model's labels are what the data holds: ``one_hot`` (default False)."""
    from kerascnn.tasks import ImageClassifier

    if not isinstance(model, ImageClassifier):
        return bool(one_hot)
    if one_hot is not None:
        raise UserInputError(
            f"one_hot is for plain models: an ImageClassifier's labels are its label_format "
            f"({model.label_format!r}; integer labels are converted); received one_hot={one_hot!r}"
        )
    if recipe.label_smoothing and recipe.label_smoothing != model.label_smoothing:
        raise UserInputError(
            f"the recipe's label_smoothing={recipe.label_smoothing} differs from the task's "
            f"({model.label_smoothing}); build the task with label_smoothing="
            f"{recipe.label_smoothing}"
        )
    return model.label_format == "onehot"


def compile_model(
    model: keras.Model, recipe: Recipe, steps_per_epoch: int, *, one_hot=None, **compile_kwargs
) -> keras.Model:
    """Compile ``model`` with ``recipe``'s optimizer (its schedule over ``steps_per_epoch``
    steps an epoch), a cross-entropy and accuracy: an
    :class:`~kerascnn.tasks.ImageClassifier`'s own (``loss="auto"``: its label format and
    output kind). A plain model is deprecated (a ``DeprecationWarning``): it gets the
    recipe's cross-entropy on what its output layer gives (logits or softmax
    probabilities), one-hot when ``one_hot`` (see :func:`label_onehot`).
    ``compile_kwargs``: more ``compile`` arguments."""
    from kerascnn.activations import outputs_are_probabilities
    from kerascnn.tasks import ImageClassifier

    onehot = label_onehot(model, recipe, one_hot)
    if isinstance(model, ImageClassifier):  # its own loss and metric
        optimizer = recipe.make_optimizer(steps_per_epoch, model.trainable_variables)
        args = {"optimizer": optimizer, "loss": "auto"}
        args["metrics"] = "auto"
    else:
        warnings.warn(
            f"training a plain keras.Model ({model.name!r}) is deprecated: pass "
            "kerascnn.tasks.ImageClassifier.from_model(model), which owns its loss, labels "
            "and input layers",
            DeprecationWarning,
            stacklevel=3,
        )
        from_logits = not outputs_are_probabilities(model)
        args = recipe.compile_args(steps_per_epoch, one_hot=onehot, from_logits=from_logits)
    model.compile(**args, **compile_kwargs)
    return model


#: :func:`fit`'s ``**options`` and their defaults
FIT_OPTIONS = {
    "jit_compile": "auto",
    "steps_per_execution": 1,
    "tensorboard": False,
    "one_hot": None,
    "distribution": None,
}


def fit(
    model: keras.Model,
    train,
    validation=None,
    recipe: Recipe | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    callbacks=(),
    verbose="auto",
    overwrite: bool = False,
    **options,
) -> FitResult:
    """Compile ``model`` with ``recipe`` and train it on ``train`` with the default callbacks.

    Args:
        model: a :class:`~kerascnn.tasks.ImageClassifier` (it owns the preprocessing,
            augmentation, MixUp / CutMix and its label format). A plain Keras model still
            trains, with a ``DeprecationWarning`` (:func:`compile_model`).
        train, validation: kerascnn ``Pipeline``s, or what they hold: ``keras.utils.PyDataset``s
            (such as :class:`~kerascnn.pipelines.loader.BatchLoader`) or batched
            ``tf.data.Dataset``s, finite with a known number of batches.
        recipe: a :class:`Recipe` (default ``get_recipe("resnet-cifar")``).
        out_dir: where the best model, the CSV log, the backup for resuming, the final
            ``model.keras`` and ``result.json`` go; ``None`` writes nothing. The folder's
            guarantees are :mod:`kerascnn.training.run_folder`'s: this process owns it while
            it trains (another process training into it is refused); running again with
            the same ``out_dir`` after an interruption resumes from the last completed epoch
            exactly (weights, optimizer, random states, early stopping's state), and the log
            and the history then cover every epoch; a folder holding a finished run
            (``result.json``) is refused unless ``overwrite``; every file is written
            atomically, only at epoch ends whose losses are finite; the finish writes
            ``model.keras``, then ``result.json``, then removes the backup.
        callbacks: more Keras callbacks (e.g. ``DropoutSchedule``).
        verbose: ``"auto"`` or ``1``: Keras's progress bar; ``2``: one plain line per epoch
            (:class:`~kerascnn.training.callbacks.EpochLine`: for logs and pipes); ``0``:
            silent. Except when silent, a line says when the training step is compiled.
        overwrite: start anew in ``out_dir``: the run there, finished or not, is removed
            whole (its backup is not resumed) before the new run writes.
        **options: how the step runs and what more is recorded (:data:`FIT_OPTIONS`):

            jit_compile: ``"auto"`` (default; JAX: jit; TensorFlow: XLA with a GPU only;
                PyTorch: eager; :func:`resolve_jit_compile`), ``True`` or ``False``.
            steps_per_execution: training steps per compiled call (default 1).
            tensorboard: add a TensorBoard callback writing to ``out_dir/tensorboard``
                (default False).
            distribution: a :func:`kerascnn.training.jax_parallel.data_parallel` (JAX):
                train data-parallel over its devices and processes, ``model`` then may be
                a function building it (created in the distribution's scope);
                process 0 alone writes ``out_dir`` (default None: one device).
            one_hot: deprecated with plain models: their labels are one-hot (data of your
                own with mixed or smoothed labels). Not for an
                :class:`~kerascnn.tasks.ImageClassifier`: it derives its label format and
                compiles its own loss (:func:`compile_model`).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names the epoch).
    """
    from kerascnn.training.recipes import get_recipe

    recipe = recipe or get_recipe("resnet-cifar")
    options = check_options("fit", options, FIT_OPTIONS)
    distribution = options.pop("distribution")
    if distribution is not None:
        from kerascnn.training import jax_parallel

        with jax_parallel.distributed_run(distribution, model, out_dir, overwrite) as run:
            model, folder, more = run
            return fit(
                model, distribution.shard(train), distribution.shard(validation), recipe,
                out_dir=folder, callbacks=[*callbacks, *more], verbose=verbose,
                overwrite=overwrite, **options,
            )  # fmt: skip
    train_ds = getattr(train, "dataset", train)
    val_ds = getattr(validation, "dataset", validation)
    steps = steps_per_epoch(train_ds)
    with run_folder(out_dir, overwrite) if out_dir is not None else contextlib.nullcontext() as out:
        compile_model(
            model, recipe, steps, one_hot=options["one_hot"],
            jit_compile=resolve_jit_compile(options["jit_compile"]),
            steps_per_execution=options["steps_per_execution"],
        )  # fmt: skip
        extra = list(callbacks)
        if hasattr(train_ds, "set_epoch"):
            extra.append(LoaderEpoch(train_ds))
        if verbose != 0:  # 2: kerascnn's one line per epoch; 1, "auto": Keras's bar
            extra.append(EpochLine(recipe.epochs, per_epoch=verbose == 2))
        cbs = default_callbacks(
            out, val_ds is not None, recipe.early_stopping, tensorboard=options["tensorboard"],
            extra=extra,
        )  # fmt: skip

        train_input, fit_steps = train_ds, None
        if keras.backend.backend() == "tensorflow" and getattr(
            train_ds, "streams_endlessly", False
        ):  # one tf.data iterator for the whole run instead of a new one at every epoch start
            train_input, fit_steps = train_ds.endless_tf_dataset(), steps

        def train_with(callbacks):
            return model.fit(
                train_input,
                validation_data=val_ds,
                epochs=recipe.epochs,
                steps_per_epoch=fit_steps,
                callbacks=callbacks,
                verbose=0 if verbose == 2 else verbose,
                shuffle=False,  # the pipelines shuffle with their seed
            )

        return run_training(model, train_with, cbs, out)
