"""Random flips and the CIFAR pad-and-crop, built from ``where`` and gathers (XLA-friendly)."""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_choice, check_float, check_int
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.base import BaseAugmentation, batch_size, per_image

__all__ = [
    "flip",
    "FLIP_MODES",
    "gather_pixels",
    "MAX_PADDING_BELOW_SIDE",
    "pad_crop",
    "PAD_FILLS",
    "RandomFlip",
    "RandomPadCrop",
]

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
PAD_FILLS = ("reflect", "constant", "symmetric")
# The largest padding of each fill, relative to the smaller image side: reflect mirrors
# without the edge pixel, so it needs padding < side (tf.pad's limit; the same on every
# backend); symmetric mirrors with it (padding <= side); constant padding < side keeps part
# of the image in every crop.
MAX_PADDING_BELOW_SIDE = {"reflect": 1, "symmetric": 0, "constant": 1}


def gather_pixels(images, rows, cols):
    """Per-image pixel gather: ``out[b, i, j] = images[b, rows[b, i, j], cols[b, i, j]]``.

    ``rows`` and ``cols`` are integer tensors of shape ``(batch, out_height, out_width)``
    with valid indices. One flat ``take`` so that every backend, and XLA, compiles it.
    """
    shape = ops.shape(images)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    flat = ops.reshape(images, (-1, c))
    base = ops.reshape(ops.arange(b, dtype="int32") * (h * w), (-1, 1, 1))
    index = base + ops.cast(rows, "int32") * w + ops.cast(cols, "int32")
    return ops.take(flat, index, axis=0)


def flip(images, flip_horizontal=None, flip_vertical=None):
    """Flip each image of ``images`` (NHWC) where its boolean flag is true.

    Args:
        images: ``(batch, height, width, channels)``.
        flip_horizontal: ``(batch,)`` booleans (left-right flip) or None.
        flip_vertical: ``(batch,)`` booleans (up-down flip) or None.
    """
    if flip_horizontal is not None:
        images = ops.where(per_image(flip_horizontal), ops.flip(images, axis=2), images)
    if flip_vertical is not None:
        images = ops.where(per_image(flip_vertical), ops.flip(images, axis=1), images)
    return images


