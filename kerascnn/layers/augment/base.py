"""Shared machinery of the augmentation layers: range checks, seeds, ``training`` handling.

Every augmentation layer of kerascnn is the identity unless it is called with a true
``training`` argument. ``model.fit`` passes ``training=True``; ``model.predict``, a plain
``model(x)`` and every exported serving endpoint do not, so augmentation never leaks into
inference. In a ``tf.data`` map, pass ``training=True`` explicitly.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerascnn.checks import check_seed
from kerascnn.errors import UserInputError

__all__ = [
    "BaseAugmentation",
    "batch_size",
    "check_range",
    "check_value_range",
    "from_unit",
    "per_image",
    "to_unit",
]


# --------------------------------------------------------------------------- checks
def check_value_range(value_range: Any) -> tuple[float, float]:
    """``(low, high)`` as floats with ``low < high``."""
    ok = isinstance(value_range, (tuple, list)) and len(value_range) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range)
    if not ok or not value_range[0] < value_range[1]:
        raise UserInputError(
            "value_range must be a pair (low, high) of numbers with low < high, e.g. (0, 255) "
            f"or (0, 1); received value_range={value_range!r}"
        )
    return float(value_range[0]), float(value_range[1])


def check_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """A factor given as ``f`` (meaning ``(-f, f)``) or ``(lower, upper)`` inside ``[low, high]``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = (-float(value), float(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        pair = (float(value[0]), float(value[1]))
    else:
        pair = None
    if pair is None or not (low <= pair[0] <= pair[1] <= high):
        raise UserInputError(
            f"{name} must be a number f (for the range (-f, f)) or a pair (lower, upper) with "
            f"{low} <= lower <= upper <= {high}; received {name}={value!r}"
        )
    return pair


# --------------------------------------------------------------------------- helpers
def to_unit(images, value_range):
    """Map ``images`` from ``value_range`` to [0, 255] as float32."""
    lo, hi = value_range
    x = ops.cast(images, "float32")
    if (lo, hi) == (0.0, 255.0):
        return x
    return (x - lo) * (255.0 / (hi - lo))


def from_unit(x, value_range):
    """Inverse of :func:`to_unit`."""
    lo, hi = value_range
    if (lo, hi) == (0.0, 255.0):
        return x
    return x * ((hi - lo) / 255.0) + lo


def batch_size(images):
    return ops.shape(images)[0]


def per_image(values, rank: int = 4):
    """Reshape per-image values ``(batch,)`` to ``(batch, 1, 1, 1)`` for broadcasting."""
    return ops.reshape(values, (-1,) + (1,) * (rank - 1))


# --------------------------------------------------------------------------- base layer
class BaseAugmentation(keras.layers.Layer):
    """Base of kerascnn's augmentation layers.

    Subclasses implement ``augment(images)`` for a batch of NHWC images (float or integer)
    and put their arguments in ``get_config``; those with a size argument implement
    ``check_image_size(height, width)``, which refuses images too small for it when the
    layer is built (and at calls with a static size). This class handles the ``seed`` argument, the
    ``SeedGenerator``, the identity at inference (``training`` false or absent), unbatched
    ``(height, width, channels)`` inputs (as in a ``tf.data`` map before ``batch``) and the
    output dtype (same as the input).
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    def build(self, input_shape):
        self.check_image_shape(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        self.check_image_shape(inputs.shape)  # also shapes other than the one built for
        if not training:  # None (no argument) and False both mean inference
            return inputs
        unbatched = len(inputs.shape) == 3
        x = ops.expand_dims(inputs, 0) if unbatched else inputs
        dtype = keras.backend.standardize_dtype(x.dtype)
        y = self.augment(x)
        if keras.backend.standardize_dtype(y.dtype) != dtype:
            if "int" in dtype:
                y = ops.round(y)
            y = ops.cast(y, dtype)
        return ops.squeeze(y, 0) if unbatched else y

    def augment(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def check_image_shape(self, shape) -> None:
        """Raise a ``ValueError`` if images of ``shape`` (``(batch, height, width, channels)``
        or ``(height, width, channels)``) are too small for this layer's arguments. Checked
        when the layer is built and at each call where the spatial size is static; unknown
        sizes (``None``) pass."""
        if shape is not None and len(shape) in (3, 4):
            height, width = shape[-3], shape[-2]
            if isinstance(height, int) and isinstance(width, int):
                self.check_image_size(height, width)

    def check_image_size(self, height: int, width: int) -> None:
        """Subclasses with a size argument refuse ``height`` x ``width`` images too small for it."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
