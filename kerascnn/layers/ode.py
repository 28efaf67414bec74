"""Neural ODE blocks (Chen et al. 2018): integrate dh/dt = f(h, t) with a fixed-step solver.

A residual block computes ``h + f(h)``: one explicit Euler step of size 1 of the ODE
``dh/dt = f(h)``. An ODE block keeps *one* function ``f(h, t)``, conditioned on the time ``t``,
and integrates it from ``t0`` to ``t1`` in ``steps`` fixed steps (Euler, midpoint or the
classic fourth-order Runge-Kutta method). The solver is unrolled into the graph, so gradients
flow through it by ordinary backpropagation ("discretize-then-optimize"; Chen et al.'s
adjoint method and adaptive solvers are not implemented): memory grows with the number of
function evaluations, which is fine for the few steps used in CNNs.

    block = ODEBlock(steps=4, method="rk4")          # f: Chen et al.'s conv function
    y = block(keras.ops.ones((2, 8, 8, 16)))         # same shape as the input
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops

from kerascnn.checks import check_bool, check_choice, check_int
from kerascnn.errors import UserInputError

__all__ = [
    "evaluations_per_step",
    "METHODS",
    "norm_groups_for",
    "ODEBlock",
    "ODEFunction",
    "odeint",
]

METHODS = ("euler", "midpoint", "rk4")


# --------------------------------------------------------------------------- math
def odeint(
    func: Callable, h0, t0: float = 0.0, t1: float = 1.0, steps: int = 1, method: str = "rk4"
):
    """Integrate ``dh/dt = func(h, t)`` from ``h(t0) = h0`` to ``t1`` with fixed steps.

    Args:
        func: ``func(h, t) -> dh/dt`` with the shape of ``h``; ``t`` is a Python float.
        h0: the initial state (a tensor of any shape).
        t0, t1: start and end time (``t1 < t0`` integrates backwards).
        steps: number of equal steps of size ``(t1 - t0) / steps``.
        method: ``"euler"`` (1 evaluation per step, global error O(dt)), ``"midpoint"``
            (2, O(dt^2)) or ``"rk4"`` (the classic Runge-Kutta method: 4, O(dt^4)).

    Returns:
        ``h(t1)``. The loop is unrolled, so the result is differentiable with respect to
        ``h0`` and every weight ``func`` uses.
    """
    _check_steps(steps)
    _check_method(method)
    dt = (float(t1) - float(t0)) / steps
    h = h0
    for k in range(steps):
        t = float(t0) + k * dt
        if method == "euler":
            h = h + dt * func(h, t)
        elif method == "midpoint":
            k1 = func(h, t)
            h = h + dt * func(h + (0.5 * dt) * k1, t + 0.5 * dt)
        else:
            k1 = func(h, t)
            k2 = func(h + (0.5 * dt) * k1, t + 0.5 * dt)
            k3 = func(h + (0.5 * dt) * k2, t + 0.5 * dt)
            k4 = func(h + dt * k3, t + dt)
            h = h + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return h


def evaluations_per_step(method: str) -> int:
    """Function evaluations per step: 1 (Euler), 2 (midpoint), 4 (RK4)."""
    return {"euler": 1, "midpoint": 2, "rk4": 4}[_check_method(method)]


def norm_groups_for(norm_groups: int, channels: int) -> int:
    """Groups of a group normalization over ``channels``: ``gcd(norm_groups, channels // 2)``,
    so every group holds at least two channels (Chen et al.: 32 groups for 64 channels). With
    one channel per group, global average pooling after the norm would see a constant."""
    return math.gcd(norm_groups, max(1, channels // 2))


def _check_steps(steps) -> int:
    return check_int("steps", steps)


def _check_method(method) -> str:
    return check_choice("method", method, METHODS)


def _check_time(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserInputError(f"{name} must be a finite number; received {name}={value!r}")
    return float(value)


# --------------------------------------------------------------------------- the function f
@keras.saving.register_keras_serializable(package="kerascnn")
class ODEFunction(keras.layers.Layer):
    """The convolutional ``f(h, t)`` of Chen et al.'s ODE-Net (their ``ODEfunc``).

    ``norm -> ReLU -> conv3x3([h, t]) -> norm -> ReLU -> conv3x3([h, t]) -> norm``, where
    ``[h, t]`` appends a constant channel holding ``t`` (their ``ConcatConv2d``) and the norm
    is group normalization (no batch statistics, so evaluating ``f`` several times per step
    does not disturb anything). With ``time_conditioned=False`` no ``t`` channel is added and
    the layer is an ordinary pre-activation residual function, so that a ResNet can be built
    from the same function (see ``kerascnn.zoo.odenet(block="resnet")``).

    Args:
        filters: width of the hidden feature map (default: the input's channels).
        kernel_size: odd int, the convolutions' size.
        norm_groups: groups of the group normalization (reduced so that each group holds
            at least two channels: :func:`norm_groups_for`); ``None`` for no normalization.
        time_conditioned: append the ``t`` channel before each convolution.
        zero_init: start with ``f = 0`` (the last norm's scale, or the last kernel when
            there is no norm, initialized to zero), so a fresh block is the identity.
        kernel_regularizer: for both convolutions.

    Call arguments:
        inputs: ``h``, ``(batch, height, width, channels)``.
        t: the time, a Python float (default 0).

    Input shape / Output shape: ``(batch, height, width, channels)``, unchanged.

    Reference: Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential
    Equations", NeurIPS 2018 (arXiv:1806.07366), the MNIST ODE-Net.

    Example:
        >>> f = ODEFunction(zero_init=True)
        >>> dh = f(keras.ops.ones((1, 8, 8, 16)), 0.5)   # zeros
    """

    def __init__(
        self,
        filters: int | None = None,
        kernel_size: int = 3,
        norm_groups: int | None = 32,
        time_conditioned: bool = True,
        zero_init: bool = False,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("filters", filters), ("norm_groups", norm_groups)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise UserInputError(
                    f"{name} must be None or an integer >= 1; received {name}={value!r}"
                )
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise UserInputError(
                f"kernel_size must be an odd integer >= 1; received kernel_size={kernel_size!r}"
            )
        check_bool("time_conditioned", time_conditioned)
        check_bool("zero_init", zero_init)
        self.filters = filters
        self.kernel_size = kernel_size
        self.norm_groups = norm_groups
        self.time_conditioned = time_conditioned
        self.zero_init = zero_init
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _norm(self, channels, name, zero=False):
        if self.norm_groups is None:
            return None
        return keras.layers.GroupNormalization(
            groups=norm_groups_for(self.norm_groups, channels),
            epsilon=1e-5,
            gamma_initializer="zeros" if zero else "ones",
            name=name,
        )

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = self.filters or channels
        extra = 1 if self.time_conditioned else 0
        last_zero = self.zero_init and self.norm_groups is None

        def conv(filters, name, zero=False):
            return keras.layers.Conv2D(
                filters,
                self.kernel_size,
                padding="same",
                use_bias=self.norm_groups is None,
                kernel_initializer="zeros" if zero else "he_normal",
                kernel_regularizer=self.kernel_regularizer,
                name=name,
            )

        self.norm1 = self._norm(channels, "norm1")
        self.conv1 = conv(hidden, "conv1")
        self.norm2 = self._norm(hidden, "norm2")
        self.conv2 = conv(channels, "conv2", zero=last_zero)
        self.norm3 = self._norm(channels, "norm3", zero=self.zero_init)
        shape = tuple(input_shape)
        for layer, s in (
            (self.norm1, shape),
            (self.conv1, shape[:-1] + (channels + extra,)),
            (self.norm2, shape[:-1] + (hidden,)),
            (self.conv2, shape[:-1] + (hidden + extra,)),
            (self.norm3, shape),
        ):
            if layer is not None:
                layer.build(s)

    def _with_time(self, x, t):
        if not self.time_conditioned:
            return x
        t = ops.cast(t, x.dtype)
        return ops.concatenate([x, ops.zeros_like(x[..., :1]) + t], axis=-1)

    def call(self, inputs, t=0.0):
        x = inputs
        if self.norm1 is not None:
            x = self.norm1(x)
        x = ops.relu(x)
        x = self.conv1(self._with_time(x, t))
        if self.norm2 is not None:
            x = self.norm2(x)
        x = ops.relu(x)
        x = self.conv2(self._with_time(x, t))
        if self.norm3 is not None:
            x = self.norm3(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "norm_groups": self.norm_groups,
            "time_conditioned": self.time_conditioned,
            "zero_init": self.zero_init,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        }


# --------------------------------------------------------------------------- the block
@keras.saving.register_keras_serializable(package="kerascnn")
class ODEBlock(keras.layers.Layer):
    """``h(t1)`` of ``dh/dt = f(h, t)``, ``h(t0) = inputs``, by a fixed-step solver.

    A thin wrapper over :func:`odeint` with one learned function ``f`` shared by every step:
    ``steps`` Euler steps cost as much as ``steps`` residual blocks but have the parameters
    of one.

    Args:
        func: the function ``f``: a Keras layer called as ``func(h, t=t)`` (``t`` a Python
            float) that returns a tensor shaped like ``h`` and builds its weights in
            ``build(input_shape)``. Default: an :class:`ODEFunction` with ``filters``,
            ``norm_groups`` and ``zero_init``. Custom layers must be registered
            serializable for ``.keras`` files.
        steps: number of solver steps (int >= 1).
        method: ``"euler"``, ``"midpoint"`` or ``"rk4"``.
        t0, t1: integration interval (default ``[0, 1]``).
        filters, norm_groups, zero_init: for the default ``func`` (see :class:`ODEFunction`);
            with ``zero_init=True`` a fresh block is exactly the identity.

    Call arguments:
        inputs: ``h(t0)``, any shape ``func`` accepts.

    Input shape / Output shape: unchanged, e.g. ``(batch, height, width, channels)``.

    Reference: Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential
    Equations", NeurIPS 2018 (arXiv:1806.07366).

    Example:
        >>> block = ODEBlock(steps=4, method="rk4", zero_init=True)
        >>> x = keras.ops.ones((2, 8, 8, 16))
        >>> bool(keras.ops.all(block(x) == x))     # f = 0: the identity
        True
    """

    def __init__(
        self,
        func: keras.layers.Layer | dict | None = None,
        steps: int = 4,
        method: str = "rk4",
        t0: float = 0.0,
        t1: float = 1.0,
        filters: int | None = None,
        norm_groups: int | None = 32,
        zero_init: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.steps = _check_steps(steps)
        self.method = _check_method(method)
        self.t0 = _check_time("t0", t0)
        self.t1 = _check_time("t1", t1)
        if isinstance(func, dict):
            func = keras.saving.deserialize_keras_object(func)
        if func is None:
            func = ODEFunction(
                filters=filters, norm_groups=norm_groups, zero_init=zero_init, name="func"
            )
        elif not isinstance(func, keras.layers.Layer):
            raise UserInputError(
                f"func must be None or a Keras layer called as func(h, t=t); received func={func!r}"
            )
        self.func = func
        self.filters = filters
        self.norm_groups = norm_groups
        self.zero_init = zero_init

    def build(self, input_shape):
        if not self.func.built:
            self.func.build(input_shape)

    def call(self, inputs):
        def f(h, t):
            return self.func(h, t=t)

        return odeint(f, inputs, self.t0, self.t1, self.steps, self.method)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    @property
    def evaluations(self) -> int:
        """Evaluations of ``f`` per forward pass: ``steps * evaluations_per_step(method)``."""
        return self.steps * evaluations_per_step(self.method)

    def get_config(self):
        return {
            **super().get_config(),
            "func": keras.saving.serialize_keras_object(self.func),
            "steps": self.steps,
            "method": self.method,
            "t0": self.t0,
            "t1": self.t1,
            "filters": self.filters,
            "norm_groups": self.norm_groups,
            "zero_init": self.zero_init,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("func"), dict):
            config["func"] = keras.saving.deserialize_keras_object(config["func"])
        return cls(**config)
