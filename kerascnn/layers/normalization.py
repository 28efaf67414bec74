"""Normalization over a configurable set of axes: batch, layer, instance and group norm.

One layer, :class:`AxisNormalization`, whose ``axis`` is the set of axes *over which the
statistics are computed* (the lecture's convention; Keras's ``LayerNormalization`` uses the
same, Keras's ``BatchNormalization`` names the kept feature axis instead). For NHWC inputs:

- batch: ``axis=[0, 1, 2]``; ``c`` scales/offsets; moving averages for inference.
- layer, per image: ``axis=[1, 2, 3]``; ``h * w * c`` scales/offsets.
- layer, per channel: ``axis=[1, 2, 3], param_axes=-1``; ``c`` scales/offsets.
- instance: ``axis=[1, 2]``; ``c`` scales/offsets.
- group: ``axis=[1, 2, 3], groups=g``; ``c`` scales/offsets.

Both layer-norm variants compute one mean and variance per image; they differ in the affine
parameters (one per element as Ba et al. 2016 and ``keras.layers.LayerNormalization(axis=[1,
2, 3])``, or one per channel as ``GroupNormalization(groups=1)``). When the batch axis 0 is
in ``axis`` the layer keeps moving averages for inference, exactly as
``keras.layers.BatchNormalization`` (same momentum rule, biased batch variance, inference
mode when ``training`` is false *or* the layer is not trainable).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from kerascnn.checks import check_bool, check_choice, check_float, check_int
from kerascnn.errors import UserInputError

__all__ = [
    "axis_normalization",
    "AxisNormalization",
    "normalization",
    "NORMALIZATION_KINDS",
    "WEIGHT_OPTIONS",
]


def _as_axes(name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(a, int) and not isinstance(a, bool) for a in value)
    ):
        return list(value)
    raise UserInputError(
        f"{name} must be an integer or a non-empty list of integers; received {name}={value!r}"
    )


def axis_normalization(
    x,
    axis: Sequence[int],
    scale=None,
    offset=None,
    epsilon: float = 1e-3,
    groups: int = 1,
    group_axis: int = -1,
):
    """Normalize ``x`` with its own mean and variance over ``axis`` (per-example kinds and
    batch norm in training mode), then apply ``scale``/``offset`` (already broadcastable).

    With ``groups > 1`` the ``group_axis`` is split into ``groups`` consecutive groups and, if
    ``group_axis`` is in ``axis``, the statistics are taken within each group (GroupNorm).
    Returns the normalized tensor.
    """
    rank = len(x.shape)
    axes = sorted(a % rank for a in axis)
    xg, red, _ = _grouped(x, axes, groups, group_axis % rank)
    mean, var = ops.moments(xg, axes=red, keepdims=True)
    y = ops.reshape((xg - mean) * ops.rsqrt(var + epsilon), ops.shape(x))
    if scale is not None:
        y = y * scale
    if offset is not None:
        y = y + offset
    return y


def _grouped(x, axes, groups, ga):
    """``x`` reshaped so that axis ``ga`` is split into (groups, size // groups), the reduction
    axes in that layout, and the layout's static shape."""
    if groups == 1:
        return x, axes, list(x.shape)
    shape = list(ops.shape(x))
    c = x.shape[ga]
    new_shape = shape[:ga] + [groups, c // groups] + shape[ga + 1 :]
    static = list(x.shape[:ga]) + [groups, c // groups] + list(x.shape[ga + 1 :])
    red = [a if a < ga else a + 1 for a in axes]
    return ops.reshape(x, new_shape), red, static


#: :class:`AxisNormalization`'s options of its weights, named and defaulting as in
#: ``keras.layers.BatchNormalization``
WEIGHT_OPTIONS = {
    "beta_initializer": "zeros",
    "gamma_initializer": "ones",
    "moving_mean_initializer": "zeros",
    "moving_variance_initializer": "ones",
    "beta_regularizer": None,
    "gamma_regularizer": None,
    "beta_constraint": None,
    "gamma_constraint": None,
}
_WEIGHT_OPTION_KINDS = {
    "initializer": keras.initializers,
    "regularizer": keras.regularizers,
    "constraint": keras.constraints,
}


@keras.saving.register_keras_serializable(package="kerascnn")
class AxisNormalization(keras.layers.Layer):
    """Normalization with statistics over a configurable set of axes (BN / LN / IN / GN).

    Args:
        axis: int or list of ints, the axes over which mean and variance are computed.
            Including the batch axis 0 makes it batch normalization (moving averages).
        groups: int >= 1; splits ``group_axis`` into this many groups of consecutive
            channels, statistics per group (needs ``group_axis`` in ``axis``). If the axis has
            fewer channels than ``groups``, one group per channel is used (the common
            ``GroupNorm(min(32, C), C)`` rule); otherwise the channels must divide evenly.
        group_axis: the channel axis that ``groups`` splits (default -1).
        param_axes: axes along which ``gamma``/``beta`` vary. ``None`` chooses: with
            ``groups > 1`` the ``group_axis``; when ``axis`` holds the batch axis or not the
            channel axis (``group_axis``), the kept non-batch axes (BN, IN: one per channel);
            otherwise the normalized non-batch axes (LN, as ``keras.layers.LayerNormalization``:
            ``axis=[1, 2, 3]`` gives ``h*w*c`` entries, ``axis=-1`` gives ``c``).
        momentum: moving-average momentum for the batch kind (Keras convention, 0.99).
        epsilon: added to the variance.
        center, scale: learn ``beta`` / ``gamma``.
        **kwargs: the weights' options (:data:`WEIGHT_OPTIONS`), named as in
            ``keras.layers.BatchNormalization``: ``beta_initializer``, ``gamma_initializer``,
            ``moving_mean_initializer``, ``moving_variance_initializer``,
            ``beta_regularizer``, ``gamma_regularizer``, ``beta_constraint``,
            ``gamma_constraint``; and the base layer's (``name``, ``dtype``, ...).

    Call arguments:
        inputs: a tensor of rank >= 2.
        training: Python bool; for the batch kind, batch statistics (and a moving-average
            update) when true and the layer is trainable, moving statistics otherwise.
            Per-example kinds behave identically in both modes.

    Input shape: any with the normalized/parameter axes known. Output shape: same.

    Reference: Ioffe & Szegedy 2015 (BN); Ba et al. 2016 (LN); Ulyanov et al. 2016 (IN);
    Wu & He 2018 (GN).

    Example:
        >>> ln = AxisNormalization(axis=[1, 2, 3])  # layer norm, h*w*c scales
        >>> y = ln(keras.ops.ones((2, 4, 4, 8)))
        >>> ln.gamma.shape
        (4, 4, 8)
    """

    def __init__(
        self,
        axis,
        groups: int = 1,
        group_axis: int = -1,
        param_axes=None,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs,
    ):
        weight_options = {key: kwargs.pop(key, value) for key, value in WEIGHT_OPTIONS.items()}
        super().__init__(**kwargs)
        self.axis = _as_axes("axis", axis)
        if len(set(self.axis)) != len(self.axis):
            raise UserInputError(f"axis must not repeat an axis; received axis={axis!r}")
        check_int("groups", groups)
        if isinstance(group_axis, bool) or not isinstance(group_axis, int):
            raise UserInputError(
                f"group_axis must be an integer; received group_axis={group_axis!r}"
            )
        self.groups = groups
        self.group_axis = group_axis
        self.param_axes = None if param_axes is None else _as_axes("param_axes", param_axes)
        check_float("momentum", momentum, 0, 1)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise UserInputError(f"epsilon must be a number > 0; received epsilon={epsilon!r}")
        check_bool("center", center)
        check_bool("scale", scale)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        for key, value in weight_options.items():  # self.beta_initializer, ...
            setattr(self, key, _WEIGHT_OPTION_KINDS[key.rsplit("_", 1)[1]].get(value))
        self.supports_masking = True

    @property
    def is_batch_kind(self) -> bool:
        """True when the statistics run over the batch axis (moving averages kept)."""
        return 0 in self.axis

    def build(self, input_shape):
        rank = len(input_shape)
        for a in self.axis:
            if not -rank <= a < rank:
                raise UserInputError(
                    f"axis={self.axis} is out of range for an input of rank {rank} (shape {input_shape})"
                )
        axes = sorted(a % rank for a in self.axis)
        if len(set(axes)) != len(axes):
            raise UserInputError(f"axis={self.axis} names the same axis twice for rank {rank}")
        if not -rank <= self.group_axis < rank or self.group_axis % rank == 0:
            raise UserInputError(
                f"group_axis must be a non-batch axis of the rank-{rank} input; received group_axis={self.group_axis}"
            )
        ga = self.group_axis % rank
        groups = self.groups
        if groups > 1:
            c = input_shape[ga]
            if c is None:
                raise UserInputError(
                    f"groups={groups} needs a known size of group_axis={self.group_axis}; received input_shape={input_shape}"
                )
            if ga not in axes:
                raise UserInputError(
                    f"groups={groups} needs group_axis={self.group_axis} in axis={self.axis}"
                )
            groups = min(groups, c)
            if c % groups:
                raise UserInputError(
                    f"groups={self.groups} must divide the {c} channels of axis {self.group_axis}"
                )
        self._rank, self._axes, self._ga, self._groups = rank, axes, ga, groups
        non_batch = list(range(1, rank))
        if self.param_axes is not None:
            p_axes = sorted({a % rank for a in self.param_axes if -rank <= a < rank})
            if len(p_axes) != len(self.param_axes) or 0 in p_axes:
                raise UserInputError(
                    f"param_axes must be distinct non-batch axes of the rank-{rank} input; received param_axes={self.param_axes}"
                )
        elif groups > 1:
            p_axes = [ga]
        elif 0 in axes or ga not in axes:  # batch / instance norm: per kept feature
            p_axes = [a for a in non_batch if a not in axes] or [a for a in non_batch if a in axes]
        else:  # layer norm (Keras's convention): along the normalized axes
            p_axes = [a for a in non_batch if a in axes]
        for a in p_axes:
            if input_shape[a] is None:
                raise UserInputError(
                    f"parameter axis {a} must have a known size; received input_shape={input_shape}"
                )
        self._param_axes = p_axes
        param_shape = tuple(input_shape[a] for a in p_axes)
        self._param_bshape = [input_shape[a] if a in p_axes else 1 for a in range(rank)]
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma",
                shape=param_shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=param_shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        if self.is_batch_kind:
            static = list(input_shape)
            if groups > 1:
                static = static[:ga] + [groups, static[ga] // groups] + static[ga + 1 :]
                red = [a if a < ga else a + 1 for a in axes]
            else:
                red = axes
            kept = [i for i in range(len(static)) if i not in red]
            if any(static[i] is None for i in kept):
                raise UserInputError(
                    f"the kept axes must have known sizes for moving statistics; received input_shape={input_shape}"
                )
            self._stat_shape = tuple(static[i] for i in kept)
            self._stat_bshape = [1 if i in red else static[i] for i in range(len(static))]
            self.moving_mean = self.add_weight(
                name="moving_mean",
                shape=self._stat_shape,
                initializer=self.moving_mean_initializer,
                trainable=False,
            )
            self.moving_variance = self.add_weight(
                name="moving_variance",
                shape=self._stat_shape,
                initializer=self.moving_variance_initializer,
                trainable=False,
            )

    # ----------------------------------------------------------------- batch-kind helpers
    def batch_statistics(self, inputs):
        """Mean and (biased) variance of ``inputs`` over ``axis``, shaped like the moving
        statistics (batch kind only)."""
        x = ops.cast(inputs, "float32")
        xg, red, _ = _grouped(x, self._axes, self._groups, self._ga)
        mean, var = ops.moments(xg, axes=red)
        return ops.reshape(mean, self._stat_shape), ops.reshape(var, self._stat_shape)

    def normalize(self, inputs, mean, variance):
        """``inputs`` normalized with the given moving-shaped ``mean``/``variance``, then
        scaled and shifted (batch kind only)."""
        x = ops.cast(inputs, "float32")
        xg, _, _ = _grouped(x, self._axes, self._groups, self._ga)
        mean = ops.reshape(ops.cast(mean, "float32"), self._stat_bshape)
        variance = ops.reshape(ops.cast(variance, "float32"), self._stat_bshape)
        y = ops.reshape((xg - mean) * ops.rsqrt(variance + self.epsilon), ops.shape(x))
        return ops.cast(self._affine(y), self.compute_dtype)

    def _affine(self, y):
        if self.gamma is not None:
            y = y * ops.reshape(ops.cast(self.gamma, "float32"), self._param_bshape)
        if self.beta is not None:
            y = y + ops.reshape(ops.cast(self.beta, "float32"), self._param_bshape)
        return y

    def call(self, inputs, training=None):
        if not self.is_batch_kind:
            x = ops.cast(inputs, "float32")
            y = axis_normalization(
                x, self._axes, epsilon=self.epsilon, groups=self._groups, group_axis=self._ga
            )
            return ops.cast(self._affine(y), self.compute_dtype)
        if training and self.trainable:
            mean, var = self.batch_statistics(inputs)
            m = self.momentum
            self.moving_mean.assign(
                self.moving_mean * m + ops.cast(mean, self.moving_mean.dtype) * (1.0 - m)
            )
            self.moving_variance.assign(
                self.moving_variance * m + ops.cast(var, self.moving_variance.dtype) * (1.0 - m)
            )
            return self.normalize(inputs, mean, var)
        return self.normalize(inputs, self.moving_mean, self.moving_variance)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "groups": self.groups,
            "group_axis": self.group_axis,
            "param_axes": self.param_axes,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **{
                key: _WEIGHT_OPTION_KINDS[key.rsplit("_", 1)[1]].serialize(getattr(self, key))
                for key in WEIGHT_OPTIONS
            },
        }


NORMALIZATION_KINDS = ("batch", "layer", "instance", "group")
_KIND_AXES = {"batch": [0, 1, 2], "layer": [1, 2, 3], "instance": [1, 2], "group": [1, 2, 3]}


def normalization(
    kind: str, epsilon: float = 1e-3, name: str | None = None, **kwargs
) -> AxisNormalization:
    """An :class:`AxisNormalization` for NHWC feature maps by name (the zoo's ``norm=`` hook).

    ``"batch"``: axis ``[0, 1, 2]`` (c scales, moving averages); ``"layer"``: ``[1, 2, 3]``
    (h*w*c scales, pass ``param_axes=-1`` for per-channel scales); ``"instance"``: ``[1, 2]``;
    ``"group"``: ``[1, 2, 3]`` with ``groups=32`` unless given (capped at the channel count).
    Other keyword arguments go to :class:`AxisNormalization`.

    >>> normalization("group", epsilon=1e-5, name="bn1", groups=8).groups
    8
    """
    check_choice("kind", kind, NORMALIZATION_KINDS)
    if "axis" in kwargs:
        raise UserInputError(
            f"normalization({kind!r}) sets axis itself; use AxisNormalization for custom axes"
        )
    if kind == "group":
        kwargs.setdefault("groups", 32)
    return AxisNormalization(axis=_KIND_AXES[kind], epsilon=epsilon, name=name, **kwargs)
