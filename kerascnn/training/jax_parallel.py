"""Data parallelism on the JAX backend: ``keras.distribution.DataParallel`` over every device
of one or several processes, with kerascnn's run folder, resume and batch-norm choice.

    from kerascnn.training import jax_parallel

    jax_parallel.initialize("10.0.0.1:1234", num_processes=2, process_id=0)  # several hosts only
    dist = jax_parallel.data_parallel(batch_norm="replica")  # or "global" (synchronized)
    result = training.fit(lambda: zoo.resnet(depth=56), train, val, recipe,
                          distribution=dist, out_dir="runs/r56")

What runs where (docs/distributed.md has the commands):

- **One SPMD program.** The model's variables are replicated on every device, each global
  batch is split along its first axis across the devices (device ``d`` gets rows
  ``[d * B/D, (d + 1) * B/D)``), and ``model.fit``'s jitted step computes the gradients of
  the global batch's loss: the step equals one device's step on the same global batch. The
  in-model augmentation and MixUp / CutMix run inside that step (kerascnn's layers keep
  ``jit_compile`` on) and draw their random numbers for the global batch, as on one device.
- **Batch normalization.** Under SPMD a ``BatchNormalization`` layer computes the statistics
  of the global batch: that is ``batch_norm="global"`` (what ``norm="sync_batch"`` means on
  TensorFlow). ``batch_norm="replica"`` (the default, what ``MirroredStrategy`` does with a
  plain ``norm="batch"``) makes every ``BatchNormalization`` layer of the model normalize each
  device's rows with their own mean and variance (:func:`replica_batch_norm`); its moving
  statistics move by the mean of the devices' statistics.
- **Several processes** (:func:`initialize`, over ``jax.distributed``): every process runs
  the same command, reads the same data in the same order (the same seed) and feeds its own
  rows of each global batch (:class:`ProcessBatches`); Keras assembles the global batch from
  the processes' rows. Process 0 alone owns and writes the run folder (its lock, log,
  checkpoints, backup, ``model.keras``, ``result.json``). Because assigning a variable is a
  collective operation across the processes, every process runs the same callbacks from the
  same state: the others train into a private copy of the run folder's backup and log
  (:func:`shadow_run_folder`), so a restarted run resumes from process 0's backup in every
  process (:class:`SameStart` checks they agree).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
from keras import ops

from kerascnn.checks import check_choice
from kerascnn.errors import RunFolderError, UserInputError

__all__ = [
    "BATCH_NORM",
    "DataParallel",
    "ProcessBatches",
    "SameStart",
    "data_parallel",
    "distributed_run",
    "initialize",
    "is_writer",
    "replica_batch_norm",
    "shadow_run_folder",
]

BATCH_NORM = ("replica", "global")
ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
       "KERAS_DISTRIBUTION_PROCESS_ID")  # fmt: skip


def _require_jax(what: str) -> None:
    if keras.backend.backend() != "jax":
        raise UserInputError(
            f"{what} is keras.distribution on the JAX backend; received "
            f"KERAS_BACKEND={keras.backend.backend()}"
        )


def initialize(coordinator=None, num_processes=None, process_id=None) -> bool:
    """Join a run of several processes (``keras.distribution.initialize`` over
    ``jax.distributed``); call it in every process before anything else uses JAX.

    Args:
        coordinator: ``"HOST:PORT"`` of process 0 (default: ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
            whose first address is the coordinator).
        num_processes: processes in the run (default: ``KERAS_DISTRIBUTION_NUM_PROCESSES``).
        process_id: this process, ``0 <= process_id < num_processes`` (default:
            ``KERAS_DISTRIBUTION_PROCESS_ID``). Process 0 writes the run folder.

    Returns ``True`` when it joined a run of two or more processes, ``False`` when nothing was
    given (one process: nothing to do)."""
    env = [os.environ.get(name) or None for name in ENV]
    coordinator = coordinator if coordinator is not None else env[0]
    num_processes = num_processes if num_processes is not None else env[1]
    process_id = process_id if process_id is not None else env[2]
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    if all(v is None for v in given.values()):
        return False
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise UserInputError(
            f"a run of several processes needs coordinator, num_processes and process_id "
            f"(--coordinator HOST:PORT --num-processes N --process-id I, or {', '.join(ENV)}); "
            f"missing: {', '.join(missing)}"
        )
    _require_jax("--coordinator/--num-processes/--process-id")
    coordinator = str(coordinator).split(",")[0]
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise UserInputError(f"coordinator must be HOST:PORT; received coordinator={coordinator!r}")
    try:
        num_processes, process_id = int(num_processes), int(process_id)
    except ValueError:
        raise UserInputError(
            f"num_processes and process_id must be integers; received "
            f"num_processes={given['num_processes']!r}, process_id={given['process_id']!r}"
        ) from None
    if num_processes < 1:
        raise UserInputError(f"num_processes must be >= 1; received num_processes={num_processes}")
    if not 0 <= process_id < num_processes:
        raise UserInputError(
            f"process_id must be in [0, {num_processes}); received process_id={process_id}"
        )
    if num_processes == 1:
        return False
    keras.distribution.initialize(coordinator, num_processes, process_id)
    return True


def process_index() -> int:
    """This process's index in the run (0 without :func:`initialize`)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def process_count() -> int:
    """Processes in the run (1 without :func:`initialize`)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run folder: process 0."""
    return process_index() == 0