def pad_crop(images, offsets_y, offsets_x, padding: int, fill: str = "reflect", fill_value=0.0):
    """Pad ``images`` by ``padding`` pixels on each side and take, for each image, the window
    of the original size whose top-left corner is ``(offsets_y[b], offsets_x[b])`` in the
    padded image (offsets in ``[0, 2 * padding]``).

    ``fill`` is ``"reflect"`` (mirror without repeating the edge, as ``np.pad`` reflect),
    ``"symmetric"`` (mirror with the edge) or ``"constant"`` (``fill_value``: one number, or
    one per channel).
    """
    pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    if fill == "constant" and isinstance(fill_value, (list, tuple)):
        # zeros, then the border mask times the per-channel value: the image's own pixels
        # are copied exactly (no x - v + v rounding)
        border = 1 - ops.pad(ops.ones_like(images[:1, :, :, :1]), pads, mode="constant")
        if "int" in str(images.dtype):
            fill_value = [round(v) for v in fill_value]
        value = ops.convert_to_tensor(fill_value, dtype=images.dtype)
        padded = ops.pad(images, pads, mode="constant") + border * value
    elif fill == "constant":
        padded = ops.pad(images, pads, mode="constant", constant_values=fill_value)
    else:
        padded = ops.pad(images, pads, mode=fill)
    shape = ops.shape(images)
    h, w = shape[1], shape[2]
    rows = ops.reshape(offsets_y, (-1, 1, 1)) + ops.reshape(
        ops.arange(h, dtype="int32"), (1, -1, 1)
    )
    cols = ops.reshape(offsets_x, (-1, 1, 1)) + ops.reshape(
        ops.arange(w, dtype="int32"), (1, 1, -1)
    )
    rows = ops.broadcast_to(rows, (shape[0], h, w))
    cols = ops.broadcast_to(cols, (shape[0], h, w))
    return gather_pixels(padded, rows, cols)


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomFlip(BaseAugmentation):
    """Randomly flip each image left-right and/or up-down (each with probability 0.5).

    Identity at inference, including when called without a ``training`` argument.

    Args:
        mode: ``"horizontal"``, ``"vertical"`` or ``"horizontal_and_vertical"``.
        probability: probability of flipping each image along each selected axis.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: images, ``(batch, height, width, channels)`` or one ``(height, width, channels)``.
        training: augment only if true.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input.

    Reference: Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
    Networks", NeurIPS 2012 (horizontal reflections).

    Example:
        >>> layer = RandomFlip("horizontal", seed=1)
        >>> y = layer(keras.ops.ones((4, 32, 32, 3)), training=True)
    """

    def __init__(self, mode: str = "horizontal", probability: float = 0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = check_choice("mode", mode, FLIP_MODES)
        self.probability = check_float("probability", probability, 0.0, 1.0, high_inclusive=True)

    def augment(self, images):
        b = batch_size(images)
        fh = fv = None
        if self.mode != "vertical":
            fh = keras.random.uniform((b,), seed=self.generator) < self.probability
        if self.mode != "horizontal":
            fv = keras.random.uniform((b,), seed=self.generator) < self.probability
        return flip(images, fh, fv)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "probability": self.probability}


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomPadCrop(BaseAugmentation):
    """Pad each image by ``padding`` pixels and take a random crop of the original size.

    The standard CIFAR augmentation of He et al. (2016): 4-pixel padding and a random
    32x32 crop. Unlike ``keras.layers.RandomCrop``, the output has the input's shape in
    training and inference, and inference is the identity (the centre crop of the padded
    image), including when called without a ``training`` argument.

    Args:
        padding: pixels added on each side (integer >= 0), less than the smaller image side
            (at most equal with ``fill="symmetric"``; checked when the layer is built).
        fill: ``"reflect"`` (mirror without the edge pixel, as ``np.pad``), ``"symmetric"``
            (mirror with it) or ``"constant"``.
        fill_value: value of the padding when ``fill="constant"``: one number, or one per
            channel (e.g. the data's mean pixel, so that the padding is zero after
            standardization, as He et al. pad the standardized image).
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: images, ``(batch, height, width, channels)`` or ``(height, width, channels)``.
        training: augment only if true.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, sec. 4.2.

    Example:
        >>> layer = RandomPadCrop(padding=4, seed=1)
        >>> y = layer(keras.ops.ones((4, 32, 32, 3)), training=True)
    """

    def __init__(
        self,
        padding: int = 4,
        fill: str = "reflect",
        fill_value: float | list[float] = 0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.padding = check_int("padding", padding, 0)
        self.fill = check_choice("fill", fill, PAD_FILLS)
        if isinstance(fill_value, (list, tuple)):
            if not fill_value:
                raise UserInputError("fill_value must be a number or a non-empty list of numbers")
            self.fill_value = [
                check_float("fill_value", v, -1e30, 1e30, high_inclusive=True) for v in fill_value
            ]
        else:
            self.fill_value = check_float(
                "fill_value", fill_value, -1e30, 1e30, high_inclusive=True
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if isinstance(self.fill_value, list) and channels not in (None, len(self.fill_value)):
            raise UserInputError(
                f"fill_value has {len(self.fill_value)} values (one per channel) but the images "
                f"have {channels} channels"
            )
        super().build(input_shape)

    def check_image_size(self, height, width):
        limit = min(height, width) - MAX_PADDING_BELOW_SIDE[self.fill]
        if self.padding > limit:
            raise UserInputError(
                f"padding must be at most {limit} for {height}x{width} images with "
                f"fill={self.fill!r} (padding < min(height, width), or <= with "
                f"fill='symmetric'); received padding={self.padding}"
            )

    def augment(self, images):
        if self.padding == 0:
            return images
        b = batch_size(images)
        oy = keras.random.randint((b,), 0, 2 * self.padding + 1, seed=self.generator, dtype="int32")
        ox = keras.random.randint((b,), 0, 2 * self.padding + 1, seed=self.generator, dtype="int32")
        return pad_crop(images, oy, ox, self.padding, self.fill, self.fill_value)

    def get_config(self):
        return {
            **super().get_config(),
            "padding": self.padding,
            "fill": self.fill,
            "fill_value": self.fill_value,
        }
