"""Cutout (DeVries & Taylor 2017): erase a random square patch of each example.

One implementation for augmentation and regularization: it works on images and on
feature maps (any number of channels) and can draw an independent patch per channel.
"""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_bool, check_float
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.base import BaseAugmentation, batch_size

__all__ = [
    "Cutout",
    "cutout",
]


def cutout(inputs, centers_y, centers_x, size: int, fill_value=0.0):
    """Set a ``size`` x ``size`` square of each example to ``fill_value``.

    The square is centred at ``(centers_y, centers_x)`` and clipped at the borders (so
    it may be partly outside, as in the paper).

    Args:
        inputs: ``(batch, height, width, channels)``.
        centers_y, centers_x: integer centres, ``(batch,)`` for one patch per example or
            ``(batch, channels)`` for one patch per channel.
        size: side of the square in pixels.
        fill_value: the value written into the patch.
    """
    per_channel = len(centers_y.shape) == 2
    shape = (-1, 1, 1, ops.shape(centers_y)[1]) if per_channel else (-1, 1, 1, 1)
    top = ops.reshape(ops.cast(centers_y, "int32") - size // 2, shape)
    left = ops.reshape(ops.cast(centers_x, "int32") - size // 2, shape)
    s = ops.shape(inputs)
    rows = ops.reshape(ops.arange(s[1], dtype="int32"), (1, -1, 1, 1))
    cols = ops.reshape(ops.arange(s[2], dtype="int32"), (1, 1, -1, 1))
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return ops.where(inside, ops.cast(fill_value, inputs.dtype), inputs)


@keras.saving.register_keras_serializable(package="kerascnn")
class Cutout(BaseAugmentation):
    """Erase a random square patch of each example (and, optionally, of each channel).

    The centre is uniform over the image; the patch is clipped at the borders. Identity at
    inference, including when called without a ``training`` argument.

    Args:
        size: side of the square: an integer number of pixels, at most the smaller image
            side (checked when the layer is built), or a float in (0, 1] for a fraction of
            the smaller spatial side (useful on feature maps).
        fill_value: value written into the patch (0 for images normalised to mean 0).
        per_channel: if true, each channel gets its own patch (a spatial-dropout-like
            regularizer on feature maps).
        probability: probability that an example is cut at all.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
        training: cut only if true.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input.

    Reference: DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks
    with Cutout", arXiv:1708.04552 (CIFAR-10: 16x16 patches).

    Example:
        >>> y = Cutout(16, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """

    def __init__(
        self, size=16, fill_value=0.0, per_channel=False, probability=1.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        ok_int = isinstance(size, int) and not isinstance(size, bool) and size >= 1
        ok_float = isinstance(size, float) and 0.0 < size <= 1.0
        if not (ok_int or ok_float):
            raise UserInputError(
                "size must be an integer >= 1 (pixels) or a float in (0, 1] (fraction of the "
                f"smaller side); received size={size!r}"
            )
        check_bool("per_channel", per_channel)
        self.size = size
        self.fill_value = check_float("fill_value", fill_value, -1e30, 1e30, high_inclusive=True)
        self.per_channel = per_channel
        self.probability = check_float("probability", probability, 0.0, 1.0, high_inclusive=True)

    def check_image_size(self, height, width):
        if isinstance(self.size, int) and self.size > min(height, width):
            raise UserInputError(
                f"size must be at most the smaller image side, {min(height, width)} pixels for "
                f"{height}x{width} images (or a float in (0, 1], a fraction of it); received "
                f"size={self.size}"
            )

    def augment(self, images):
        s = ops.shape(images)
        b, h, w = batch_size(images), s[1], s[2]
        size = (
            self.size if isinstance(self.size, int) else max(1, int(round(self.size * min(h, w))))
        )
        shape = (b, s[3]) if self.per_channel else (b,)
        cy = keras.random.randint(shape, 0, h, seed=self.generator, dtype="int32")
        cx = keras.random.randint(shape, 0, w, seed=self.generator, dtype="int32")
        if self.probability < 1.0:
            keep = keras.random.uniform((b,), seed=self.generator) >= self.probability
            keep = ops.reshape(keep, (-1, 1)) if self.per_channel else keep
            cy = ops.where(keep, -10 * size - h, cy)  # a patch far outside the image
        return cutout(images, cy, cx, size, self.fill_value)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "fill_value": self.fill_value,
            "per_channel": self.per_channel,
            "probability": self.probability,
        }
