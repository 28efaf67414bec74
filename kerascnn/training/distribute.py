"""Distributed training, with each backend's engine: ``tf.distribute`` on TensorFlow (several
devices of one machine: ``MirroredStrategy``; several machines: ``MultiWorkerMirroredStrategy``),
``keras.distribution.DataParallel`` on JAX (``"data-parallel"``: several devices and processes,
:mod:`kerascnn.training.jax_parallel`), none on PyTorch. :func:`resolve_for_backend` maps a
``--strategy`` name to the engine, or refuses it in one line naming the engine the backend has.

    from kerascnn.training import distribute, get_recipe

    strategy = distribute.resolve_strategy("auto")  # or "none", "mirrored", "multiworker"
    recipe = distribute.scale_recipe(get_recipe("resnet-cifar"), strategy.num_replicas_in_sync)
    result = distribute.fit_distributed(
        lambda: kerascnn.zoo.resnet(depth=56, norm="sync_batch"), train, val, recipe,
        strategy=strategy, out_dir="runs/r56",
    )

See docs/distributed.md for the commands (several GPUs, several machines with TF_CONFIG, JAX
data parallelism over devices and processes).

What runs where:

- ``"none"`` and ``"mirrored"``: the model, optimizer and metrics are created under
  ``strategy.scope()`` and trained by :func:`kerascnn.training.fit` (``model.fit`` with
  its callbacks, ``BackupAndRestore`` included): Keras 3.15 trains correctly under
  ``MirroredStrategy``.
- ``"multiworker"``: ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` in Keras 3.15
  (keras-team/keras#20585, tensorflow/tensorflow#72388), so :func:`fit_distributed` runs its
  own loop over ``strategy.run``: per-replica forward and backward pass, gradients summed
  across all replicas of all workers by the Keras optimizer's all-reduce, the loss divided
  by the global number of examples of the step. The loop only computes the steps and the
  epoch's metrics; its epochs run under the same callbacks and bookkeeping as
  :func:`~kerascnn.training.fit` (:func:`kerascnn.training.loop.run_training`: NaN guard,
  early stopping, ``log.csv``, ``best.keras``, ``model.keras``, ``result.json``), with one
  difference: the backup for resuming is a ``tf.train.CheckpointManager`` written at the
  end of each epoch and restored when the same command is run again (the equivalent of
  ``BackupAndRestore``, which is what Keras 2's ``BackupAndRestore`` used under the hood).

Scaling rule (:func:`scale_recipe`): the recipe's ``batch_size`` is the batch of one
replica; the global batch is ``batch_size * num_replicas``; the learning rate is multiplied
by ``num_replicas`` (``"linear"``, Goyal et al. 2017, "Accurate, Large Minibatch SGD"), by
``sqrt(num_replicas)`` (``"sqrt"``, often better for Adam) or left alone (``"none"``, the
recipe's ``batch_size`` and ``lr`` are then the global ones).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys

import keras

from kerascnn.checks import check_choice, check_options
from kerascnn.errors import UserInputError
from kerascnn.training.callbacks import EpochLine
from kerascnn.training.loop import (
    FitResult,
    LoaderEpoch,
    default_callbacks,
    fit,
    label_onehot,
    run_training,
    train_epochs,
)
from kerascnn.training.recipes import Recipe, get_recipe
from kerascnn.training.run_folder import (
    BACKUP,
    atomic_write_text,
    restore_early_stopping,
    run_folder,
    save_early_stopping,
)

STRATEGIES = ("auto", "none", "mirrored", "multiworker", "data-parallel")
LR_SCALING = ("linear", "sqrt", "none")
SHARD_POLICIES = ("data", "file", "auto", "off")
#: fit_distributed's **options and their defaults
FIT_OPTIONS = {
    "one_hot": None, "jit_compile": "auto", "callbacks": (), "verbose": "auto",
    "overwrite": False, "shard_policy": "data",
}  # fmt: skip


def tf_config() -> dict | None:
    """The parsed ``TF_CONFIG`` environment variable, or ``None`` when it is not set."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"TF_CONFIG is not valid JSON ({error}); received TF_CONFIG={raw!r}"
        ) from None
    if not isinstance(config, dict) or "cluster" not in config:
        raise UserInputError(f"TF_CONFIG must be a JSON object with a 'cluster'; received {raw!r}")
    return config


