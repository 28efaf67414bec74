"""The dataset object every source returns: its examples, readable two ways, plus metadata.

A :class:`Dataset` is a lazy, ordered collection of ``(image, label)`` pairs: images are
``uint8`` (or the source's dtype) ``(height, width, channels)`` arrays with pixel values in
[0, 255], labels are class ids. It knows its labels (for stratified splits), its class names
and its per-channel mean / std (in pixel units, computed on demand when the source has no
recorded values). :func:`kerascnn.pipelines.build` turns it into batches.

Its images are read either as NumPy batches (:meth:`Dataset.read`: every source but
tensorflow-datasets, on every Keras backend, without TensorFlow) or as a ``tf.data`` stream
(:meth:`Dataset.as_tf`: every source, needs TensorFlow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from kerascnn.backends import require_tensorflow
from kerascnn.errors import UserInputError

__all__ = [
    "Dataset",
    "DatasetInfo",
    "MakeFn",
    "ReadFn",
]

#: ``make(indices)``: the ``tf.data.Dataset`` of ``(image, label)`` for sorted source indices.
MakeFn = Callable[[np.ndarray | None], "tf.data.Dataset"]  # noqa: F821
#: ``read(indices)``: the images at those source indices as one NumPy array ``(n, H, W, C)``.
ReadFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata that travels with a dataset.

    Attributes:
        name: the source (``"cifar10"``, ``"cifar10-sample"``, a file or folder path).
        split: which part of the source (``"train"``, ``"validation"``, ``"test"``, ...).
        class_names: one name per class id.
        image_shape: ``(height, width, channels)``; ``None`` for a dimension that varies.
        mean, std: per-channel statistics in pixel units ([0, 255] scale), or ``None`` until
            computed (see :attr:`Dataset.mean`).
        stats_source: where ``mean`` / ``std`` come from: ``"published"``, ``"recorded"``
            (stored with the bundled sample), ``"computed"`` (from this data or the training
            part it was split from), or ``None``.
        skipped_files: image-folder files that could not be decoded and were skipped
            (``on_bad_file="skip"``).
    """

    name: str
    split: str
    class_names: tuple[str, ...]
    image_shape: tuple[int | None, int | None, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stats_source: str | None = None
    skipped_files: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Dataset:
    """A labelled image source with metadata. Created by :func:`kerascnn.pipelines.load`.

    Args:
        info: the :class:`DatasetInfo`.
        make: ``make(indices)`` returns the ``tf.data.Dataset`` of ``(image, label)`` for the
            given sorted source indices (``None``: all), in source order (imports TensorFlow
            when called).
        read: ``read(indices)`` returns the images at the given source indices (any order)
            as one NumPy array; ``None`` for sources only TensorFlow can read (tfds).
        labels: the labels of the whole source as an int array, or a function that returns
            them (called once, on first use).
        size: number of examples in the whole source.
        indices: sorted source indices of this subset (``None``: all).
    """

    def __init__(
        self,
        info: DatasetInfo,
        make: MakeFn,
        labels: np.ndarray | Callable[[], np.ndarray],
        size: int | None = None,
        indices: np.ndarray | None = None,
        in_memory: bool = False,
        arrays: np.ndarray | None = None,
        read: ReadFn | None = None,
    ):
        self.info = info
        self._make = make
        self._labels = labels
        self._size = size
        self._indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        #: True when the elements come from arrays held in memory (caching would not help).
        self.in_memory = in_memory or arrays is not None
        self._arrays = arrays  # the images, when the source holds them in memory
        if read is None and arrays is not None:
            read = arrays.__getitem__
        self._read = read

    # ------------------------------------------------------------------ metadata
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def image_shape(self) -> tuple[int | None, int | None, int]:
        return self.info.image_shape

    @property
    def indices(self) -> np.ndarray:
        """Source indices of the examples of this dataset (sorted)."""
        if self._indices is None:
            return np.arange(len(self._all_labels()), dtype=np.int64)
        return self._indices

    def _all_labels(self) -> np.ndarray:
        if callable(self._labels):
            self._labels = np.asarray(self._labels(), dtype=np.int64)
        return self._labels

    @property
    def labels(self) -> np.ndarray:
        """The labels of this dataset's examples, in order (int64 array)."""
        labels = self._all_labels()
        return labels if self._indices is None else labels[self._indices]

    def __len__(self) -> int:
        if self._indices is not None:
            return len(self._indices)
        if self._size is None:
            self._size = len(self._all_labels())
        return self._size

    def __repr__(self) -> str:
        return (
            f"<kerascnn.pipelines.Dataset {self.info.name!r} split={self.info.split!r} "
            f"examples={len(self)} classes={self.num_classes} image_shape={self.image_shape}>"
        )

    # ------------------------------------------------------------------ data
    @property
    def readable(self) -> bool:
        """True when :meth:`read` works (every source but tensorflow-datasets)."""
        return self._read is not None

    def read(self, positions) -> np.ndarray:
        """The images at ``positions`` (indices into this dataset, any order) as one NumPy array
        ``(len(positions), H, W, C)``. No TensorFlow needed."""
        if self._read is None:
            raise UserInputError(
                f"{self.info.name!r} is a tensorflow-datasets source, read through tf.data only "
                "(Dataset.as_tf()); convert it to an .npz file to use it without TensorFlow"
            )
        return self._read(self.indices[np.asarray(positions, dtype=np.int64)])

    def as_tf(self):
        """The unbatched ``tf.data.Dataset`` of ``(image, label)``, in a fixed order (needs
        TensorFlow)."""
        require_tensorflow("tf.data input pipelines")
        return self._make(self._indices)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """All images and labels as NumPy arrays (fixed-size images only; meant for small data)."""
        if self.readable:
            return self.read(np.arange(len(self))), self.labels.astype(np.int32)
        xs, ys = [], []
        for x, y in self.as_tf().batch(1024):
            xs.append(x.numpy())
            ys.append(y.numpy())
        return np.concatenate(xs), np.concatenate(ys)

    def subset(self, indices, split: str | None = None, **info_changes) -> Dataset:
        """The examples at ``indices`` (positions in this dataset), kept in source order."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or (
            len(indices) and (indices.min() < 0 or indices.max() >= len(self))
        ):
            raise UserInputError(
                f"indices must be a 1-D array of positions in [0, {len(self)}); received "
                f"shape {indices.shape}"
            )
        source_idx = np.unique(self.indices[indices])
        info = dataclasses.replace(self.info, split=split or self.info.split, **info_changes)
        return Dataset(
            info, self._make, self._labels, self._size, source_idx, self.in_memory, self._arrays,
            self._read,
        )  # fmt: skip

    def with_info(self, **changes) -> Dataset:
        """A copy with some metadata fields replaced."""
        info = dataclasses.replace(self.info, **changes)
        return Dataset(
            info, self._make, self._labels, self._size, self._indices, self.in_memory,
            self._arrays, self._read,
        )  # fmt: skip

    # ------------------------------------------------------------------ statistics
    def compute_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation of the pixels of this dataset, computed now."""
        from kerascnn.pipelines.normalization import compute_stats, compute_stats_numpy

        if self.readable:
            return compute_stats_numpy(self.read, len(self))
        return compute_stats(self.as_tf())

    def _stats(self):
        if self.info.mean is None or self.info.std is None:
            mean, std = self.compute_stats()
            self.info = dataclasses.replace(self.info, mean=mean, std=std, stats_source="computed")
        return self.info.mean, self.info.std

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean in pixel units (recorded, published, or computed on first use)."""
        return self._stats()[0]

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation in pixel units (see :attr:`mean`)."""
        return self._stats()[1]
