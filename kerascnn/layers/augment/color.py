"""Colour and tone operations (Pillow semantics, as used by AutoAugment and RandAugment).

Every function takes images in ``value_range`` (``(0, 255)`` by default; ``(0, 1)`` works
too), works internally on the 0..255 scale in float32, and returns float32 images in
``value_range``. Parameters are scalars or one value per image (shape ``(batch,)``), so
that RandAugment can give each image its own parameter and make "not chosen" an identity
parameter (factor 1, 8 bits, threshold above the range).
"""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_float
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.base import (
    BaseAugmentation,
    batch_size,
    check_range,
    check_value_range,
    from_unit,
    to_unit,
)

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_sharpness",
    "apply_lut",
    "AutoContrast",
    "autocontrast",
    "band_histograms",
    "DEFAULT_RANGE",
    "Equalize",
    "equalize",
    "equalize_lut",
    "grey",
    "Invert",
    "invert",
    "Posterize",
    "posterize",
    "RandomBrightness",
    "RandomColor",
    "RandomContrast",
    "RandomSharpness",
    "sharpness_detail",
    "Solarize",
    "solarize",
]

DEFAULT_RANGE = (0.0, 255.0)


def _param(value, rank: int = 4):
    """A scalar stays a scalar; a per-image ``(batch,)`` tensor becomes ``(batch, 1, 1, 1)``."""
    if isinstance(value, (int, float)):
        return float(value)
    value = ops.cast(value, "float32")
    if len(value.shape) == 0:
        return value
    return ops.reshape(value, (-1,) + (1,) * (rank - 1))


