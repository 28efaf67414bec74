"""The backend-neutral input path: shuffle + batch of a dataset's uint8 images, in NumPy.

With augmentation and normalization in the model (the task's:
``kerascnn.tasks.input_layers``), the input pipeline has nothing left to compute: it only
shuffles and batches raw pixels. :class:`BatchLoader`
does that with NumPy as a ``keras.utils.PyDataset``, which ``model.fit`` takes on every Keras
backend (TensorFlow, JAX, PyTorch) without TensorFlow installed.

    loader = BatchLoader(kerascnn.pipelines.load("cifar10-sample"), batch_size=128, seed=0)
    x, y = loader[0]          # uint8 (128, 32, 32, 3), int32 (128,)
    model.fit(loader, epochs=10)

Epoch ``e`` visits the examples in the order ``numpy.random.default_rng([seed, e])
.permutation(n)``, so the same seed gives the same batches, epoch by epoch, on every backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import keras
import numpy as np

__all__ = [
    "BatchLoader",
    "Transform",
]

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class BatchLoader(keras.utils.PyDataset):
    """Batches of ``(images, labels)`` from a :class:`~kerascnn.pipelines.Dataset`, as NumPy.

    Args:
        dataset: a readable dataset (every source but tensorflow-datasets;
            ``dataset.readable``).
        batch_size: examples per batch.
        shuffle: a new order every epoch (``on_epoch_end``), drawn from ``seed`` and the epoch
            number; ``False`` keeps the dataset's order.
        seed: seed of the shuffle.
        drop_remainder: leave out a last, smaller batch.
        transform: ``transform(images, labels) -> (images, labels)``, a deterministic
            function applied to each batch (normalization); ``None`` yields the raw uint8
            images and int32 labels.
        workers: threads reading batches ahead (``keras.utils.PyDataset``); default: 1 for data
            held in memory (a batch is one NumPy gather, microseconds), else up to 4 for
            files decoded on the fly.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 128,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_remainder: bool = False,
        transform: Transform | None = None,
        workers: int | None = None,
    ):
        if not dataset.readable:
            dataset.read([])  # raises the error that names the source
        if workers is None:
            workers = 1 if dataset.in_memory else min(4, os.cpu_count() or 1)
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_remainder = drop_remainder
        self.transform = transform
        self.epoch = 0
        self._labels = dataset.labels.astype(np.int32)
        self._order = self._order_of(0)

    def _order_of(self, epoch: int) -> np.ndarray:
        n = len(self._labels)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __len__(self) -> int:
        n = len(self._labels)
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    @property
    def num_examples(self) -> int:
        """Examples per epoch (without a dropped remainder)."""
        return len(self) * self.batch_size if self.drop_remainder else len(self._labels)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        return self._batch(self._order, index)

    def _batch(self, order: np.ndarray, index: int):
        positions = order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.dataset.read(positions)
        labels = self._labels[positions]
        if self.transform is not None:
            images, labels = self.transform(images, labels)
        return images, labels

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s order next (``kerascnn.training.fit`` calls it at every epoch
        start, so a run resumed at epoch ``k`` sees the batches an uninterrupted run saw)."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._order = self._order_of(self.epoch)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    @property
    def streams_endlessly(self) -> bool:
        """Whether :meth:`endless_tf_dataset` serves the same batches as the epochs of this
        loader: data held in memory (one reading thread is enough)."""
        return bool(self.dataset.in_memory)

    def endless_tf_dataset(self):
        """Epoch after epoch of batches as one ``tf.data.Dataset`` (TensorFlow backend).

        The dataset starts at the epoch :meth:`set_epoch` named last when its iterator starts,
        then serves the batches of that epoch and of every later one, in the loader's order.
        ``model.fit(..., steps_per_epoch=len(loader))`` then keeps one iterator for the
        whole run. Given a ``PyDataset``, Keras's TensorFlow trainer makes a new ``tf.data``
        iterator at every epoch, which sometimes took 1.4-2.5 s (the main-command benchmark
        of 2026-12-01 in ``benchmarks/results/``).
        """
        import tensorflow as tf

        signature = tuple(
            tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))
            for array in self._batch(self._order_of(0), 0)
        )
        stream = tf.data.Dataset.from_generator(
            lambda: self._epochs_from(self.epoch), output_signature=signature
        )
        return stream.prefetch(2)

    def _epochs_from(self, epoch: int):
        """The batches of epoch ``epoch``, then of every later epoch, without end."""
        while True:
            order = self._order_of(epoch)
            for index in range(len(self)):
                yield self._batch(order, index)
            epoch += 1

    def __iter__(self):
        """One epoch of batches (then the next epoch's order is drawn)."""
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()
