"""RandAugment (Cubuk et al. 2020) with the operation chosen per image, vectorized.

Design: every operation is parameterised so that "not chosen" is its identity (factor 1,
posterize step 1, a solarize threshold above the range, the identity matrix). For each of
the ``num_ops`` rounds every image draws one operation; the colour operations of the round
are applied to the whole batch with per-image parameters (identity where not chosen), and
the geometric operations of all rounds are multiplied into one affine matrix per image,
applied by a single gather-based warp at the end. So the cost is one pass of the colour
arithmetic per round and one warp in total, not 14 ops per slot as in
``keras.layers.RandAugment``.

Folding the warps moves the geometric ops after the colour ops of the same image. It is
exact when no geometric op comes before a colour op (colour ops first, or geometric ops
only at the end of the image's sequence), up to the rounding to grey levels between ops.
Otherwise the result is not the sequential policy's, and not by a rounding error: measured
against the two ops applied in sequence (two warps, rounded in between), for every ordered
pair of the 14 ops on 392 CIFAR-10 images at magnitude 9, bilinear
(``tests/layers/test_augment_randaugment.py::test_folded_warp_against_the_operations_applied_in_sequence``):

* geometric, then Brightness / Color / Posterize / Solarize / Sharpness: 17 % of the pixels
  more than one grey level apart, mean 5.4 levels. Sequentially these ops also change the
  grey fill (Brightness turns it to 232 or 24) and act on interpolated values (Posterize's
  levels are blurred again by the folded warp); inside the image, with nearest
  interpolation, Brightness, Color, Posterize and Solarize agree exactly.
* geometric, then AutoContrast / Contrast / Equalize: 79 %, mean 13.7 levels. Sequentially
  their statistics include the fill area; folded, they are the image's own.
* geometric, then geometric: 22 %, mean 4.6 levels, from one interpolation instead of two
  (less blur) and from corners that the first warp fills and the second brings back, which
  the single warp takes from the image instead.
* all pairs: 11 % of the pixels, mean 2.3 levels; the largest single differences (up to 210
  levels) are fill against image content.

So the fold buys a single resampling at the price of a policy that treats the fill area
and the image statistics differently from the sequential one, for a third of the images
with ``num_ops=2`` (first op geometric, second not the identity: 5/14 x 13/14).

Cost (what makes it fast): the magnitude is fixed, so every operation's parameters depend
only on the image's ``(operation, sign)`` pair, one of 28 codes, precomputed per magnitude
into a constant table (:func:`op_tables`). A colour round is then one fused elementwise
pass over the batch for the per-pixel operations (Brightness, Posterize, Solarize, Color,
closed forms with per-image parameters), and the operations that need more than a pixel
(AutoContrast and Contrast: per-image statistics; Sharpness: a 3x3 neighbourhood;
Equalize: a histogram and a look-up table) run only on the ~1/14 of the images that chose
each of them (:func:`on_chosen`). The geometric ops of all rounds are one bilinear warp at
the end (four row gathers). Measured in ``benchmarks/randaugment_throughput.py``.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import ops

from kerascnn.checks import check_choice, check_float, check_int
from kerascnn.layers.augment import color
from kerascnn.layers.augment.affine import INTERPOLATIONS, affine_transform
from kerascnn.layers.augment.base import (
    BaseAugmentation,
    batch_size,
    check_value_range,
    from_unit,
    to_unit,
)

__all__ = [
    "FILL_GREY",
    "GEOMETRIC",
    "MAX_ENHANCE",
    "MAX_POSTERIZE_DROP",
    "MAX_ROTATE_DEGREES",
    "MAX_SHEAR",
    "MAX_TRANSLATE",
    "on_chosen",
    "op_codes",
    "OP_INDEX",
    "op_tables",
    "OPS",
    "RandAugment",
    "randaugment",
    "subset_capacity",
]

OPS = (
    "identity",
    "auto_contrast",
    "equalize",
    "rotate",
    "solarize",
    "color",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
OP_INDEX = {name: i for i, name in enumerate(OPS)}
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")

# Ranges at magnitude 10 (the paper's scale, level / 10), as in AutoAugment / timm.
MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.45  # fraction of the image side (150 / 331 pixels in AutoAugment)
MAX_ENHANCE = 0.9  # factor 1 +- 0.9
MAX_POSTERIZE_DROP = 4  # bits removed (8 -> 4)
FILL_GREY = 128.0  # fill of the uncovered area, on the 0..255 scale (Pillow / timm)

# Columns of the per-code parameter table (see op_tables); each column's value for the
# codes of other operations is the identity of its operation.
_AUTO_CONTRAST, _EQUALIZE = 0, 1  # flags
_CONTRAST, _COLOR = 2, 3  # blend weights 1 - factor: 0 is the identity
_BRIGHTNESS, _SHARPNESS = 4, 5  # factors: 1 is the identity
_POSTERIZE_STEP = 6  # 2 ** bits removed: 1 is the identity
_SOLARIZE_THRESHOLD = 7  # 256 (above every 8-bit level) is the identity
_LINEAR = slice(8, 12)  # a, b, d, e of [[a, b], [d, e]] (input = L (out - centre) + centre)
_SHIFT = slice(12, 14)  # translation (x, y) as fractions of (width, height)
_NUM_PARAMS = 14


@functools.lru_cache(maxsize=32)
def op_tables(magnitude: float):
    """Constant ``(28, 14)`` float32 table of the parameters of every ``(operation, sign)``
    code ``2 * op + (sign > 0)``, with the columns ``_AUTO_CONTRAST`` and ``_EQUALIZE``
    (flags), ``_CONTRAST`` and ``_COLOR`` (``1 - factor``), ``_BRIGHTNESS`` and
    ``_SHARPNESS`` (factor), ``_POSTERIZE_STEP``, ``_SOLARIZE_THRESHOLD``, ``_LINEAR``
    (the geometric op's linear part about the image centre) and ``_SHIFT`` (translation as
    fractions of the image side). Every column holds its operation's identity in the rows
    of the other operations, so a round can apply all of them to every image."""
    f32 = np.float32
    level = magnitude / 10.0
    params = np.zeros((2 * len(OPS), _NUM_PARAMS), f32)
    params[:, _BRIGHTNESS] = 1.0
    params[:, _SHARPNESS] = 1.0
    params[:, _POSTERIZE_STEP] = 1.0
    params[:, _SOLARIZE_THRESHOLD] = 256.0
    params[:, _LINEAR] = (1.0, 0.0, 0.0, 1.0)
    for op, name in enumerate(OPS):
        for positive in (0, 1):
            row = params[2 * op + positive]
            sign = f32(1.0 if positive else -1.0)
            factor = max(f32(1.0) + sign * f32(MAX_ENHANCE * level), f32(0.0))
            if name == "auto_contrast":
                row[_AUTO_CONTRAST] = 1.0
            elif name == "equalize":
                row[_EQUALIZE] = 1.0
            elif name == "contrast":
                row[_CONTRAST] = f32(1.0) - factor
            elif name == "color":
                row[_COLOR] = f32(1.0) - factor
            elif name == "sharpness":
                row[_SHARPNESS] = factor
            elif name == "brightness":
                row[_BRIGHTNESS] = factor
            elif name == "solarize":
                row[_SOLARIZE_THRESHOLD] = f32(256.0 * max(0.0, 1.0 - level))
            elif name == "posterize":
                bits = max(1, 8 - int(MAX_POSTERIZE_DROP * level))
                row[_POSTERIZE_STEP] = f32(2.0 ** (8 - bits))
            elif name == "rotate":
                angle = float(sign * f32(MAX_ROTATE_DEGREES * level * math.pi / 180.0))
                cos, sin = math.cos(angle), math.sin(angle)
                row[_LINEAR] = (cos, -sin, sin, cos)
            elif name == "shear_x":
                row[_LINEAR] = (1.0, sign * f32(MAX_SHEAR * level), 0.0, 1.0)
            elif name == "shear_y":
                row[_LINEAR] = (1.0, 0.0, sign * f32(MAX_SHEAR * level), 1.0)
            elif name == "translate_x":
                row[_SHIFT] = (sign * f32(MAX_TRANSLATE * level), 0.0)
            elif name == "translate_y":
                row[_SHIFT] = (0.0, sign * f32(MAX_TRANSLATE * level))
    return params


def op_codes(op_indices, signs):
    """``(batch, num_ops)`` codes ``2 * op + (sign > 0)`` indexing :func:`op_tables`."""
    return ops.cast(op_indices, "int32") * 2 + ops.cast(ops.cast(signs, "float32") > 0, "int32")


def randaugment(
    images,
    op_indices,
    signs,
    magnitude: float = 9.0,
    value_range=(0.0, 255.0),
    interpolation: str = "bilinear",
):
    """Apply RandAugment with given per-image choices.

    Args:
        images: ``(batch, height, width, channels)`` in ``value_range``.
        op_indices: ``(batch, num_ops)`` integers indexing :data:`OPS`; round ``r`` applies
            ``OPS[op_indices[b, r]]`` to image ``b``.
        signs: ``(batch, num_ops)`` of +1 / -1, the direction of signed ops.
        magnitude: the paper's magnitude (0..30; 10 is the AutoAugment maximum).
        value_range: ``(low, high)`` of the input values.
        interpolation: of the single warp, ``"bilinear"`` or ``"nearest"``.

    Returns:
        float32 images in ``value_range``.
    """
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    param_table = ops.convert_to_tensor(op_tables(float(magnitude)))
    codes = op_codes(op_indices, signs)
    x = to_unit(images, value_range)
    s = ops.shape(x)
    h, w = s[1], s[2]
    wf, hf = ops.cast(w, "float32"), ops.cast(h, "float32")
    cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
    linear = shift = None  # the composed affine map, input = linear @ out + shift
    for r in range(codes.shape[1]):
        p = ops.take(param_table, codes[:, r], axis=0)  # (batch, params)
        x = _colour_round(x, p)
        a, b, d, e = (p[:, i] for i in range(_LINEAR.start, _LINEAR.stop))
        # the round's map about the centre, plus its translation in pixels
        tx = cx - a * cx - b * cy - p[:, _SHIFT.start] * wf
        ty = cy - d * cx - e * cy - p[:, _SHIFT.start + 1] * hf
        if linear is None:
            linear, shift = (a, b, d, e), (tx, ty)
        else:  # compose: previous rounds' map after this round's
            la, lb, ld, le = linear
            linear = (la * a + lb * d, la * b + lb * e, ld * a + le * d, ld * b + le * e)
            shift = (la * tx + lb * ty + shift[0], ld * tx + le * ty + shift[1])
    if linear is not None:
        la, lb, ld, le = linear
        matrix = ops.reshape(ops.stack([la, lb, shift[0], ld, le, shift[1]], axis=-1), (-1, 2, 3))
        x = affine_transform(x, matrix, interpolation, "constant", FILL_GREY)
    return from_unit(x, value_range)


def _shapes_must_be_static() -> bool:
    """Whether :func:`on_chosen` must give its subsets a static size: under XLA (JAX, or a
    TensorFlow ``jit_compile`` function), yes; TensorFlow outside XLA (eagerly, or in a
    plain graph such as a ``tf.data`` map) takes subsets of their true, dynamic size. The
    test uses a private TensorFlow helper; if it moves, the static path (valid everywhere,
    slower in a plain graph) is taken."""
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return True


def subset_capacity(batch, fraction: float):
    """Static number of images processed by :func:`on_chosen` for an operation that each
    image chooses with probability ``fraction``: the binomial mean plus 4 standard
    deviations (exceeded about once in 10**4 batches, which then take the full path), or
    None (process the whole batch) when that saves little or the batch size is not static."""
    if not isinstance(batch, int):
        return None
    mean = batch * fraction
    capacity = int(math.ceil(mean + 4.0 * math.sqrt(mean * (1.0 - fraction)))) + 2
    return capacity if 2 * capacity <= batch else None


def on_chosen(fn, chosen, fraction: float, base, *args):
    """``base`` with the rows of the images whose ``chosen`` flag is set replaced by the
    matching rows of ``fn(*args)`` (``fn`` works image by image; each image chooses with
    probability ``fraction``).

    ``fn`` runs on the chosen images only: outside XLA on exactly those (a dynamic-size
    gather, ``fn``, a scatter); under XLA on a static ``capacity`` of them
    (:func:`subset_capacity`), with ``ops.cond`` falling back to the whole batch when more
    than ``capacity`` images (or none) chose it. The results are scattered into ``base``
    (not gathered back: XLA would fuse ``fn`` into a gather and recompute it per row)."""
    rows = (-1,) + (1,) * (len(base.shape) - 1)
    if not _shapes_must_be_static():
        members = ops.nonzero(chosen)[0]
        out = fn(*(ops.take(a, members, axis=0) for a in args))
        return ops.scatter_update(base, ops.expand_dims(members, -1), out)
    capacity = subset_capacity(ops.shape(base)[0], fraction)

    def full():
        return ops.where(ops.reshape(chosen, rows), fn(*args), base)

    if capacity is None:
        return full()
    flag = ops.cast(chosen, "int32")
    slot = ops.cumsum(flag) * flag  # 1..count for the chosen images, 0 for the others
    count = ops.sum(flag)

    def subset():
        hits = ops.expand_dims(slot, 0) == ops.reshape(ops.arange(1, capacity + 1), (-1, 1))
        members = ops.sum(ops.where(hits, ops.arange(flag.shape[0], dtype="int32"), 0), axis=1)
        # unused slots repeat the first chosen image: identical rows, harmless duplicates
        members = ops.where(ops.any(hits, axis=1), members, members[0])
        out = fn(*(ops.take(a, members, axis=0) for a in args))
        return ops.scatter_update(base, ops.expand_dims(members, -1), out)

    return ops.cond((count <= capacity) & (count > 0), subset, full)


def _colour_round(x, p):
    """One round's colour operations on 0..255 images ``x`` with per-image parameters ``p``
    ``(batch, params)``; each image chose at most one of them, the others are identities.

    Values are first rounded to 8-bit grey levels ``v``, as Pillow does between
    operations. Brightness, Posterize, Solarize and Color (a blend with the grey image) are
    closed forms of each pixel, applied to the whole batch in one fused pass. AutoContrast
    and Contrast (image statistics), Sharpness (a 3x3 neighbourhood) and Equalize (a
    histogram) run only on the images that chose them (:func:`on_chosen`)."""
    v = ops.clip(ops.round(x), 0.0, 255.0)

    def column(c):
        return ops.reshape(p[:, c], (-1, 1, 1, 1))

    y = ops.round(ops.clip(v * column(_BRIGHTNESS), 0.0, 255.0))
    step = column(_POSTERIZE_STEP)
    y = ops.floor(y / step) * step
    y = ops.where(y < column(_SOLARIZE_THRESHOLD), y, 255.0 - y)
    y = ops.clip(y + column(_COLOR) * (color.grey(v) - v), 0.0, 255.0)
    one = 1 / len(OPS)
    stat = (p[:, _AUTO_CONTRAST] > 0) | (p[:, _CONTRAST] != 0.0)
    y = on_chosen(_contrasts, stat, 2 * one, y, v, p)
    sharpness = p[:, _SHARPNESS]
    y = on_chosen(color.adjust_sharpness, sharpness != 1.0, one, y, v, sharpness)
    return on_chosen(color.equalize, p[:, _EQUALIZE] > 0, one, y, v)


def _band_reduce(reduce, v, **kwargs):
    """``reduce`` (``ops.min``, ``ops.max``, ``ops.sum``) of each channel of each image,
    ``(batch, 1, 1, channels)``: over rows first, then columns (several times faster under
    XLA than one reduction over both axes)."""
    _, h, w, c = ops.shape(v)
    rows = reduce(ops.reshape(v, (-1, h, w * c)), axis=1, **kwargs)
    return ops.reshape(reduce(ops.reshape(rows, (-1, w, c)), axis=1, **kwargs), (-1, 1, 1, c))


def _contrasts(v, p):
    """AutoContrast or Contrast (the image's choice in ``p``) of 0..255 levels ``v``.

    AutoContrast stretches each channel from its minimum and maximum to 0..255 and
    truncates (Pillow), the identity for a flat channel; Contrast blends with the image's
    mean grey level and rounds to a grey level."""

    def column(c):
        return ops.reshape(p[:, c], (-1, 1, 1, 1))

    lo = _band_reduce(ops.min, v, initial=255.0)  # initial: defined for empty subsets
    hi = _band_reduce(ops.max, v, initial=0.0)
    stretched = ops.floor((v - lo) * (255.0 / ops.maximum(hi - lo, 1.0)))
    auto = ops.where(hi > lo, stretched, v)
    shape = ops.shape(v)
    means = _band_reduce(ops.sum, v) / ops.cast(shape[1] * shape[2], "float32")
    contrast = ops.round(ops.clip(v + column(_CONTRAST) * (color.grey(means) - v), 0.0, 255.0))
    return ops.where(column(_AUTO_CONTRAST) > 0, auto, contrast)


@keras.saving.register_keras_serializable(package="kerascnn")
class RandAugment(BaseAugmentation):
    """RandAugment: ``num_ops`` random operations per image at one global ``magnitude``.

    The 14 operations of the paper: Identity, AutoContrast, Equalize, Rotate, Solarize,
    Color, Posterize, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX,
    TranslateY (:data:`OPS`), each drawn uniformly and independently **per image** and per
    round, with a random sign for signed ops. Vectorized: colour ops use per-image
    parameters that are the identity where not chosen; all geometric ops of an image are
    folded into one affine warp (see the module docstring). Keeps XLA on
    (``jit_compile=True``) and is the identity at inference, including when called without
    a ``training`` argument.

    Args:
        num_ops: operations applied in sequence to each image (N, >= 1).
        magnitude: the paper's magnitude M in [0, 30] (10 = the AutoAugment maxima:
            30 degrees, shear 0.3, translation 0.45 of the side, enhance factor 1 +- 0.9,
            posterize to 4 bits, solarize threshold 0).
        value_range: ``(low, high)`` of the input values, e.g. ``(0, 255)`` or ``(0, 1)``.
        interpolation: ``"bilinear"`` or ``"nearest"`` for the warp.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        inputs: images, ``(batch, height, width, channels)`` or ``(height, width, channels)``.
        training: augment only if true; identity otherwise (also when absent).

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as input.

    Reference: Cubuk et al., "RandAugment: Practical automated data augmentation with a
    reduced search space", CVPR Workshops 2020.

    Example:
        >>> layer = RandAugment(num_ops=2, magnitude=9, seed=1)
        >>> y = layer(keras.ops.ones((4, 32, 32, 3)) * 100, training=True)
        >>> op_indices, signs = layer.sample(4)  # the choices of the next call
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        value_range=(0, 255),
        interpolation: str = "bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.num_ops = check_int("num_ops", num_ops)
        self.magnitude = check_float("magnitude", magnitude, 0.0, 30.0, high_inclusive=True)
        self.value_range = check_value_range(value_range)
        self.interpolation = check_choice("interpolation", interpolation, INTERPOLATIONS)

    def sample(self, n):
        """Draw the per-image choices: ``(op_indices, signs)``, both ``(n, num_ops)``."""
        op_indices = keras.random.randint(
            (n, self.num_ops), 0, len(OPS), seed=self.generator, dtype="int32"
        )
        signs = ops.where(
            keras.random.uniform((n, self.num_ops), seed=self.generator) < 0.5, -1.0, 1.0
        )
        return op_indices, signs

    def augment(self, images):
        op_indices, signs = self.sample(batch_size(images))
        return randaugment(
            images, op_indices, signs, self.magnitude, self.value_range, self.interpolation
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_ops": self.num_ops,
            "magnitude": self.magnitude,
            "value_range": self.value_range,
            "interpolation": self.interpolation,
        }
