"""The fit loop around ``model.fit``: default callbacks, XLA and precision choices,
resumable output folders.

    result = kerascnn.training.fit(model, train_pipe, val_pipe, recipe, out_dir="runs/r20")
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import warnings

import keras
import numpy as np

from kerascnn.training.recipes import Recipe


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
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self.epoch + 1, batch + 1, float(loss))
            self.model.stop_training = True


class LoaderEpoch(keras.callbacks.Callback):
    """Tell a :class:`~kerascnn.pipelines.loader.BatchLoader` which epoch starts, so that its
    shuffle follows the training epoch (also when ``BackupAndRestore`` resumes mid-run)."""

    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def on_epoch_begin(self, epoch, logs=None):
        self.loader.set_epoch(epoch)


class RandomStateBackup(keras.callbacks.Callback):
    """Back up the model's random-generator states (augmentation, dropout) next to
    ``BackupAndRestore``'s weights at every epoch end, and restore them when a run resumes.

    Keras's weights files leave ``SeedGenerator`` states out, so without this a resumed run
    would draw other augmentations than the uninterrupted run from the same seed."""

    FILE = "random_states.npz"

    def __init__(self, backup_dir: pathlib.Path):
        super().__init__()
        self.path = pathlib.Path(backup_dir) / self.FILE

    def _states(self) -> list:
        return [v for v in self.model.non_trainable_variables if v.name == "seed_generator_state"]

    def on_train_begin(self, logs=None):
        if not self.path.exists():
            return
        states = self._states()
        with np.load(self.path) as saved:
            values = [saved[f"s{i}"] for i in range(len(saved.files))]
        if [v.shape for v in values] != [tuple(s.shape) for s in states]:
            warnings.warn(
                f"{self.path} does not match this model's random generators; not restored",
                stacklevel=2,
            )
            return
        for state, value in zip(states, values, strict=True):
            state.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        values = {f"s{i}": keras.ops.convert_to_numpy(s) for i, s in enumerate(self._states())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(tmp, **values)
        os.replace(tmp, self.path)


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
        raise ValueError(
            "train must be finite batches with a known length: a kerascnn Pipeline, a "
            f"keras.utils.PyDataset or a batched tf.data.Dataset; received {type(batches).__name__} "
            f"with {steps if steps >= 0 else 'an unknown number of'} batches"
        )
    return steps


def resolve_jit_compile(jit_compile) -> bool:
    """``"auto"``: on JAX always (its only compiled path); on TensorFlow XLA on when a GPU is
    visible, off on CPU, where REFERENCES.md item 8 measured it slower (61 vs 104 images/s
    for a ResNet-56 train step); on PyTorch off (eager)."""
    if jit_compile == "auto":
        if keras.backend.backend() == "jax":
            return True  # JAX without jit runs op by op: far slower everywhere
        if keras.backend.backend() == "torch":
            return False  # torch.compile: not measured faster for these nets; opt in with True
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if not isinstance(jit_compile, bool):
        raise ValueError(
            f"jit_compile must be True, False or 'auto'; received jit_compile={jit_compile!r}"
        )
    return jit_compile


def default_callbacks(
    out_dir: pathlib.Path | None,
    has_validation: bool,
    patience: int,
    monitor: str = "val_accuracy",
    tensorboard: bool = False,
    extra=(),
) -> list:
    """EarlyStopping (with validation data and ``patience > 0``), best-model checkpoint,
    BackupAndRestore, CSVLogger, the NaN guard, optional TensorBoard, then ``extra``."""
    callbacks: list = [StopOnNaN()]
    if has_validation and patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=patience, restore_best_weights=True, verbose=1
            )
        )
    if out_dir is not None:
        if has_validation:
            callbacks.append(
                keras.callbacks.ModelCheckpoint(
                    str(out_dir / "best.keras"), monitor=monitor, save_best_only=True
                )
            )
        # A backup means an interrupted run that this call resumes: keep its log. Without
        # one the run starts from scratch and so does its log.
        resuming = (out_dir / "backup").exists()
        callbacks.append(keras.callbacks.BackupAndRestore(str(out_dir / "backup")))
        callbacks.append(RandomStateBackup(out_dir / "backup"))
        callbacks.append(keras.callbacks.CSVLogger(str(out_dir / "log.csv"), append=resuming))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard")))
    return callbacks + list(extra)


def _atomic_save(model: keras.Model, path: pathlib.Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def fit(
    model: keras.Model,
    train,
    validation=None,
    recipe: Recipe | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    one_hot: bool = False,
    jit_compile="auto",
    steps_per_execution: int = 1,
    callbacks=(),
    tensorboard: bool = False,
    verbose="auto",
) -> FitResult:
    """Compile ``model`` with ``recipe`` and train it on ``train`` with the default callbacks.

    Args:
        model: a Keras model (augmentation layers in front are fine).
        train, validation: kerascnn ``Pipeline``s, or what they hold: ``keras.utils.PyDataset``s
            (such as :class:`~kerascnn.pipelines.loader.BatchLoader`) or batched
            ``tf.data.Dataset``s, finite with a known number of batches.
        recipe: a :class:`Recipe` (default ``get_recipe("resnet-cifar")``).
        out_dir: where the best model, the CSV log, the backup for resuming, the final
            ``model.keras`` and ``result.json`` go; ``None`` writes nothing. Running again
            with the same ``out_dir`` after an interruption resumes from the last completed
            epoch (``BackupAndRestore``).
        one_hot: the labels are one-hot (MixUp, CutMix, label smoothing).
        jit_compile: ``"auto"`` (XLA on GPU, off on CPU), ``True`` or ``False``.
        callbacks: more Keras callbacks (e.g. ``DropoutSchedule``).
        tensorboard: add a TensorBoard callback writing to ``out_dir/tensorboard``.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names the epoch).
    """
    from kerascnn.training.recipes import get_recipe

    recipe = recipe or get_recipe("resnet-cifar")
    train_ds = getattr(train, "dataset", train)
    val_ds = getattr(validation, "dataset", validation)
    steps = steps_per_epoch(train_ds)
    out = None
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

    model.compile(
        **recipe.compile_args(steps, one_hot=one_hot),
        jit_compile=resolve_jit_compile(jit_compile),
        steps_per_execution=steps_per_execution,
    )
    extra = list(callbacks)
    if hasattr(train_ds, "set_epoch"):
        extra.append(LoaderEpoch(train_ds))
    cbs = default_callbacks(
        out, val_ds is not None, recipe.early_stopping, tensorboard=tensorboard, extra=extra
    )
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=recipe.epochs,
        callbacks=cbs,
        verbose=verbose,
        shuffle=False,  # the pipelines shuffle with their seed
    )

    nan_guard = cbs[0]
    if nan_guard.where is not None:
        epoch, batch, value = nan_guard.where
        raise TrainingDiverged(
            f"the loss became {value} at epoch {epoch}, batch {batch}; lower the learning rate"
        )
    early = next((c for c in cbs if isinstance(c, keras.callbacks.EarlyStopping)), None)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best_epoch = None
    val_acc = None
    if "val_accuracy" in hist and hist["val_accuracy"]:
        best_index = max(range(len(hist["val_accuracy"])), key=hist["val_accuracy"].__getitem__)
        val_acc = hist["val_accuracy"][best_index] if early else hist["val_accuracy"][-1]
        best_epoch = (history.epoch[best_index] + 1) if history.epoch else None
    result = FitResult(
        history=hist,
        epochs_run=(history.epoch[-1] + 1) if history.epoch else 0,
        best_epoch=best_epoch,
        stopped_early=bool(early and early.stopped_epoch),
        val_accuracy=val_acc,
        out_dir=str(out) if out else None,
    )
    if out is not None:
        _atomic_save(model, out / "model.keras")
        (out / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=1) + "\n")
    return result
