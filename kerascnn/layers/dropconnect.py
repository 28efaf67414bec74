"""DropConnect (Wan et al. 2013): drop individual weights instead of activations.

Design choices (argued here once for both layers):

* **Dedicated layers, not a wrapper.** ``DropConnectDense`` and ``DropConnectConv2D`` own
  their ``kernel``/``bias`` (same names and shapes as ``Dense``/``Conv2D``). A wrapper around
  an existing ``Dense``/``Conv2D`` would have to swap the wrapped layer's kernel for a masked
  one during its call, which relies on private attributes (``_kernel``), breaks under
  quantization/LoRA and Keras's custom ``save_own_variables`` of those layers, and is not
  traceable state. Owning the kernel keeps the layer a plain ``x @ (W * M)``.
* **One mask per batch (per training step), not per example.** Per-example masks need a
  different weight matrix for every example: ``batch x in x out`` mask entries and a batched
  matmul instead of one GEMM (for convolutions, a grouped convolution over the batch), i.e.
  memory and compute multiplied by the batch size. Wan et al. needed a custom GPU kernel for
  that. One mask per step costs one element-wise multiply on the kernel; the regularizing
  effect per step is the same sub-network sampling, with a noisier gradient. Consequence:
  all examples of a batch share the mask, so :func:`kerascnn.layers.mc_predict` runs its
  Monte-Carlo passes one after another for these layers (``mask_per_batch = True``).
* **Inverted scaling.** Kept weights are scaled by ``1 / (1 - rate)`` so that inference uses
  the full, unscaled weights (the mean network), not Wan et al.'s Gaussian moment matching.
  Biases are not dropped.
"""

from __future__ import annotations

import keras

from kerascnn.layers.dropout import DropoutBase, dropout
from kerascnn.layers.kernel_base import Conv2DKernelMixin, DenseKernelMixin, KernelLayerMixin

__all__ = [
    "drop_connect",
    "DropConnectConv2D",
    "DropConnectDense",
]


def drop_connect(kernel, rate, seed=None):
    """The kernel with each weight dropped with probability ``rate`` and the kept ones scaled
    by ``1 / (1 - rate)`` (one Bernoulli draw per weight)."""
    return dropout(kernel, rate, seed)


class _DropConnectBase(KernelLayerMixin, DropoutBase):
    """A kernel layer of the dropout family whose calls use :meth:`effective_kernel`."""

    mask_per_batch = True

    def __init__(
        self,
        rate,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(rate, seed=seed, **kwargs)
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_masking = False

    def _make_weights(self, kernel_shape, units):
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self._add_bias(units, regularizer=self.bias_regularizer)

    def effective_kernel(self, training=None):
        """The kernel used by a call: masked and rescaled when ``training`` is true."""
        if training:
            return drop_connect(self.kernel, self.rate_variable, self.seed_generator)
        return self.kernel

    def call(self, inputs, training=None):
        return self._apply_kernel(inputs, self.effective_kernel(training))

    def get_config(self):
        return {
            **super().get_config(),
            **self._kernel_args_config(),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectDense(DenseKernelMixin, _DropConnectBase):
    """A dense layer with DropConnect on its kernel: ``y = act(x @ (W * M) / (1 - rate) + b)``.

    One mask ``M`` per batch (see the module docstring for why), redrawn at every training
    call; inference uses ``W`` unchanged.

    Args:
        units: output size.
        rate: float in ``[0, 1)``, fraction of weights dropped.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as in ``keras.layers.Dense``.
        seed: optional int.

    Call arguments:
        inputs: ``(..., input_dim)``.
        training: Python bool; weights are dropped only when true.

    Input shape: ``(..., input_dim)``. Output shape: ``(..., units)``.

    Reference: Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013.

    Example:
        >>> layer = DropConnectDense(16, rate=0.5, seed=0)
        >>> y = layer(keras.ops.ones((4, 8)), training=True)
    """

    def __init__(self, units: int, rate: float, **kwargs):
        super().__init__(rate, **kwargs)
        self._init_dense(units)


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectConv2D(Conv2DKernelMixin, _DropConnectBase):
    """A 2-D convolution with DropConnect on its kernel (one mask per batch).

    Args:
        filters: number of output channels.
        kernel_size: int or pair.
        rate: float in ``[0, 1)``, fraction of kernel weights dropped.
        strides, dilation_rate: int or pair (default 1).
        padding: ``"valid"`` or ``"same"``.
        data_format: ``"channels_last"`` / ``"channels_first"`` (default from Keras config).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as in ``keras.layers.Conv2D``.
        seed: optional int.

    Call arguments:
        inputs: 4-D tensor.
        training: Python bool; weights are dropped only when true.

    Input shape: ``(batch, h, w, c)`` (or channels-first). Output shape: as ``Conv2D``.

    Reference: Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013.

    Example:
        >>> layer = DropConnectConv2D(8, 3, rate=0.3, padding="same", seed=0)
        >>> y = layer(keras.ops.ones((2, 16, 16, 3)), training=True)
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        rate: float,
        strides=1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate=1,
        **kwargs,
    ):
        super().__init__(rate, **kwargs)
        self._init_conv2d(filters, kernel_size, strides, padding, data_format, dilation_rate)
