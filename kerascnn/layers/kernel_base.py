"""What the layers owning a dense or 2-D convolution kernel share.

``DropConnectDense``/``DropConnectConv2D`` (:mod:`kerascnn.layers.dropconnect`) and
``HadamardDense``/``HadamardConv2D`` (:mod:`kerascnn.layers.hadamard`) all compute
``activation(op(inputs, kernel) + bias)`` with ``op`` a matmul or a 2-D convolution, and differ
only in how a call's ``kernel`` is made (masked, or a product of two factors). These mixins
hold the rest, once:

* :class:`KernelLayerMixin`: the ``activation``, ``use_bias``, ``kernel_initializer`` and
  ``bias_initializer`` arguments (checked, stored and serialized) and the ``bias`` weight.
* :class:`DenseKernelMixin` / :class:`Conv2DKernelMixin`: the geometry (``units``, or
  ``filters``, ``kernel_size``, ``strides``, ``padding``, ``data_format``,
  ``dilation_rate``): its checks, ``build``, the output given a kernel,
  ``compute_output_shape`` and ``get_config``.

A family base (``_DropConnectBase``, ``_HadamardBase``) derives from
:class:`KernelLayerMixin` and a Keras layer class and implements
``_make_weights(kernel_shape, units)``, which creates the kernel's weights and then
calls :meth:`KernelLayerMixin._add_bias`; a concrete layer puts a geometry mixin first,
e.g. ``class DropConnectDense(DenseKernelMixin, _DropConnectBase)``, and its ``call`` returns
``self._apply_kernel(inputs, kernel)``. The mixins define no ``__init__``: constructors call
``_init_kernel_args`` / ``_init_dense`` / ``_init_conv2d`` so that every public signature stays
explicit.
"""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_bool, check_choice, check_data_format, check_int, check_pair
from kerascnn.errors import UserInputError

__all__ = [
    "Conv2DKernelMixin",
    "DenseKernelMixin",
    "KernelLayerMixin",
]


class KernelLayerMixin:
    """Activation, bias and initializer arguments of ``activation(op(x, kernel) + bias)``."""

    def _init_kernel_args(self, activation, use_bias, kernel_initializer, bias_initializer):
        check_bool("use_bias", use_bias)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _add_bias(self, units, regularizer=None):
        """Create ``self.bias`` of shape ``(units,)``, or set it to ``None`` without a bias."""
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=self.bias_initializer,
                regularizer=regularizer,
            )

    def _activate(self, y):
        return self.activation(y) if self.activation is not None else y

    def _kernel_args_config(self):
        return {
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


class DenseKernelMixin(KernelLayerMixin):
    """Dense geometry: kernel ``(input_dim, units)``, output ``(..., units)``."""

    def _init_dense(self, units):
        self.units = check_int("units", units)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise UserInputError(
                f"{type(self).__name__} needs a known last dimension; "
                f"received input_shape={input_shape}"
            )
        self._make_weights((input_shape[-1], self.units), self.units)

    def _apply_kernel(self, inputs, kernel):
        y = ops.matmul(inputs, kernel)
        if self.bias is not None:
            y = y + self.bias
        return self._activate(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Conv2DKernelMixin(KernelLayerMixin):
    """2-D convolution geometry: kernel ``(*kernel_size, in_channels, filters)``, as
    ``keras.layers.Conv2D`` (no groups); 4-D inputs, channels-last or channels-first."""

    def _init_conv2d(self, filters, kernel_size, strides, padding, data_format, dilation_rate):
        self.filters = check_int("filters", filters)
        self.kernel_size = check_pair("kernel_size", kernel_size)
        self.strides = check_pair("strides", strides)
        self.dilation_rate = check_pair("dilation_rate", dilation_rate)
        self.padding = check_choice("padding", padding, ("valid", "same"))
        self.data_format = check_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1 if self.data_format == "channels_last" else 1]
        if channels is None:
            raise UserInputError(
                f"{type(self).__name__} needs a known channel dimension; "
                f"received input_shape={input_shape}"
            )
        self._make_weights((*self.kernel_size, channels, self.filters), self.filters)

    def _apply_kernel(self, inputs, kernel):
        y = ops.conv(
            inputs,
            kernel,
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
        return self._activate(y)

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