def num_workers(config: dict | None = None) -> int:
    """Training tasks (``chief`` + ``worker``) in ``TF_CONFIG`` (1 without one)."""
    config = tf_config() if config is None else config
    if not config:
        return 1
    cluster = config.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def resolve_strategy(strategy="auto", *, devices=None):
    """A ``tf.distribute.Strategy`` from a name (a strategy object is returned as is).

    Args:
        strategy: ``"auto"``: ``"multiworker"`` when ``TF_CONFIG`` names more than one
            training task, else ``"mirrored"`` with two or more GPUs, else ``"none"``;
            ``"none"``: TensorFlow's default strategy (one device);
            ``"mirrored"``: ``MirroredStrategy`` over ``devices`` (default: all GPUs, or the
            CPU; logical CPU devices count when configured before TensorFlow starts);
            ``"multiworker"``: ``MultiWorkerMirroredStrategy`` over the cluster in
            ``TF_CONFIG`` (create it before any other TensorFlow op runs).
        devices: for ``"mirrored"``, e.g. ``["/gpu:0", "/gpu:1"]`` or ``["/cpu:0", "/cpu:1"]``.

    Only for the TensorFlow backend; for JAX see :func:`resolve_for_backend` and
    :mod:`kerascnn.training.jax_parallel`.
    """
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    check_choice("strategy", strategy, STRATEGIES)
    if keras.backend.backend() != "tensorflow":
        raise UserInputError(
            f"strategy={strategy!r} needs the TensorFlow backend (tf.distribute); with "
            f"KERAS_BACKEND={keras.backend.backend()} use resolve_for_backend()"
        )
    if strategy == "data-parallel":
        raise UserInputError(
            "strategy='data-parallel' is keras.distribution on the JAX backend; with "
            "KERAS_BACKEND=tensorflow the engine is tf.distribute: --strategy mirrored "
            "(the devices of one machine) or multiworker (several machines, TF_CONFIG)"
        )
    if strategy == "auto":
        if num_workers() > 1:
            strategy = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            strategy = "mirrored"
        else:
            strategy = "none"
    if strategy == "none":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if devices is not None:
        raise UserInputError("devices= is only for strategy='mirrored'; multiworker uses TF_CONFIG")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_multiworker(strategy) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_role(strategy) -> tuple[str | None, int, bool]:
    """``(task_type, task_id, is_chief)`` of this process; ``(None, 0, True)`` on one machine.
    The chief is the ``chief`` task, or ``worker`` 0 when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = int(getattr(resolver, "task_id", 0) or 0)
    if task_type is None:
        return None, 0, True
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return task_type, task_id, chief


def scale_recipe(recipe: Recipe, num_replicas: int, rule: str = "linear") -> Recipe:
    """The recipe for ``num_replicas`` replicas: ``batch_size`` becomes the global batch
    ``batch_size * num_replicas`` (each replica keeps the recipe's batch) and ``lr`` is
    scaled by ``num_replicas`` (``"linear"``), ``sqrt(num_replicas)`` (``"sqrt"``), or
    neither changes (``"none"``: the recipe already holds the global batch and its lr)."""
    check_choice("lr_scaling", rule, LR_SCALING)
    if not isinstance(num_replicas, int) or num_replicas < 1:
        raise UserInputError(f"num_replicas must be an integer >= 1; received {num_replicas!r}")
    if rule == "none" or num_replicas == 1:
        return recipe
    factor = num_replicas if rule == "linear" else math.sqrt(num_replicas)
    return dataclasses.replace(
        recipe, batch_size=recipe.batch_size * num_replicas, lr=recipe.lr * factor
    ).validate()


def shard_dataset(dataset, policy: str = "data"):
    """``dataset`` with its ``tf.data`` auto-shard policy set for multi-worker input.

    ``"data"`` (default): every worker runs the whole pipeline and keeps its share of the
    batches. Right for kerascnn's sources, which are in memory or in a few files; it needs
    the same shuffle seed on every worker (kerascnn's pipelines have one).
    ``"file"``: each worker reads its own files (needs at least as many files as workers).
    ``"auto"``: TensorFlow's choice (files when possible, else data, with a warning).
    ``"off"``: no sharding (each worker sees every example: only for evaluation copies).
    """
    import tensorflow as tf

    check_choice("shard_policy", policy, SHARD_POLICIES)
    enum = tf.data.experimental.AutoShardPolicy
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = {
        "data": enum.DATA, "file": enum.FILE, "auto": enum.AUTO, "off": enum.OFF,
    }[policy]  # fmt: skip
    return dataset.with_options(options)


def resolve_for_backend(strategy="auto", *, devices=None, norm=None):
    """The engine of this backend for ``strategy``.

    TensorFlow: :func:`resolve_strategy` (``tf.distribute``). JAX (``keras.distribution``):
    ``"data-parallel"`` gives :func:`kerascnn.training.jax_parallel.data_parallel` over
    ``devices`` (default: every device of every process), ``"auto"`` the same with two or more
    devices (else ``None``), ``"none"`` gives ``None``; its batch-norm statistics follow
    ``norm`` (``"sync_batch"``: the global batch's; otherwise each device's, as
    ``MirroredStrategy`` with ``norm="batch"``). PyTorch: ``"auto"`` and ``"none"`` give
    ``None`` (one device). Any other name is refused in one line naming the engine the
    backend has."""
    backend = keras.backend.backend()
    if isinstance(strategy, str):
        check_choice("strategy", strategy, STRATEGIES)
    if backend == "tensorflow":
        return resolve_strategy(strategy, devices=devices)
    if not isinstance(strategy, str):
        return strategy  # a keras.distribution.DataParallel
    if strategy == "none":
        return None
    if backend != "jax":
        if strategy == "auto":
            return None
        raise UserInputError(
            f"strategy={strategy!r} is not available with KERAS_BACKEND={backend}: kerascnn has "
            "no distribution engine for it (tf.distribute on TensorFlow: mirrored, multiworker; "
            "keras.distribution on JAX: data-parallel); use --strategy none (one device)"
        )
    if strategy in ("mirrored", "multiworker"):
        raise UserInputError(
            f"strategy={strategy!r} is tf.distribute, on the TensorFlow backend; with "
            "KERAS_BACKEND=jax the engine is keras.distribution: --strategy data-parallel "
            "(several devices; several processes with --coordinator)"
        )
    from kerascnn.training import jax_parallel

    batch_norm = "global" if norm == "sync_batch" else "replica"
    dist = jax_parallel.data_parallel(devices, batch_norm=batch_norm)
    if strategy == "auto" and dist.num_devices < 2:
        return None
    return dist


def model_options(options: dict) -> dict:
    """The zoo builder's options for this backend: on JAX ``norm="sync_batch"`` builds
    Keras's plain ``BatchNormalization`` (its ``synchronized=True`` is TensorFlow-only), whose
    statistics under data parallelism are the global batch's (:func:`resolve_for_backend`
    chose ``batch_norm="global"`` for it); other options are returned as they are."""
    if keras.backend.backend() == "jax" and options.get("norm") == "sync_batch":
        return {**options, "norm": "batch"}
    return options


def is_writer(strategy) -> bool:
    """Whether this process writes the run folder: always on one machine; the chief under
    ``MultiWorkerMirroredStrategy``; process 0 under JAX data parallelism."""
    if strategy is None:
        return True
    if is_multiworker(strategy):
        return worker_role(strategy)[2]
    if is_data_parallel(strategy):
        from kerascnn.training import jax_parallel

        return jax_parallel.is_writer()
    return True


def is_data_parallel(strategy) -> bool:
    """Whether ``strategy`` is a JAX ``keras.distribution.DataParallel``."""
    return isinstance(strategy, keras.distribution.DataParallel)


def num_replicas(strategy) -> int:
    """Replicas of a strategy or a JAX ``DataParallel`` (1 for ``None``)."""
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return int(strategy.num_replicas_in_sync)
    return int(strategy.device_mesh.devices.size)


def scope_of(strategy):
    """``strategy.scope()``, or a context that does nothing for ``None``."""
    import contextlib

    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _loss_per_example(loss: keras.losses.Loss) -> keras.losses.Loss:
    config = {**loss.get_config(), "reduction": None}
    return type(loss).from_config(config)


def _check_created_in_scope(model: keras.Model, strategy) -> None:
    for variable in model.variables:
        if not strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)):
            raise UserInputError(
                f"the model's variable {variable.path!r} was not created under the strategy's "
                "scope; pass a function that builds the model (fit_distributed(lambda: ...)) "
                "or build it inside `with strategy.scope():`"
            )


def fit_distributed(
    model,
    train,
    validation=None,
    recipe: Recipe | None = None,
    *,
    strategy="auto",
    out_dir: str | os.PathLike | None = None,
    trainer: str = "auto",
    **options,
) -> FitResult:
    """Train under a ``tf.distribute`` strategy (TensorFlow) or a JAX
    :class:`~kerascnn.training.jax_parallel.DataParallel`; the same result as :func:`fit`.

    ``options``: ``one_hot``, ``jit_compile``, ``callbacks``, ``verbose``, ``overwrite`` (as
    in :func:`fit`) and ``shard_policy`` (the multi-worker loop's), described below.

    Args:
        model: a function with no arguments that builds the model (called under the
            strategy's scope), or a model already built under ``strategy.scope()``. Use
            ``norm="sync_batch"`` in the zoo so batch statistics are those of the global batch
            (on JAX: ``jax_parallel.data_parallel(batch_norm="global")`` and ``norm="batch"``).
        train, validation: batched ``tf.data.Dataset``s (or kerascnn ``Pipeline``s) whose
            batch is the global batch (see :func:`scale_recipe`).
        recipe: the :class:`Recipe` (already scaled for the replicas).
        one_hot: as in :func:`fit`: a plain model's labels are one-hot. An
            :class:`~kerascnn.tasks.ImageClassifier` derives its label format, and the
            multi-worker loop runs its training batch as its ``train_step`` does (MixUp /
            CutMix of its ``mixer``, integer labels made one-hot for its loss).
        strategy: a name for :func:`resolve_for_backend`, a ``tf.distribute.Strategy`` or a
            :class:`~kerascnn.training.jax_parallel.DataParallel` (JAX: trained by
            :func:`kerascnn.training.fit` with ``distribution=``, ``trainer`` must be ``"auto"`` or
            ``"fit"``; ``shard_policy`` does not apply).
        out_dir: run folder as in :func:`fit`; under ``"multiworker"`` only the chief writes
            it, and its ``backup`` folder (a ``tf.train.CheckpointManager`` written at every
            epoch end) must be readable by every worker: rerunning the same commands on all
            workers after a failure resumes from the last completed epoch.
        jit_compile: passed to :func:`fit` for ``"none"`` and ``"mirrored"``; the
            multi-worker loop runs without XLA.
        callbacks: more Keras callbacks, as in :func:`fit`. The multi-worker loop calls
            their epoch, train-batch and test-batch hooks as ``model.fit`` does (batch
            logs: the running ``loss`` and ``accuracy``) and honours
            ``model.stop_training``; it refuses, with a one-line error naming the callback,
            those that cannot work there: ``BackupAndRestore`` (the loop has its own
            backup), callbacks that need ``model.optimizer`` (``ReduceLROnPlateau``,
            ``LearningRateScheduler``, ``SwapEMAWeights``, ``TensorBoard``) and, under
            ``MultiWorkerMirroredStrategy``, ``ModelCheckpoint`` and ``CSVLogger`` (every
            worker would write the same file). Other callbacks run on every worker. The
            recipe's ``early_stopping``, the NaN guard, ``log.csv`` and ``best.keras``
            behave as in :func:`fit` (the same callbacks).
        overwrite: as in :func:`fit`: train into a folder holding a finished run (an
            unfinished one is resumed either way).
        shard_policy: the ``tf.data`` auto-shard policy for multi-worker input
            (:func:`shard_dataset`).
        trainer: ``"fit"`` (``model.fit``), ``"loop"`` (the loop over ``strategy.run``) or
            ``"auto"``: the loop under ``MultiWorkerMirroredStrategy``, ``model.fit`` otherwise.
    """
    options = check_options("fit_distributed", options, FIT_OPTIONS)
    shard_policy = options.pop("shard_policy")
    check_choice("trainer", trainer, ("auto", "fit", "loop"))
    recipe = recipe or get_recipe("resnet-cifar")
    strategy = resolve_for_backend(strategy)
    if keras.backend.backend() != "tensorflow":
        if trainer == "loop" or shard_policy != "data":
            raise UserInputError(
                f"trainer={trainer!r} and shard_policy are tf.distribute's; with "
                f"KERAS_BACKEND={keras.backend.backend()} use trainer='auto' or 'fit'"
            )
        if strategy is None:
            return fit(model if isinstance(model, keras.Model) else model(), train,
                       validation, recipe, out_dir=out_dir, **options)  # fmt: skip
        return fit(model, train, validation, recipe, out_dir=out_dir, distribution=strategy,
                   **options)  # fmt: skip
    one_hot, callbacks = options["one_hot"], options["callbacks"]
    verbose, overwrite = options["verbose"], options["overwrite"]
    with strategy.scope():
        if not isinstance(model, keras.Model):
            model = model()
        _check_created_in_scope(model, strategy)
        if trainer == "auto":
            trainer = "loop" if is_multiworker(strategy) else "fit"
        if trainer == "fit":
            return fit(model, train, validation, recipe, out_dir=out_dir, **options)
    return _StrategyLoop(model, strategy, recipe, one_hot, shard_policy).run(
        train, validation, out_dir, verbose, overwrite=overwrite, callbacks=callbacks
    )


def _loop_refusal(callback, multiworker: bool) -> str | None:
    """Why a Keras callback cannot run in the multi-worker loop, or ``None`` when it can."""
    C = keras.callbacks
    if isinstance(callback, C.BackupAndRestore):
        return (
            "the loop backs itself up (a tf.train.CheckpointManager in out_dir/backup, "
            "readable by every worker); pass out_dir instead"
        )
    if isinstance(
        callback, (C.ReduceLROnPlateau, C.LearningRateScheduler, C.SwapEMAWeights, C.TensorBoard)
    ):
        return (
            "it needs model.optimizer, which the loop does not set (it trains an uncompiled "
            "model with its own optimizer); use the recipe's schedule"
        )
    if multiworker and isinstance(callback, (C.ModelCheckpoint, C.CSVLogger)):
        path = getattr(callback, "filepath", None) or getattr(callback, "filename", "")
        return (
            f"every worker would write {path} at the same time; out_dir's best.keras and "
            "log.csv are written by the chief alone"
        )
    return None


class _CheckpointBackup(keras.callbacks.Callback):
    """The multi-worker loop's ``BackupAndRestore``: a ``tf.train.CheckpointManager``
    (weights, optimizer, epoch) written at every epoch end, restored in ``on_train_begin``
    (which sets ``model._initial_epoch``, as ``BackupAndRestore`` does for ``model.fit``)
    and removed when training completes. Every worker saves (collective ops may run while
    saving); only the chief's copy, in ``backup``, is kept and read by all workers on
    resume: ``backup`` must be on storage every worker reads."""

    STATE = "training_state.json"  # the epoch, early stopping's state, whether stopped

    def __init__(self, backup, write_dir, optimizer, strategy, say, early_stopping=None):
        super().__init__()
        self.backup, self.write_dir = pathlib.Path(backup), pathlib.Path(write_dir)
        self.optimizer, self.strategy, self.say = optimizer, strategy, say
        self.early_stopping = early_stopping

    def _restore_state(self, start: int) -> None:
        """Early stopping's state and the stop flag of the checkpoint's epoch ``start``
        (written after the checkpoint: a state of another epoch is not used)."""
        path = self.backup / self.STATE
        state = json.loads(path.read_text()) if path.exists() else {}
        if state.get("epoch") != start:
            return
        best = self.backup / f"epoch-{start}.best_weights.npz"
        restore_early_stopping(self.early_stopping, state.get("early_stopping"), best)
        if state.get("stop_training"):  # stopped early: nothing more to train
            self.model._initial_epoch = max(start, self.params.get("epochs") or 0)

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        with self.strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.write_dir), max_to_keep=1
        )
        latest = tf.train.latest_checkpoint(str(self.backup))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            start = int(self.epoch.numpy())
            self.model._initial_epoch = start
            self._restore_state(start)
            self.say(f"resumed from {latest}: {start} epoch(s) done")

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        best = self.write_dir / f"epoch-{epoch + 1}.best_weights.npz"
        state = {
            "epoch": epoch + 1,
            "early_stopping": save_early_stopping(self.early_stopping, best),
            "stop_training": bool(self.model.stop_training),
        }
        atomic_write_text(self.write_dir / self.STATE, json.dumps(state))
        for old in self.write_dir.glob("epoch-*.best_weights.npz"):
            if old != best:
                old.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        # a worker's own copy goes now; the chief's backup is removed by finish_run, after
        # model.keras and result.json are written
        if self.write_dir != self.backup:
            shutil.rmtree(self.write_dir, ignore_errors=True)


class _StrategyLoop:
    """Training loop over ``strategy.run`` (works around keras-team/keras#20585). It only
    computes the steps and the epoch's metrics; the callbacks, the run folder and the
    result are :func:`kerascnn.training.loop.run_training`'s, as for :func:`fit`."""

    def __init__(self, model, strategy, recipe: Recipe, one_hot, shard_policy: str):
        check_choice("shard_policy", shard_policy, SHARD_POLICIES)
        if keras.mixed_precision.global_policy().name == "mixed_float16" or any(
            getattr(layer.dtype_policy, "name", "") == "mixed_float16" for layer in model.layers
        ):
            raise UserInputError(
                "mixed_float16 needs loss scaling, which the multi-worker loop does not do; "
                "use mixed_bfloat16"
            )
        from kerascnn.tasks import ImageClassifier

        self.model, self.strategy, self.recipe = model, strategy, recipe
        # an ImageClassifier: its label format, loss and training batch (mixing, labels)
        self.task = model if isinstance(model, ImageClassifier) else None
        self.one_hot, self.shard_policy = label_onehot(model, recipe, one_hot), shard_policy
        self.task_type, self.task_id, self.chief = worker_role(strategy)

    def _step_functions(self, steps_per_epoch: int):
        import tensorflow as tf

        strategy, model = self.strategy, self.model
        with strategy.scope():
            optimizer = self.recipe.make_optimizer(steps_per_epoch, model.trainable_variables)
            optimizer.build(model.trainable_variables)
            loss = self.recipe.make_loss(self.one_hot) if self.task is None else None
            loss_fn = _loss_per_example(loss or self.task.default_loss())
        self.optimizer = optimizer
        SUM = tf.distribute.ReduceOp.SUM
        dtype = keras.config.floatx()  # float32 logits and loss under a mixed policy too

        def penalty():  # regularization, as model.fit adds it to the loss
            if not model.losses:
                return tf.constant(0.0, dtype)
            return tf.add_n([tf.cast(v, dtype) for v in model.losses])

        def totals(per_example, labels, logits, extra):
            if self.one_hot:
                labels = tf.argmax(labels, axis=-1)
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int64)
            correct = tf.cast(tf.equal(predicted, tf.cast(labels, tf.int64)), dtype)
            count = tf.cast(tf.shape(per_example)[0], dtype)
            # the reported loss, like model.fit's: data loss + penalty, mean over examples
            return tf.reduce_sum(per_example) + extra * count, tf.reduce_sum(correct), count

        task, one_hot = self.task, self.one_hot

        def train_replica(x, y):
            if task is not None:  # as the task's train_step: mixed, labels for its loss
                x, y = task.training_batch(x, y, one_hot)
            context = tf.distribute.get_replica_context()
            count = tf.cast(tf.shape(x)[0], dtype)
            global_count = context.all_reduce(SUM, count)  # partial batches divide right
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), dtype)
                per_example = tf.cast(loss_fn(y, logits), dtype)
                extra = penalty()
                loss = tf.reduce_sum(per_example) / tf.maximum(global_count, 1.0)
                if model.losses:  # regularization: counted once over all replicas
                    loss += extra / strategy.num_replicas_in_sync
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            # the Keras optimizer all-reduces (sums) the gradients over all replicas
            optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return totals(per_example, y, logits, extra)

        def eval_replica(x, y):
            if task is not None:
                y = task.loss_labels(y, one_hot)
            logits = tf.cast(model(x, training=False), dtype)
            return totals(tf.cast(loss_fn(y, logits), dtype), y, logits, penalty())

        def reduced(replica_fn):
            @tf.function
            def step(batch):
                outputs = strategy.run(replica_fn, args=batch)
                return [strategy.reduce(SUM, value, axis=None) for value in outputs]

            return step

        return reduced(train_replica), reduced(eval_replica)

    def _pass(self, step, dataset, callbacks, training: bool) -> dict:
        """One pass over ``dataset`` with ``step``, calling the batch hooks as model.fit
        and model.evaluate do; the epoch's mean loss and accuracy over all workers."""
        if training:
            begin, end = callbacks.on_train_batch_begin, callbacks.on_train_batch_end
        else:
            begin, end = callbacks.on_test_batch_begin, callbacks.on_test_batch_end
            callbacks.on_test_begin()
        loss_sum = correct = count = 0.0
        logs = {}
        for index, batch in enumerate(dataset):
            begin(index)
            a, b, c = (float(v) for v in step(batch))  # all-reduced: the same on every worker
            loss_sum, correct, count = loss_sum + a, correct + b, count + c
            logs = {"loss": loss_sum / max(count, 1.0), "accuracy": correct / max(count, 1.0)}
            end(index, logs)
            # the NaN guard: every worker sees the same loss, so all stop at the same batch
            if training and self.model.stop_training:
                break
        if not count:
            raise UserInputError(
                f"the data gave no batch to this worker: {self._batches} batches of "
                f"{self._global_batch} examples (the global batch) for {self._workers} workers; "
                "every worker needs one or more: lower --batch-size (per replica) or use more data"
            )
        if not training:
            callbacks.on_test_end(logs)
        return logs

    def run(
        self, train, validation, out_dir, verbose, overwrite: bool = False, callbacks=()
    ) -> FitResult:
        owner = out_dir is not None and self.chief  # the chief alone owns the run folder
        with (
            run_folder(out_dir, overwrite, check_backup=False)
            if owner
            else contextlib.nullcontext()
        ):
            return self._run(train, validation, out_dir, verbose, callbacks)

    def _run(self, train, validation, out_dir, verbose, callbacks) -> FitResult:
        strategy = self.strategy
        multiworker = is_multiworker(strategy)
        for callback in callbacks:
            why = _loop_refusal(callback, multiworker)
            if why:
                raise UserInputError(
                    f"the Keras callback {type(callback).__name__} cannot run in the "
                    f"multi-worker loop (trainer='loop'): {why}"
                )
        train_ds = getattr(train, "dataset", train)
        val_ds = getattr(validation, "dataset", validation)
        steps = int(train_ds.cardinality())
        self._global_batch = self.recipe.batch_size
        self._workers = max(1, num_workers())
        self._batches = steps
        if steps == 0:
            raise UserInputError(
                f"the training data is smaller than one global batch of {self.recipe.batch_size} "
                f"examples (--batch-size x {strategy.num_replicas_in_sync} replicas; the "
                "multi-worker loop drops a partial last batch): lower --batch-size or use more data"
            )
        if steps < 0:
            raise UserInputError(
                "train must be a finite, batched tf.data.Dataset with a known number of batches"
            )
        out = pathlib.Path(out_dir) if out_dir is not None else None
        train_step, eval_step = self._step_functions(steps)
        dist_train = strategy.experimental_distribute_dataset(
            shard_dataset(train_ds, self.shard_policy)
        )
        dist_val = None
        if val_ds is not None:
            dist_val = strategy.experimental_distribute_dataset(
                shard_dataset(val_ds, self.shard_policy)
            )

        def say(message: str) -> None:
            self._say(verbose, message)

        backup = []
        if out is not None:
            # every worker saves (TensorFlow's pattern); only the chief's copy is kept
            write_dir = (
                out / BACKUP if self.chief else out / f".backup-{self.task_type}-{self.task_id}"
            )

            def backup(early):  # the loop's backup, with the run's early stopping
                return [
                    _CheckpointBackup(out / BACKUP, write_dir, self.optimizer, strategy, say, early)
                ]

        extra = list(callbacks)
        if hasattr(train_ds, "set_epoch"):
            extra.append(LoaderEpoch(train_ds))
        if verbose:
            extra.append(EpochLine(self.recipe.epochs, say))
        # the chief alone writes the run folder (log.csv, best.keras, model.keras, result.json)
        cbs = default_callbacks(
            out if self.chief else None, dist_val is not None, self.recipe.early_stopping,
            backup=backup, extra=extra,
        )  # fmt: skip

        def run_epoch(epoch, callback_list) -> dict:
            logs = self._pass(train_step, dist_train, callback_list, training=True)
            if dist_val is not None:  # also after a stop mid-epoch, as in model.fit
                val = self._pass(eval_step, dist_val, callback_list, training=False)
                logs.update({f"val_{k}": v for k, v in val.items()})
            return logs

        def train_with(callback_list):
            return train_epochs(
                self.model, callback_list, self.recipe.epochs, run_epoch, steps=steps,
                verbose=verbose, optimizer=self.optimizer,
            )  # fmt: skip

        return run_training(self.model, train_with, cbs, out, write=self.chief)

    def _say(self, verbose, message: str) -> None:
        if verbose:
            prefix = f"[{self.task_type}:{self.task_id}] " if self.task_type else ""
            print(prefix + message, file=sys.stdout, flush=True)
