"""RandAugment (Cubuk et al. 2020) with the operation chosen per image, vectorized.

Design: every operation is parameterised so that "not chosen" is its identity (factor 1,
8 bits, a solarize threshold above the range, the identity matrix). For each of the
``num_ops`` rounds every image draws one operation; the colour operations of the round are
applied to the whole batch with per-image parameters (identity where not chosen), and the
geometric operations of all rounds are multiplied into one affine matrix per image, applied
by a single gather-based warp at the end. So the cost is one pass of each colour op per
round and one warp in total, not 14 ops per slot as in ``keras.layers.RandAugment``.

Folding the warps moves the geometric ops after the colour ops of the same image. Colour
ops act per pixel (brightness, colour, posterize, solarize) or on whole-image statistics
(contrast, autocontrast, equalize) or 3x3 neighbourhoods (sharpness), so the reordering
changes only how the fill region and interpolated edges are treated: a small, documented
approximation of the sequential policy that buys a single resampling (less blur, too).

Cost (what makes it fast): the magnitude is fixed, so every operation's parameters depend
only on the image's ``(operation, sign)`` pair, one of 28 codes, precomputed per magnitude
into constant tables (the static look-up tables of Solarize, Posterize and Brightness, the
enhance factors, the linear part and translation of the geometric ops). A round then costs
one small table gather for the parameters, ONE gather that applies each image-channel's
single look-up table, and, for the few images that chose them, the histograms and tables of
AutoContrast / Equalize / Contrast and the Color / Sharpness blend: under XLA (and eagerly)
:func:`on_chosen` gathers just those images (static capacity, ``ops.cond`` fallback to the
whole batch), in a plain TensorFlow graph the whole batch is processed (cheaper there).
The geometric ops of all rounds are one bilinear warp at the end (four row gathers).
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import ops

from kerascnn.layers.augment import color
from kerascnn.layers.augment.affine import INTERPOLATIONS, affine_transform
from kerascnn.layers.augment.base import (
    BaseAugmentation,
    batch_size,
    check_choice,
    check_number,
    check_value_range,
    from_unit,
    to_unit,
)

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

# Columns of the per-code parameter table (see op_tables).
_IS_AUTO_CONTRAST, _IS_EQUALIZE, _IS_CONTRAST, _CONTRAST = 0, 1, 2, 3
_COLOR, _SHARPNESS = 4, 5  # 1 - factor: 0 is the identity
_LINEAR = slice(6, 10)  # a, b, d, e of [[a, b], [d, e]] (input = L (out - centre) + centre)
_SHIFT = slice(10, 12)  # translation (x, y) as fractions of (width, height)
_NUM_PARAMS = 12


@functools.lru_cache(maxsize=32)
def op_tables(magnitude: float):
    """Constant tables of every ``(operation, sign)`` code ``2 * op + (sign > 0)``.

    Returns ``(lut, params)``: ``lut`` ``(28, 256)`` float32, the static look-up table of the
    code (Solarize, Posterize, Brightness; the identity for the other operations) and
    ``params`` ``(28, 12)`` float32 with the columns ``_IS_AUTO_CONTRAST``,
    ``_IS_EQUALIZE``, ``_IS_CONTRAST`` (flags), ``_CONTRAST`` (factor), ``_COLOR`` and
    ``_SHARPNESS`` (``1 - factor``), ``_LINEAR`` (the geometric op's linear part about the
    image centre) and ``_SHIFT`` (translation as fractions of the image side). Float32
    arithmetic mirrors the per-op functions of :mod:`color`, so the tables are exact.
    """
    f32 = np.float32
    level = magnitude / 10.0
    levels = np.arange(256, dtype=f32)
    lut = np.tile(levels, (2 * len(OPS), 1))
    params = np.zeros((2 * len(OPS), _NUM_PARAMS), f32)
    params[:, _CONTRAST] = 1.0
    params[:, _LINEAR] = (1.0, 0.0, 0.0, 1.0)
    for op, name in enumerate(OPS):
        for positive in (0, 1):
            code = 2 * op + positive
            sign = f32(1.0 if positive else -1.0)
            factor = max(f32(1.0) + sign * f32(MAX_ENHANCE * level), f32(0.0))
            row = params[code]
            if name == "auto_contrast":
                row[_IS_AUTO_CONTRAST] = 1.0
            elif name == "equalize":
                row[_IS_EQUALIZE] = 1.0
            elif name == "contrast":
                row[_IS_CONTRAST], row[_CONTRAST] = 1.0, factor
            elif name == "color":
                row[_COLOR] = f32(1.0) - factor
            elif name == "sharpness":
                row[_SHARPNESS] = f32(1.0) - factor
            elif name == "solarize":
                threshold = f32(256.0 * max(0.0, 1.0 - level))
                lut[code] = np.where(levels < threshold, levels, f32(255.0) - levels)
            elif name == "posterize":
                bits = max(1, 8 - int(MAX_POSTERIZE_DROP * level))
                step = f32(2.0 ** (8 - bits))
                lut[code] = np.floor(levels / step) * step
            elif name == "brightness":
                lut[code] = np.round(np.clip(levels * factor, f32(0.0), f32(255.0)))
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
    return lut, params


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
    static_luts, param_table = op_tables(float(magnitude))
    static_luts = ops.convert_to_tensor(static_luts)
    param_table = ops.convert_to_tensor(param_table)
    codes = op_codes(op_indices, signs)
    x = to_unit(images, value_range)
    s = ops.shape(x)
    h, w = s[1], s[2]
    wf, hf = ops.cast(w, "float32"), ops.cast(h, "float32")
    cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
    linear = shift = None  # the composed affine map, input = linear @ out + shift
    for r in range(codes.shape[1]):
        p = ops.take(param_table, codes[:, r], axis=0)  # (batch, params)
        x = _colour_round(x, p, ops.take(static_luts, codes[:, r], axis=0))
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


def _branches_are_cheap() -> bool:
    """Whether :func:`on_chosen`'s ``ops.cond`` pays off here: under XLA (JAX, or a
    TensorFlow ``jit_compile`` function) and eagerly, yes; in a plain TensorFlow graph, such
    as a ``tf.data`` map without XLA, its functional ``If`` ops and gathers cost more than
    they save (measured), so the whole batch is processed there. A performance choice only:
    both paths compute the same values."""
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    if tf.executing_eagerly():
        return True
    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):  # private TF helper moved: take the safe path
        return False


def subset_capacity(batch, fraction: float):
    """Static number of images processed by :func:`on_chosen` for an operation that each
    image chooses with probability ``fraction``: the binomial mean plus 4 standard
    deviations (exceeded about once in 10**4 batches, which then take the full path), or
    None (process the whole batch) when that saves little, the batch size is not static or
    the branch would not pay off (:func:`_branches_are_cheap`)."""
    if not isinstance(batch, int) or not _branches_are_cheap():
        return None
    mean = batch * fraction
    capacity = int(math.ceil(mean + 4.0 * math.sqrt(mean * (1.0 - fraction)))) + 2
    return capacity if 2 * capacity <= batch else None


def on_chosen(fn, chosen, capacity, base, *args):
    """``base`` with the rows of the images whose ``chosen`` flag is set replaced by the
    matching rows of ``fn(*args)`` (``fn`` works image by image).

    With a static ``capacity`` it gathers at most ``capacity`` chosen images, runs ``fn`` on
    them only and scatters the results into ``base``, so an operation that ~1/14 of the
    images choose costs ~1/14 of the batch, with static shapes for XLA (a scatter, not a
    gather back: XLA would fuse ``fn`` into a gather and recompute it for every row). When
    more than ``capacity`` images (or none) chose it, ``ops.cond`` takes the full path."""
    rows = (-1,) + (1,) * (len(base.shape) - 1)
    if capacity is None:
        return ops.where(ops.reshape(chosen, rows), fn(*args), base)
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

    def full():
        return ops.where(ops.reshape(chosen, rows), fn(*args), base)

    return ops.cond((count <= capacity) & (count > 0), subset, full)


def _colour_round(x, p, static_lut):
    """One round's colour operations on 0..255 images ``x`` with per-image parameters ``p``
    ``(batch, params)`` and static look-up tables ``(batch, 256)``.

    The per-channel point operations (AutoContrast, Equalize, Solarize, Posterize,
    Contrast, Brightness) become one look-up table per image and channel, applied with one
    gather; values are first rounded to 8-bit grey levels, as Pillow does between
    operations. The tables of the statistics-based ops (AutoContrast, Equalize, Contrast)
    come from histograms of only the images that chose them (:func:`on_chosen`). Color and
    Sharpness, the two non-point ops, are one blend ``clip(v + s (grey - v) + k detail)``,
    also computed only for the images that chose them (each image makes exactly one choice
    per round, so the blends and the table never combine)."""
    v = ops.cast(ops.clip(ops.round(x), 0.0, 255.0), "int32")
    shape = ops.shape(v)
    batch = shape[0]
    is_stat = (p[:, _IS_AUTO_CONTRAST] + p[:, _IS_EQUALIZE] + p[:, _IS_CONTRAST]) > 0
    static_lut = ops.broadcast_to(ops.expand_dims(static_lut, 1), (batch, shape[3], 256))
    capacity = subset_capacity(batch, 3 / len(OPS))
    lut = on_chosen(_statistics_luts, is_stat, capacity, static_lut, v, p)
    band = ops.reshape(ops.arange(batch * shape[3], dtype="int32"), (-1, 1, 1, shape[3]))
    y = color.apply_lut(lut, ops.reshape(band * 256 + v, (-1,)), shape)
    is_blend = (ops.abs(p[:, _COLOR]) + ops.abs(p[:, _SHARPNESS])) > 0
    return on_chosen(_blends, is_blend, subset_capacity(batch, 2 / len(OPS)), y, v, p)


def _statistics_luts(v, p):
    """Look-up tables ``(batch, channels, 256)`` of AutoContrast, Equalize or Contrast (the
    image's choice; unspecified for other images) from integer levels ``v``."""
    shape = ops.shape(v)
    n = shape[1] * shape[2]
    hist, _ = color.band_histograms(v)  # (b, c, 256)
    hist = ops.cast(hist, "float32")
    levels = ops.cast(ops.arange(256), "float32")

    def per_image(column):
        return ops.reshape(p[:, column], (-1, 1, 1))

    # AutoContrast: floor of the linear stretch (Pillow truncates), identity for flat bands
    used = hist > 0
    lo = ops.min(ops.where(used, levels, 256.0), axis=-1, keepdims=True)
    hi = ops.max(ops.where(used, levels, -1.0), axis=-1, keepdims=True)
    stretched = ops.floor((levels - lo) * (255.0 / ops.maximum(hi - lo, 1.0)))
    auto = ops.where(hi > lo, stretched, levels)
    # Contrast: blend with the mean grey level of the image
    means = ops.sum(hist * levels, axis=-1) / ops.cast(n, "float32")  # (b, c)
    if means.shape[-1] == 3:
        grey = means[:, 0:1] * 0.299 + means[:, 1:2] * 0.587 + means[:, 2:3] * 0.114
    else:
        grey = ops.mean(means, axis=-1, keepdims=True)
    factor = per_image(_CONTRAST)
    contrast = ops.round(
        ops.clip(levels + (1.0 - factor) * (ops.expand_dims(grey, -1) - levels), 0.0, 255.0)
    )
    lut = ops.where(per_image(_IS_AUTO_CONTRAST) > 0, auto, contrast)
    return ops.where(per_image(_IS_EQUALIZE) > 0, color.equalize_lut(hist, n), lut)


def _blends(v, p):
    """Color (blend with the grey image) and Sharpness (blend with the smoothed image) of
    integer levels ``v`` with weights ``1 - factor`` from ``p``; one of them is 0."""
    vf = ops.cast(v, "float32")
    if vf.shape[-1] == 3:
        grey = vf[..., 0:1] * 0.299 + vf[..., 1:2] * 0.587 + vf[..., 2:3] * 0.114
    else:
        grey = ops.mean(vf, axis=-1, keepdims=True)

    def weight(column):
        return ops.reshape(p[:, column], (-1, 1, 1, 1))

    out = vf + weight(_COLOR) * (grey - vf) + weight(_SHARPNESS) * color.sharpness_detail(vf)
    return ops.clip(out, 0.0, 255.0)


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
        training: augment only if true.

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
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(f"num_ops must be an integer >= 1; received num_ops={num_ops!r}")
        self.num_ops = num_ops
        self.magnitude = check_number("magnitude", magnitude, 0.0, 30.0)
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
