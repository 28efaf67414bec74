"""L1 regularization by Hadamard reparameterization (Ziyin & Wang 2022, "spred").

The kernel is ``w = a * b`` (element-wise) with an L2 penalty ``C (|a|^2 + |b|^2)`` on the two
factors. For a fixed ``w`` the penalty is smallest when ``|a| = |b| = sqrt|w|``, where it
equals ``2 C |w|``; hence every minimum of ``loss(a * b) + C(|a|^2 + |b|^2)`` is a minimum of
the lasso ``loss(w) + 2 C |w|_1``. Unlike the L1 penalty, the reparameterized objective is
smooth, so plain SGD drives unneeded weights to (numerically) zero without a proximal step.

The layers take the *L1 strength* ``l1 = 2 C``: the penalty added to the loss is
``l1 / 2 * (sum(a**2) + sum(b**2))``. The effective kernel is ``layer.kernel`` (a tensor,
``a * b``); the factors are ``layer.kernel_a`` and ``layer.kernel_b``.

Initialization: ``u`` is drawn from ``kernel_initializer`` and ``v`` is ``u`` with its entries
shifted by one position; ``a = sign(u) sqrt|u|``, ``b = sign(v) sqrt|v|``, so ``|w| =
sqrt|u v|`` keeps the initializer's scale. The factors deliberately start *unbalanced*: with
``|a| = |b|`` exactly (``a = +-b``), gradient descent preserves ``a -+ b = 0`` and a weight
could never change sign (it would be trapped at the saddle ``a = b = 0``).

Reference: Ziyin & Wang, "spred: Solving L1 Penalty with SGD", ICML 2023 (arXiv 2022).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerascnn.errors import UserInputError
from kerascnn.layers.kernel_base import Conv2DKernelMixin, DenseKernelMixin, KernelLayerMixin

__all__ = [
    "hadamard_kernel",
    "HadamardConv2D",
    "HadamardDense",
]


def hadamard_kernel(a, b):
    """The effective kernel ``a * b``."""
    return a * b


def _check_l1(l1):
    if isinstance(l1, bool) or not isinstance(l1, (int, float)) or l1 < 0:
        raise UserInputError(f"l1 must be a number >= 0; received l1={l1!r}")
    return float(l1)


class _HadamardBase(KernelLayerMixin, keras.layers.Layer):
    """A kernel layer whose kernel is the product of the factors ``kernel_a`` and ``kernel_b``."""

    def __init__(
        self,
        l1: float = 0.0,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.l1 = _check_l1(l1)
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer)

    def _make_weights(self, kernel_shape, units):
        u = ops.convert_to_numpy(self.kernel_initializer(kernel_shape, dtype="float32"))
        v = np.roll(u.ravel(), 1).reshape(u.shape)  # same values, paired with a neighbour
        a0, b0 = np.sign(u) * np.sqrt(np.abs(u)), np.sign(v) * np.sqrt(np.abs(v))
        reg = keras.regularizers.L2(self.l1 / 2.0) if self.l1 > 0 else None
        self.kernel_a = self.add_weight(
            name="kernel_a",
            shape=kernel_shape,
            initializer=lambda shape, dtype=None: ops.cast(a0, dtype),
            regularizer=reg,
        )
        self.kernel_b = self.add_weight(
            name="kernel_b",
            shape=kernel_shape,
            initializer=lambda shape, dtype=None: ops.cast(b0, dtype),
            regularizer=reg,
        )
        self._add_bias(units)

    @property
    def kernel(self):
        """The effective kernel ``kernel_a * kernel_b``."""
        return hadamard_kernel(self.kernel_a, self.kernel_b)

    def call(self, inputs):
        return self._apply_kernel(inputs, self.kernel)

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, **self._kernel_args_config()}


@keras.saving.register_keras_serializable(package="kerascnn")
class HadamardDense(DenseKernelMixin, _HadamardBase):
    """Dense layer with kernel ``a * b`` and penalty ``l1/2 (|a|^2 + |b|^2)`` (L1 by SGD).

    Args:
        units: output size.
        l1: the equivalent L1 coefficient ``2 C`` (>= 0).
        activation, use_bias, kernel_initializer, bias_initializer: as ``keras.layers.Dense``
            (the bias is neither reparameterized nor penalized).

    Call arguments:
        inputs: ``(..., input_dim)``.

    Input shape: ``(..., input_dim)``. Output shape: ``(..., units)``.

    Reference: Ziyin & Wang, "spred: Solving L1 Penalty with SGD", ICML 2023.

    Example:
        >>> layer = HadamardDense(4, l1=1e-3)
        >>> y = layer(keras.ops.ones((2, 8)))
        >>> tuple(layer.kernel.shape)  # the effective kernel
        (8, 4)
    """

    def __init__(self, units: int, l1: float = 0.0, **kwargs):
        super().__init__(l1, **kwargs)
        self._init_dense(units)


@keras.saving.register_keras_serializable(package="kerascnn")
class HadamardConv2D(Conv2DKernelMixin, _HadamardBase):
    """2-D convolution with kernel ``a * b`` and penalty ``l1/2 (|a|^2 + |b|^2)``.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate: as
            ``keras.layers.Conv2D`` (no groups).
        l1: the equivalent L1 coefficient ``2 C`` (>= 0).
        activation, use_bias, kernel_initializer, bias_initializer: as ``Conv2D``.

    Call arguments:
        inputs: 4-D tensor.

    Input shape: ``(batch, h, w, c)`` (or channels-first). Output shape: as ``Conv2D``.

    Reference: Ziyin & Wang, "spred: Solving L1 Penalty with SGD", ICML 2023.

    Example:
        >>> y = HadamardConv2D(8, 3, l1=1e-4, padding="same")(keras.ops.ones((1, 8, 8, 3)))
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate=1,
        l1: float = 0.0,
        **kwargs,
    ):
        super().__init__(l1, **kwargs)
        self._init_conv2d(filters, kernel_size, strides, padding, data_format, dilation_rate)