class DataParallel(keras.distribution.DataParallel):
    """``keras.distribution.DataParallel`` that knows the run's batch-norm choice
    (``batch_norm``: ``"replica"`` or ``"global"``, see the module docstring). It shards the
    data itself (:class:`ProcessBatches`), so Keras's ``tf.data`` auto-sharding is off."""

    def __init__(self, devices=None, *, batch_norm: str = "replica"):
        check_choice("batch_norm", batch_norm, BATCH_NORM)
        super().__init__(devices=devices or keras.distribution.list_devices(),
                         auto_shard_dataset=False)  # fmt: skip
        self.batch_norm = batch_norm

    @property
    def num_devices(self) -> int:
        return int(self.device_mesh.devices.size)

    def prepare(self, model: keras.Model) -> keras.Model:
        """``model`` with the run's batch-norm statistics (:func:`replica_batch_norm` for
        ``"replica"``)."""
        if self.batch_norm == "replica":
            replica_batch_norm(model, self.num_devices)
        return model

    def shard(self, batches):
        """This process's rows of every batch of ``batches`` (a kerascnn ``Pipeline`` or a
        ``keras.utils.PyDataset``): :class:`ProcessBatches`; ``None`` stays ``None``."""
        if batches is None:
            return None
        batches = getattr(batches, "dataset", batches)
        if not isinstance(batches, keras.utils.PyDataset):
            raise UserInputError(
                "data parallelism on JAX reads batches with kerascnn's NumPy loader (a source "
                "other than tensorflow-datasets, placement='model'); received "
                f"{type(batches).__name__}: convert the data to an .npz file"
            )
        return ProcessBatches(batches, self.num_devices, process_count(), process_index())


def data_parallel(devices=None, *, batch_norm: str = "replica") -> DataParallel:
    """A :class:`DataParallel` over ``devices`` (default: every device of every process)."""
    _require_jax("strategy='data-parallel'")
    return DataParallel(devices, batch_norm=batch_norm)


# ------------------------------------------------------------------------ batch norm
def replica_batch_norm(model: keras.Model, replicas: int) -> int:
    """Make every ``BatchNormalization`` layer of ``model`` normalize, in training, each
    replica's rows of the batch (``replicas`` equal consecutive groups: each device's shard)
    with their own mean and variance, as one device would on its share alone; the moving
    statistics move by the mean of the groups' statistics. Inference is unchanged, and so is
    what the model saves. Returns the number of layers changed."""
    changed = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.renorm:
            # an instance attribute: the layer's class, config and saved file stay Keras's
            object.__setattr__(layer, "call", _ReplicaCall(layer, replicas))
            changed += 1
    return changed


