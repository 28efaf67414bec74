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
from keras import ops

from kerascnn.layers.dropout import DropoutBase, check_data_format, dropout


def drop_connect(kernel, rate, seed=None):
    """The kernel with each weight dropped with probability ``rate`` and the kept ones scaled
    by ``1 / (1 - rate)`` (one Bernoulli draw per weight)."""
    return dropout(kernel, rate, seed)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; received {name}={value!r}")
    return value


def _pair(name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(
            f"{name} must be a positive integer or a pair of them; received {name}={value!r}"
        )
    return tuple(value)


class _DropConnectBase(DropoutBase):
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
        if not isinstance(use_bias, bool):
            raise ValueError(f"use_bias must be True or False; received use_bias={use_bias!r}")
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
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
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )

    def effective_kernel(self, training=None):
        """The kernel used by a call: masked and rescaled when ``training`` is true."""
        if training:
            return drop_connect(self.kernel, self.rate_variable, self.seed_generator)
        return self.kernel

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectDense(_DropConnectBase):
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
        self.units = _check_positive_int("units", units)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"DropConnectDense needs a known last dimension; received input_shape={input_shape}"
            )
        self._make_weights((input_shape[-1], self.units), self.units)

    def call(self, inputs, training=None):
        y = ops.matmul(inputs, self.effective_kernel(training))
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectConv2D(_DropConnectBase):
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
        self.filters = _check_positive_int("filters", filters)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.dilation_rate = _pair("dilation_rate", dilation_rate)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; received padding={padding!r}")
        self.padding = padding
        self.data_format = check_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1 if self.data_format == "channels_last" else 1]
        if channels is None:
            raise ValueError(
                f"DropConnectConv2D needs a known channel dimension; received input_shape={input_shape}"
            )
        self._make_weights((*self.kernel_size, channels, self.filters), self.filters)

    def call(self, inputs, training=None):
        y = ops.conv(
            inputs,
            self.effective_kernel(training),
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if self.bias is not None:
            shape = (
                (1, 1, 1, self.filters)
                if self.data_format == "channels_last"
                else (1, self.filters, 1, 1)
            )
            y = y + ops.reshape(self.bias, shape)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        last = self.data_format == "channels_last"
        spatial = input_shape[1:3] if last else input_shape[2:4]
        out = []
        for n, k, s, d in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, strict=True
        ):
            if n is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-n // s))
            else:
                out.append((n - d * (k - 1) - 1) // s + 1)
        if last:
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }
