"""One vectorized affine warp with per-image matrices, built from gathers so XLA compiles it,
and the random geometric layers on top of it.

Convention: pixel ``(row i, column j)`` has coordinates ``(x=j, y=i)``. A transform is a
``(batch, 3, 3)`` (or ``(batch, 2, 3)``) matrix that maps each OUTPUT pixel's homogeneous
coordinates ``(x, y, 1)`` to the INPUT coordinates it samples, as in
``tf.raw_ops.ImageProjectiveTransformV3``; unlike that op (which has no XLA kernel in TF
2.21, so Keras's random geometric layers turn ``jit_compile=True`` off), this one is a few
gathers.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from kerascnn.checks import check_choice, check_float
from kerascnn.layers.augment.base import BaseAugmentation, batch_size, check_range
from kerascnn.layers.augment.flip_crop import gather_pixels

__all__ = [
    "affine_transform",
    "FILL_MODES",
    "INTERPOLATIONS",
    "RandomRotate",
    "RandomShear",
    "RandomTranslate",
    "RandomZoom",
    "rotation_matrix",
    "shear_matrix",
    "translation_matrix",
    "zoom_matrix",
]

INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("constant", "reflect", "nearest")


# --------------------------------------------------------------------------- matrices
def _matrix(a, b, c, d, e, f):
    """``(batch, 3, 3)`` matrices ``[[a, b, c], [d, e, f], [0, 0, 1]]`` from ``(batch,)`` entries."""
    zero = ops.zeros_like(a)
    one = ops.ones_like(a)
    return ops.reshape(ops.stack([a, b, c, d, e, f, zero, zero, one], axis=-1), (-1, 3, 3))


def _about_center(linear, height, width):
    """Conjugate ``(batch, 3, 3)`` ``linear`` by a translation to the image centre."""
    cx = (ops.cast(width, "float32") - 1.0) / 2.0
    cy = (ops.cast(height, "float32") - 1.0) / 2.0
    a, b = linear[:, 0, 0], linear[:, 0, 1]
    d, e = linear[:, 1, 0], linear[:, 1, 1]
    # input = L (out - c) + c  ->  offset = c - L c
    return _matrix(a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)


def translation_matrix(dx, dy):
    """Move the content by ``(dx, dy)`` pixels (right, down): ``(batch, 3, 3)``."""
    dx = ops.cast(dx, "float32")
    dy = ops.cast(dy, "float32")
    z = ops.zeros_like(dx)
    return _matrix(z + 1.0, z, -dx, z, z + 1.0, -dy)


def rotation_matrix(angles, height, width):
    """Rotate the content by ``angles`` radians counter-clockwise (as ``np.rot90``) about
    the image centre: ``(batch, 3, 3)``."""
    angles = ops.cast(angles, "float32")
    cos, sin = ops.cos(angles), ops.sin(angles)
    z = ops.zeros_like(angles)
    return _about_center(_matrix(cos, -sin, z, sin, cos, z), height, width)


def shear_matrix(shear_x, shear_y, height, width):
    """Shear about the centre: output ``(x, y)`` samples ``(x + shear_x * y, y + shear_y * x)``
    (centred coordinates). The matrix is Pillow's affine shear as AutoAugment uses it, but
    AutoAugment, timm and torchvision apply it about the top-left corner, which also shifts
    the image; about the centre the image stays in place
    (tests/layers/test_augment_randaugment.py compares with Pillow about the centre)."""
    shear_x = ops.cast(shear_x, "float32")
    shear_y = ops.cast(shear_y, "float32")
    one = ops.ones_like(shear_x)
    z = ops.zeros_like(shear_x)
    return _about_center(_matrix(one, shear_x, z, shear_y, one, z), height, width)


def zoom_matrix(scale_x, scale_y, height, width):
    """Scale the content by ``scale`` about the centre (``scale > 1`` zooms in)."""
    scale_x = ops.cast(scale_x, "float32")
    z = ops.zeros_like(scale_x)
    return _about_center(
        _matrix(1.0 / scale_x, z, z, z, 1.0 / ops.cast(scale_y, "float32"), z), height, width
    )


# --------------------------------------------------------------------------- the warp
def _reflect(coord, size):
    """Mirror continuous coordinates into ``[-0.5, size - 0.5]`` (d c b a | a b c d | d c b a)."""
    period = 2.0 * size
    c = coord + 0.5
    c = c - period * ops.floor(c / period)
    c = ops.where(c >= size, period - c, c) - 0.5
    return ops.clip(c, 0.0, size - 1.0)


def affine_transform(
    images,
    transforms,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
):
    """Warp each image of ``images`` (NHWC) with its own affine matrix.

    Args:
        images: ``(batch, height, width, channels)``, any real dtype.
        transforms: ``(batch, 3, 3)`` or ``(batch, 2, 3)`` matrices mapping output pixel
            coordinates ``(x=column, y=row, 1)`` to input coordinates.
        interpolation: ``"nearest"`` or ``"bilinear"``.
        fill_mode: ``"constant"`` (``fill_value`` outside the image), ``"reflect"``
            (mirror about the edge, edge pixel repeated) or ``"nearest"`` (edge pixel).
        fill_value: the constant for ``fill_mode="constant"``.

    Returns:
        float32 images of the same shape.
    """
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    check_choice("fill_mode", fill_mode, FILL_MODES)
    x = ops.cast(images, "float32")
    shape = ops.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    hf = ops.cast(h, "float32")
    wf = ops.cast(w, "float32")
    t = ops.cast(transforms, "float32")
    ys = ops.reshape(ops.cast(ops.arange(h), "float32"), (1, -1, 1))
    xs = ops.reshape(ops.cast(ops.arange(w), "float32"), (1, 1, -1))

    def entry(i, j):
        return ops.reshape(t[:, i, j], (-1, 1, 1))

    src_x = entry(0, 0) * xs + entry(0, 1) * ys + entry(0, 2)
    src_y = entry(1, 0) * xs + entry(1, 1) * ys + entry(1, 2)
    src_x = ops.broadcast_to(src_x, (b, h, w))
    src_y = ops.broadcast_to(src_y, (b, h, w))
    if fill_mode == "reflect":
        src_x, src_y = _reflect(src_x, wf), _reflect(src_y, hf)
    elif fill_mode == "nearest":
        src_x, src_y = ops.clip(src_x, 0.0, wf - 1.0), ops.clip(src_y, 0.0, hf - 1.0)
    # Pad one pixel of fill (constant) or edge (other modes) on every side, so that every
    # neighbour of a coordinate clamped to [-1, size] is a valid index of the padded image.
    pads = [[0, 0], [1, 1], [1, 1], [0, 0]]
    if fill_mode == "constant":
        p = ops.pad(x, pads, constant_values=fill_value)
    else:
        p = ops.pad(x, pads, mode="symmetric")
    src_x = ops.clip(src_x, -1.0, wf) + 1.0
    src_y = ops.clip(src_y, -1.0, hf) + 1.0
    if interpolation == "nearest":
        rows = ops.cast(ops.floor(src_y + 0.5), "int32")
        cols = ops.cast(ops.floor(src_x + 0.5), "int32")
        return gather_pixels(p, rows, cols)
    # Four row gathers of the 2x2 neighbourhood from the flat padded image (cheaper than
    # gathering a 4x wider image of stacked neighbours). The top-left neighbour of a
    # coordinate on the far padded edge (size + 1) is the cell before it, with weight 1 on
    # its second neighbour.
    y0 = ops.minimum(ops.floor(src_y), hf)
    x0 = ops.minimum(ops.floor(src_x), wf)
    wy = ops.expand_dims(src_y - y0, -1)
    wx = ops.expand_dims(src_x - x0, -1)
    row = w + 2  # padded width
    base = ops.reshape(ops.arange(b, dtype="int32") * ((h + 2) * row), (-1, 1, 1))
    index = base + ops.cast(y0, "int32") * row + ops.cast(x0, "int32")
    flat = ops.reshape(p, (-1, x.shape[-1] if x.shape[-1] is not None else shape[3]))
    q00 = ops.take(flat, index, axis=0)
    q01 = ops.take(flat, index + 1, axis=0)
    q10 = ops.take(flat, index + row, axis=0)
    q11 = ops.take(flat, index + (row + 1), axis=0)
    top = q00 + wx * (q01 - q00)
    bottom = q10 + wx * (q11 - q10)
    return top + wy * (bottom - top)


# --------------------------------------------------------------------------- layers
class _AffineAugmentation(BaseAugmentation):
    """Shared arguments and ``augment`` of the random geometric layers."""

    def __init__(
        self, interpolation="bilinear", fill_mode="reflect", fill_value=0.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        self.interpolation = check_choice("interpolation", interpolation, INTERPOLATIONS)
        self.fill_mode = check_choice("fill_mode", fill_mode, FILL_MODES)
        self.fill_value = check_float("fill_value", fill_value, -1e30, 1e30, high_inclusive=True)

    def _uniform(self, n, bounds):
        return keras.random.uniform((n,), bounds[0], bounds[1], seed=self.generator)

    def matrices(self, n, height, width):  # pragma: no cover - abstract
        raise NotImplementedError

    def augment(self, images):
        shape = ops.shape(images)
        m = self.matrices(batch_size(images), shape[1], shape[2])
        return affine_transform(images, m, self.interpolation, self.fill_mode, self.fill_value)

    def get_config(self):
        return {
            **super().get_config(),
            "interpolation": self.interpolation,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
        }


_COMMON_DOC = """
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: ``"reflect"`` (default), ``"constant"`` or ``"nearest"``.
        fill_value: value outside the image for ``fill_mode="constant"``.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: images, ``(batch, height, width, channels)`` or ``(height, width, channels)``.
        training: augment only if true; identity otherwise (also when absent).

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input. Works under ``jit_compile=True`` (gathers, no
    ImageProjectiveTransform).
"""


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomTranslate(_AffineAugmentation):
    __doc__ = (
        """Shift each image by a random fraction of its height and width.

    Args:
        height_factor: ``f`` for a vertical shift in ``(-f, f) * height``, or ``(lower, upper)``.
        width_factor: same for the horizontal shift."""
        + _COMMON_DOC
        + """
    Reference: Simard et al., "Best Practices for Convolutional Neural Networks Applied to
    Visual Document Analysis", ICDAR 2003.

    Example:
        >>> y = RandomTranslate(0.1, 0.1, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )

    def __init__(self, height_factor=0.1, width_factor=0.1, **kwargs):
        super().__init__(**kwargs)
        self.height_factor = check_range("height_factor", height_factor, -1.0, 1.0)
        self.width_factor = check_range("width_factor", width_factor, -1.0, 1.0)

    def matrices(self, n, height, width):
        dy = self._uniform(n, self.height_factor) * ops.cast(height, "float32")
        dx = self._uniform(n, self.width_factor) * ops.cast(width, "float32")
        return translation_matrix(dx, dy)

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
        }


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomRotate(_AffineAugmentation):
    __doc__ = (
        """Rotate each image about its centre by a random angle in degrees.

    Args:
        degrees: ``d`` for an angle in ``(-d, d)``, or ``(lower, upper)``, within [-180, 180];
            positive is counter-clockwise."""
        + _COMMON_DOC
        + """
    Reference: Cubuk et al., "RandAugment", CVPR Workshops 2020 (Rotate).

    Example:
        >>> y = RandomRotate(15, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )

    def __init__(self, degrees=15.0, **kwargs):
        super().__init__(**kwargs)
        self.degrees = check_range("degrees", degrees, -180.0, 180.0)

    def matrices(self, n, height, width):
        return rotation_matrix(self._uniform(n, self.degrees) * (math.pi / 180.0), height, width)

    def get_config(self):
        return {**super().get_config(), "degrees": self.degrees}


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomShear(_AffineAugmentation):
    __doc__ = (
        """Shear each image about its centre by random coefficients.

    Args:
        x_factor: ``f`` for a horizontal shear coefficient in ``(-f, f)``, or ``(lower, upper)``,
            within [-2, 2]; 0 disables it.
        y_factor: same for the vertical shear."""
        + _COMMON_DOC
        + """
    Reference: Cubuk et al., "AutoAugment", CVPR 2019 (ShearX, ShearY).

    Example:
        >>> y = RandomShear(0.2, 0.0, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )

    def __init__(self, x_factor=0.2, y_factor=0.2, **kwargs):
        super().__init__(**kwargs)
        self.x_factor = check_range("x_factor", x_factor, -2.0, 2.0)
        self.y_factor = check_range("y_factor", y_factor, -2.0, 2.0)

    def matrices(self, n, height, width):
        return shear_matrix(
            self._uniform(n, self.x_factor), self._uniform(n, self.y_factor), height, width
        )

    def get_config(self):
        return {**super().get_config(), "x_factor": self.x_factor, "y_factor": self.y_factor}


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomZoom(_AffineAugmentation):
    __doc__ = (
        """Zoom each image about its centre by a random scale ``1 + u``.

    Args:
        factor: ``f`` for ``u`` in ``(-f, f)``, or ``(lower, upper)`` with
            ``-0.9 <= lower <= upper <= 4``; ``u > 0`` zooms in (content larger)."""
        + _COMMON_DOC
        + """
    Reference: Krizhevsky et al., NeurIPS 2012 (scale augmentation).

    Example:
        >>> y = RandomZoom(0.2, seed=1)(keras.ops.ones((4, 32, 32, 3)), training=True)
    """
    )

    def __init__(self, factor=0.2, **kwargs):
        super().__init__(**kwargs)
        self.factor = check_range("factor", factor, -0.9, 4.0)

    def matrices(self, n, height, width):
        scale = 1.0 + self._uniform(n, self.factor)
        return zoom_matrix(scale, scale, height, width)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
