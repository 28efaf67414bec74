"""Per-channel statistics and normalization, in the pipeline or as a layer in the model.

Statistics are in pixel units (images in [0, 255]). The same arithmetic runs in both places:
``(x - mean) / std`` in the input pipeline (``tf.data`` or NumPy) and
``kerascnn.layers.Standardize(mean, std)`` in the model, so a model that carries the layer takes
raw pixels and its exports do too.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerascnn.checks import check_choice
from kerascnn.errors import DataValidationError, UserInputError

__all__ = [
    "compute_stats",
    "compute_stats_numpy",
    "Normalization",
    "NORMALIZE_MODES",
    "PUBLISHED_STATS",
    "resolve_normalization",
]

# Widely used per-channel statistics of the training splits, in pixel units.
# CIFAR: the official binary training sets; MNIST/Fashion-MNIST: the official training sets;
# SVHN: the cropped-digits training set; imagenette: ImageNet's (the images are ImageNet's).
PUBLISHED_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((125.307, 122.950, 113.865), (62.993, 62.089, 66.705)),
    "cifar100": ((129.304, 124.070, 112.434), (68.170, 65.392, 70.418)),
    "mnist": ((33.318,), (78.567,)),
    "fashion_mnist": ((72.930,), (90.015,)),
    "svhn_cropped": ((111.614, 113.167, 120.564), (50.490, 51.255, 50.235)),
    "imagenet": ((123.675, 116.280, 103.530), (58.395, 57.120, 57.375)),
}
PUBLISHED_STATS["imagenette"] = PUBLISHED_STATS["imagenet"]

NORMALIZE_MODES = ("standardize", "scale", "none")


def compute_stats(ds) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of the images of a ``tf.data``
    stream of ``(image, label)`` (needs TensorFlow).

    Sums in float64, image by image, so images of different sizes are fine.
    """
    import tensorflow as tf

    def per_image(x, _y):
        x = tf.cast(x, tf.float64)
        x = tf.reshape(x, (-1, tf.shape(x)[-1]))
        return tf.reduce_sum(x, 0), tf.reduce_sum(x * x, 0), tf.cast(tf.shape(x)[0], tf.float64)

    total = total_sq = count = None
    for s, sq, n in ds.map(per_image, num_parallel_calls=tf.data.AUTOTUNE).batch(1024):
        s, sq, n = s.numpy().sum(0), sq.numpy().sum(0), n.numpy().sum()
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count = n if count is None else count + n
    if count is None:
        raise DataValidationError(
            "cannot compute the mean/std of an empty dataset; received a dataset of 0 images"
        )
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def compute_stats_numpy(read, size: int, chunk: int = 4096):
    """Like :func:`compute_stats` for images that ``read(positions)`` returns as NumPy
    arrays, for positions ``0 .. size - 1`` (an in-memory array's ``__getitem__``, or
    :meth:`Dataset.read <kerascnn.pipelines.Dataset.read>`)."""
    if size == 0:
        raise DataValidationError(
            "cannot compute the mean/std of an empty dataset; received size=0 images"
        )
    total = total_sq = None
    count = 0
    for i in range(0, size, chunk):
        part = np.asarray(read(np.arange(i, min(i + chunk, size))))
        part = part.reshape(-1, part.shape[-1]).astype(np.float64)
        if total is None:
            total, total_sq = np.zeros(part.shape[1]), np.zeros(part.shape[1])
        total += part.sum(0)
        total_sq += np.einsum("ij,ij->j", part, part)
        count += len(part)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """A resolved normalization: ``mode`` is ``"standardize"``, ``"scale"`` or ``"none"``."""

    mode: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __call__(self, x):
        """Normalize a float32 tensor or array of images (any leading batch dimensions)."""
        if self.mode == "scale":
            return x * np.float32(1.0 / 255.0)
        if self.mode == "standardize":
            mean = np.asarray(self.mean, np.float32)
            std = np.maximum(np.asarray(self.std, np.float32), np.float32(keras.backend.epsilon()))
            return (x - mean) / std
        return x

    def layer(self, name: str = "normalization") -> keras.layers.Layer | None:
        """The same normalization as a Keras layer (``None`` for ``"none"``); it serializes."""
        if self.mode == "scale":
            return keras.layers.Rescaling(1.0 / 255.0, name=name)
        if self.mode == "standardize":
            from kerascnn.layers.standardize import Standardize

            return Standardize(self.mean, self.std, name=name)
        return None


def resolve_normalization(normalize, dataset=None, mean=None, std=None) -> Normalization:
    """Turn ``build``'s ``normalize=`` (plus optional ``mean``/``std``) into a :class:`Normalization`.

    ``normalize`` is ``"standardize"`` (per-channel mean/std: given, else the dataset's recorded
    or published values, else computed from it), ``"scale"`` (to [0, 1]), ``"none"``/``None``,
    or an existing :class:`Normalization` (e.g. a training pipeline's, reused for validation).
    """
    if isinstance(normalize, Normalization):
        return normalize
    if normalize is None:
        normalize = "none"
    check_choice("normalize", normalize, NORMALIZE_MODES)
    if normalize != "standardize":
        if mean is not None or std is not None:
            raise UserInputError(
                "mean/std are only used with normalize='standardize'; received "
                f"normalize={normalize!r} with mean={mean!r}, std={std!r}"
            )
        return Normalization(normalize)
    if (mean is None) != (std is None):
        raise UserInputError(
            f"pass both mean and std, or neither; received mean={mean!r}, std={std!r}"
        )
    if mean is None:
        mean, std = dataset.mean, dataset.std
    mean = tuple(float(m) for m in np.atleast_1d(mean))
    std = tuple(float(s) for s in np.atleast_1d(std))
    channels = dataset.image_shape[-1] if dataset is not None else len(mean)
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise UserInputError(
            f"mean and std must have one value per channel ({channels}) and std must be > 0; "
            f"received mean={mean!r}, std={std!r}"
        )
    return Normalization("standardize", mean, std)