def grey(x):
    """Luma of 0..255 images with Pillow's weights (``L = R*299/1000 + G*587/1000 + B*114/1000``);
    the channel mean for images that do not have 3 channels. Shape ``(batch, h, w, 1)``."""
    if x.shape[-1] == 3:
        return x[..., 0:1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114
    return ops.mean(x, axis=-1, keepdims=True)


def _blend(degenerate, x, factor):
    """Pillow's ``ImageEnhance``: ``degenerate + factor * (x - degenerate)``, clipped; written
    as ``x + (1 - factor) * (degenerate - x)`` so that factor 1 is exactly the identity."""
    return ops.clip(x + (1.0 - _param(factor)) * (degenerate - x), 0.0, 255.0)


def adjust_brightness(images, factor, value_range=DEFAULT_RANGE):
    """Blend with black: factor 0 gives black, 1 the original (``ImageEnhance.Brightness``)."""
    x = to_unit(images, value_range)
    return from_unit(ops.clip(x * _param(factor), 0.0, 255.0), value_range)


def adjust_contrast(images, factor, value_range=DEFAULT_RANGE):
    """Blend with the image's mean grey level (``ImageEnhance.Contrast``)."""
    x = to_unit(images, value_range)
    mean = ops.mean(grey(x), axis=(1, 2, 3), keepdims=True)
    return from_unit(_blend(mean, x, factor), value_range)


def adjust_saturation(images, factor, value_range=DEFAULT_RANGE):
    """Blend with the grey image: 0 gives grey, 1 the original (``ImageEnhance.Color``)."""
    x = to_unit(images, value_range)
    return from_unit(_blend(grey(x), x, factor), value_range)


def sharpness_detail(x):
    """``smooth(x) - x`` for 0..255 images, with Pillow's SMOOTH kernel
    ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` inside and 0 on the border pixels (which
    Pillow leaves unchanged): ``(box3x3(x) - 9 x) / 13`` from shifted slices of the interior,
    zero-padded back (XLA fuses it into one loop)."""
    shape = x.shape
    if isinstance(shape[1], int) and isinstance(shape[2], int) and min(shape[1:3]) >= 3:
        rows = x[:, :-2] + x[:, 1:-1] + x[:, 2:]
        box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
        detail = (box - 9.0 * x[:, 1:-1, 1:-1]) * (1.0 / 13.0)
        return ops.pad(detail, [[0, 0], [1, 1], [1, 1], [0, 0]])
    # dynamic or tiny sizes: the same sums on a padded image, masked to the interior
    p = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    shape = ops.shape(x)
    r = ops.reshape(ops.arange(shape[1]), (1, -1, 1, 1))
    c = ops.reshape(ops.arange(shape[2]), (1, 1, -1, 1))
    inside = (r > 0) & (r < shape[1] - 1) & (c > 0) & (c < shape[2] - 1)
    return ops.where(inside, box - 9.0 * x, 0.0) * (1.0 / 13.0)


def adjust_sharpness(images, factor, value_range=DEFAULT_RANGE):
    """Blend with a smoothed image (``ImageEnhance.Sharpness``): Pillow's SMOOTH kernel
    ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` inside, border pixels unchanged. Factor 0
    smooths, 1 is the original, 2 sharpens."""
    x = to_unit(images, value_range)
    # smooth - x = (box3x3 - 9 x) / 13, so blend = x + (1 - factor) * (box3x3 - 9 x) / 13
    out = ops.clip(x + (1.0 - _param(factor)) * sharpness_detail(x), 0.0, 255.0)
    return from_unit(out, value_range)


def posterize(images, bits, value_range=DEFAULT_RANGE):
    """Keep the ``bits`` most significant bits of each 8-bit grey level (``ImageOps.posterize``):
    ``floor(v / 2**(8 - bits)) * 2**(8 - bits)`` on the 0..255 scale. ``bits`` in 1..8."""
    x = to_unit(images, value_range)
    step = (
        ops.power(2.0, 8.0 - _param(bits)) if not isinstance(bits, int) else float(2 ** (8 - bits))
    )
    return from_unit(ops.floor(ops.round(x) / step) * step, value_range)


def solarize(images, threshold, value_range=DEFAULT_RANGE):
    """Invert every value at or above ``threshold`` (``ImageOps.solarize``); ``threshold`` is
    in ``value_range`` units, and one above the range leaves the image unchanged."""
    lo, hi = value_range
    x = ops.cast(images, "float32")
    return ops.where(x < _param(threshold), x, (lo + hi) - x)


def invert(images, value_range=DEFAULT_RANGE):
    """``low + high - x`` (``ImageOps.invert``)."""
    lo, hi = value_range
    return (lo + hi) - ops.cast(images, "float32")


def autocontrast(images, value_range=DEFAULT_RANGE):
    """Stretch each channel of each image linearly so its minimum becomes the range's low
    and its maximum the high end (``ImageOps.autocontrast`` with no cutoff; constant
    channels are unchanged)."""
    x = to_unit(images, value_range)
    lo = ops.min(x, axis=(1, 2), keepdims=True)
    hi = ops.max(x, axis=(1, 2), keepdims=True)
    span = hi - lo
    stretched = (x - lo) * (255.0 / ops.where(span > 0, span, 1.0))
    return from_unit(ops.where(span > 0, stretched, x), value_range)


def band_histograms(levels):
    """Histograms of integer 0..255 ``levels`` ``(batch, h, w, channels)``, one per image and
    channel: ``(hist (batch, channels, 256) int32, ids)`` where ``ids`` are the flat
    ``(band * 256 + level)`` indices (reusable for a look-up-table gather). One scatter-add
    (``segment_sum``) for the whole batch (``bincount`` is faster in a plain TensorFlow graph
    but does not compile under XLA inside a conditional)."""
    shape = ops.shape(levels)
    b, c = shape[0], shape[3]
    band = ops.reshape(ops.arange(b * c, dtype="int32"), (-1, 1, 1, c))
    ids = ops.reshape(band * 256 + levels, (-1,))
    hist = ops.segment_sum(ops.ones_like(ids), ids, num_segments=b * c * 256)
    return ops.reshape(hist, (b, c, 256)), ids


def equalize_lut(hist, num_pixels):
    """Pillow's equalization look-up tables ``(..., 256)`` float32 (integral grey levels) from
    histograms ``(..., 256)`` of images with ``num_pixels`` pixels.

    Pillow: ``step = (n - count of the top used level) // 255``; ``lut[i] = (step // 2 +
    cumulative count below i) // step``; the identity when at most one level is used or
    ``step`` is 0. Computed in float32, which is exact while the counts stay below 2**22
    (images up to about 4 megapixels), and cheaper than integer division on CPU."""
    hist = ops.cast(hist, "float32")
    levels = ops.cast(ops.arange(256), "float32")
    used = hist > 0
    n_used = ops.sum(ops.cast(used, "float32"), axis=-1, keepdims=True)
    top = ops.max(ops.where(used, levels, 0.0), axis=-1, keepdims=True, initial=0.0)
    count_top = ops.sum(ops.where(levels == top, hist, 0.0), axis=-1, keepdims=True)
    step = ops.floor((ops.cast(num_pixels, "float32") - count_top) / 255.0)
    safe = ops.maximum(step, 1.0)
    # exclusive cumulative histogram as one matmul with a strictly upper-triangular 0/1
    # matrix (exact: integer sums below 2**24), much cheaper under XLA than ``cumsum``
    below = ops.cast(ops.expand_dims(levels, 1) < ops.expand_dims(levels, 0), "float32")
    before = ops.matmul(hist, below)
    lut = ops.clip(ops.floor((ops.floor(safe / 2.0) + before) / safe), 0.0, 255.0)
    return ops.where((n_used > 1.0) & (step > 0.0), lut, levels)


def apply_lut(lut, ids, shape):
    """Apply per-band look-up tables ``(batch, channels, 256)`` through flat ``ids``."""
    return ops.reshape(ops.take(ops.reshape(lut, (-1,)), ids), shape)


def equalize(images, value_range=DEFAULT_RANGE):
    """Histogram equalization of each channel of each image, exactly Pillow's
    ``ImageOps.equalize`` on 8-bit grey levels (values are rounded to 0..255 first).

    Vectorized: one ``segment_sum`` for all histograms, one gather for all look-up tables.
    """
    x = to_unit(images, value_range)
    v = ops.cast(ops.clip(ops.round(x), 0.0, 255.0), "int32")
    shape = ops.shape(v)
    hist, ids = band_histograms(v)
    lut = equalize_lut(hist, shape[1] * shape[2])
    return from_unit(apply_lut(lut, ids, shape), value_range)


# --------------------------------------------------------------------------- layers
_LAYER_DOC = """
        value_range: ``(low, high)`` of the input values, e.g. ``(0, 255)`` or ``(0, 1)``.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: images, ``(batch, height, width, channels)`` or ``(height, width, channels)``.
        training: augment only if true; identity otherwise (also when absent).

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input (same dtype; integer inputs are rounded).

    Reference: Cubuk et al., "AutoAugment: Learning Augmentation Policies from Data", CVPR 2019,
    and Pillow's ``ImageEnhance`` / ``ImageOps``.
"""


def _register(make_doc, *doc_args):
    """Class decorator of the layers below: registers the class for Keras serialization (as
    ``kerascnn>ClassName``) and completes its one-line docstring with the shared text of
    ``make_doc(docstring, *doc_args)``, where ``LAYER`` stands for the class name."""

    def decorate(cls):
        if cls.__doc__ is not None:  # None under python -OO
            cls.__doc__ = make_doc(cls.__doc__, *doc_args).replace("LAYER", cls.__name__)
        return keras.saving.register_keras_serializable(package="kerascnn")(cls)

    return decorate


class _EnhanceLayer(BaseAugmentation):
    """A random enhancement factor ``1 + u`` per image, ``u ~ U(lower, upper)``."""

    _fn = None

    def __init__(self, factor=0.5, value_range=DEFAULT_RANGE, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = check_range("factor", factor, -1.0, 10.0)
        self.value_range = check_value_range(value_range)

    def augment(self, images):
        lo, hi = self.factor
        f = 1.0 + keras.random.uniform((batch_size(images),), lo, hi, seed=self.generator)
        return type(self)._fn(images, f, self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


def _enhance_doc(what):
    return (
        f"""{what}

    Each image gets the enhancement factor ``1 + u`` with ``u ~ U(lower, upper)``.

    Args:
        factor: ``f`` for ``u`` in ``(-f, f)``, or ``(lower, upper)`` with
            ``-1 <= lower <= upper <= 10``."""
        + _LAYER_DOC
        + """
    Example:
        >>> y = LAYER(0.4, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )


@_register(_enhance_doc)
class RandomBrightness(_EnhanceLayer):
    """Random brightness (blend with black)."""

    _fn = staticmethod(adjust_brightness)


@_register(_enhance_doc)
class RandomContrast(_EnhanceLayer):
    """Random contrast (blend with the mean grey)."""

    _fn = staticmethod(adjust_contrast)


@_register(_enhance_doc)
class RandomColor(_EnhanceLayer):
    """Random colour saturation (blend with grey)."""

    _fn = staticmethod(adjust_saturation)


@_register(_enhance_doc)
class RandomSharpness(_EnhanceLayer):
    """Random sharpness (blend with a smoothed image)."""

    _fn = staticmethod(adjust_sharpness)


class _ProbabilityLayer(BaseAugmentation):
    """Apply a fixed operation to each image with probability ``probability``."""

    def __init__(self, probability=0.5, value_range=DEFAULT_RANGE, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = check_float("probability", probability, 0.0, 1.0, high_inclusive=True)
        self.value_range = check_value_range(value_range)

    def apply(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def augment(self, images):
        chosen = keras.random.uniform((batch_size(images),), seed=self.generator) < self.probability
        x = ops.cast(images, "float32")
        return ops.where(ops.reshape(chosen, (-1, 1, 1, 1)), self.apply(x), x)

    def get_config(self):
        return {
            **super().get_config(),
            "probability": self.probability,
            "value_range": self.value_range,
        }


def _prob_doc(what, extra_args=""):
    return (
        f"""{what}

    Args:{extra_args}
        probability: probability of applying it to each image."""
        + _LAYER_DOC
        + """
    Example:
        >>> y = LAYER(probability=0.5, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )


@_register(_prob_doc, "\n        bits: bits kept, 1..8.")
class Posterize(_ProbabilityLayer):
    """Randomly reduce each channel to its ``bits`` most significant bits."""

    def __init__(self, bits=4, probability=0.5, value_range=DEFAULT_RANGE, seed=None, **kwargs):
        super().__init__(probability, value_range, seed, **kwargs)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise UserInputError(f"bits must be an integer in 1..8; received bits={bits!r}")
        self.bits = bits

    def apply(self, images):
        return posterize(images, self.bits, self.value_range)

    def get_config(self):
        return {**super().get_config(), "bits": self.bits}


@_register(
    _prob_doc, "\n        threshold: in ``value_range`` units (default: the middle of the range)."
)
class Solarize(_ProbabilityLayer):
    """Randomly invert every value at or above ``threshold``."""

    def __init__(
        self, threshold=None, probability=0.5, value_range=DEFAULT_RANGE, seed=None, **kwargs
    ):
        super().__init__(probability, value_range, seed, **kwargs)
        lo, hi = self.value_range
        if threshold is None:
            threshold = (lo + hi) / 2.0
        self.threshold = check_float(
            "threshold", threshold, lo, hi + (hi - lo), high_inclusive=True
        )

    def apply(self, images):
        return solarize(images, self.threshold, self.value_range)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@_register(_prob_doc)
class AutoContrast(_ProbabilityLayer):
    """Randomly stretch each channel to the full value range."""

    def apply(self, images):
        return autocontrast(images, self.value_range)


@_register(_prob_doc)
class Equalize(_ProbabilityLayer):
    """Randomly equalize the histogram of each channel."""

    def apply(self, images):
        return equalize(images, self.value_range)


@_register(_prob_doc)
class Invert(_ProbabilityLayer):
    """Randomly invert images (``low + high - x``)."""

    def apply(self, images):
        return invert(images, self.value_range)