class _ReplicaCall:
    """``BatchNormalization.call`` with per-replica statistics in training."""

    def __init__(self, layer, replicas: int):
        self.layer, self.replicas = layer, int(replicas)

    def __call__(self, inputs, training=None, mask=None):
        layer = self.layer
        if not (training and layer.trainable) or mask is not None or self.replicas == 1:
            return type(layer).call(layer, inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        shape, rank = tuple(x.shape), len(x.shape)
        axis = layer.axis % rank
        groups = ops.reshape(x, (self.replicas, shape[0] // self.replicas, *shape[1:]))
        axes = [i + 1 for i in range(rank) if i != axis]
        mean, variance = ops.moments(groups, axes=axes, keepdims=True)
        y = (groups - mean) * ops.rsqrt(variance + layer.epsilon)
        channel = [1] * (rank + 1)
        channel[axis + 1] = shape[axis]
        if layer.scale:
            y = y * ops.reshape(ops.cast(layer.gamma, x.dtype), channel)
        if layer.center:
            y = y + ops.reshape(ops.cast(layer.beta, x.dtype), channel)
        m = layer.momentum
        for moving, stat in ((layer.moving_mean, mean), (layer.moving_variance, variance)):
            stat = ops.mean(ops.reshape(stat, (self.replicas, shape[axis])), axis=0)
            moving.assign(ops.cast(moving, x.dtype) * m + stat * (1.0 - m))
        return ops.cast(ops.reshape(y, shape), layer.compute_dtype)


# ------------------------------------------------------------------------ data
class ProcessBatches(keras.utils.PyDataset):
    """This process's rows of every global batch of ``batches``.

    Every process reads the same global batches (the same data, order and seed: the whole
    batch is read and transformed, as ``tf.data``'s ``DATA`` auto-shard policy does) and keeps
    rows ``[i * b, (i + 1) * b)`` of it, ``b`` = the batch's rows divided by the processes.
    A batch whose size does not split evenly over the devices (the last one) is cut to the
    largest multiple of the number of devices; one smaller than that is left out.

    Args:
        batches: a ``keras.utils.PyDataset`` of global batches (kerascnn's ``BatchLoader``).
        num_devices: devices of all processes.
        num_processes, process_id: the processes and this one.
    """

    def __init__(self, batches, num_devices: int, num_processes: int = 1, process_id: int = 0):
        super().__init__(workers=batches.workers, use_multiprocessing=False,
                         max_queue_size=batches.max_queue_size)  # fmt: skip
        if num_devices % num_processes:
            raise UserInputError(
                f"every process needs the same number of devices; received {num_devices} "
                f"devices over {num_processes} processes"
            )
        self.batches = batches
        self.num_devices, self.num_processes, self.process_id = (
            int(num_devices),
            int(num_processes),
            int(process_id),
        )
        self._len = len(batches)
        if self._len and self._size(self._len - 1) < self.num_devices:
            self._len -= 1  # a last batch smaller than one example per device
        if not self._len:
            raise UserInputError(
                f"the data gives no batch of {num_devices} or more examples (one per device); "
                "use more data or fewer devices"
            )

    def _size(self, index: int) -> int:
        """Examples in batch ``index`` (kerascnn's ``BatchLoader`` says; else assumed whole)."""
        size, total = (getattr(self.batches, k, None) for k in ("batch_size", "num_examples"))
        if size is None or total is None:
            return self.num_devices
        return min(size, total - index * size)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int):
        if not 0 <= index < self._len:
            raise IndexError(f"batch index {index} out of range [0, {self._len})")
        batch = self.batches[index]
        rows = len(keras.tree.flatten(batch)[0]) // self.num_devices * self.num_devices
        if not rows:
            raise UserInputError(
                f"batch {index} has fewer examples than the {self.num_devices} devices"
            )
        share = rows // self.num_processes
        start = self.process_id * share
        return keras.tree.map_structure(lambda a: a[start : start + share], batch)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def on_epoch_end(self):
        self.batches.on_epoch_end()


# ------------------------------------------------------------------------ processes
@contextlib.contextmanager
def shadow_run_folder(out_dir, overwrite: bool = False):
    """The run folder this process trains into: ``out_dir`` itself in process 0 (and in a run
    of one process); in the others a private temporary folder seeded with a copy of
    ``out_dir``'s backup and log (unless ``overwrite``), removed when the block ends.

    Under several JAX processes assigning a variable is a collective operation (every
    process must assign the same value at the same point), so every process runs the same
    callbacks, restores and saves included, from the same backup; process 0's are the run
    folder's. ``out_dir`` must be readable by every process (a shared file system)."""
    if out_dir is None or is_writer():
        yield out_dir
        return
    from kerascnn.training.run_folder import BACKUP, LOG, RESULT

    out = pathlib.Path(out_dir)
    shadow = pathlib.Path(tempfile.mkdtemp(prefix=f"kerascnn-process{process_index()}-"))
    try:
        if not overwrite and not (out / RESULT).exists():
            if (out / BACKUP).is_dir():
                shutil.copytree(out / BACKUP, shadow / BACKUP)
            if (out / LOG).exists():
                shutil.copy2(out / LOG, shadow / LOG)
        yield shadow
    finally:
        shutil.rmtree(shadow, ignore_errors=True)


class SameStart(keras.callbacks.Callback):
    """After the backups are restored (last in the callback list): every process starts at
    process 0's epoch, or the run stops with an error saying why."""

    def on_train_begin(self, logs=None):
        from jax.experimental import multihost_utils

        mine = int(self.model._initial_epoch or 0)
        first = int(multihost_utils.broadcast_one_to_all(np.int32(mine)))
        if first != mine:
            raise RunFolderError(
                f"process {process_index()} resumes at epoch {mine}, process 0 at epoch "
                f"{first}: the run folder's backup must be readable by every process"
            )


@contextlib.contextmanager
def distributed_run(distribution: DataParallel, model, out_dir=None, overwrite: bool = False):
    """What :func:`kerascnn.training.fit` (``distribution=``) trains in: yields ``(model,
    folder, callbacks)``, the model (or the function building it) created in the
    distribution's scope with its batch-norm choice, the folder this process writes
    (:func:`shadow_run_folder`: ``out_dir`` in process 0) and the callbacks several processes
    add (:class:`SameStart`); the block runs in the distribution's scope."""
    if not isinstance(distribution, DataParallel):
        raise UserInputError(
            "distribution must be kerascnn.training.jax_parallel.data_parallel(...); received "
            f"{type(distribution).__name__}"
        )
    with distribution.scope():
        if not isinstance(model, keras.Model):
            model = model()
        distribution.prepare(model)
        callbacks = [SameStart()] if process_count() > 1 else []
        with shadow_run_folder(out_dir, overwrite) as folder:
            yield model, folder, callbacks
