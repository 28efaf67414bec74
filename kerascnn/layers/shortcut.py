"""The parameter-free shortcut of He et al. (2016), option A."""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_int
from kerascnn.errors import UserInputError

__all__ = [
    "zero_pad_shortcut",
    "ZeroPadShortcut",
]


def zero_pad_shortcut(x, strides: int, out_channels: int):
    """Subsample ``x`` (NHWC) by ``strides`` and zero-pad its channels to ``out_channels``,
    half of the new channels before and half after the existing ones."""
    if strides > 1:
        x = x[:, ::strides, ::strides, :]
    extra = out_channels - x.shape[-1]
    if extra:
        x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
    return x


@keras.saving.register_keras_serializable(package="kerascnn")
class ZeroPadShortcut(keras.layers.Layer):
    """Identity shortcut with strided subsampling and zero-padded extra channels.

    The CIFAR ResNets of He et al. (2016, section 4.2, "option A") use it so that every
    shortcut is parameter-free.

    Args:
        strides: spatial subsampling factor (1 or 2).
        out_channels: number of channels of the output (>= input channels).

    Input shape: ``(batch, height, width, channels)``.
    Output shape: ``(batch, ceil(height / strides), ceil(width / strides), out_channels)``.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.

    Example:
        >>> y = ZeroPadShortcut(strides=2, out_channels=32)(keras.ops.ones((1, 8, 8, 16)))
        >>> tuple(y.shape)
        (1, 4, 4, 32)
    """

    def __init__(self, strides: int, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.strides = check_int("strides", strides)
        self.out_channels = check_int("out_channels", out_channels)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] > self.out_channels:
            raise UserInputError(
                "out_channels must be at least the input's channels (a zero-padding shortcut "
                f"cannot drop channels); received out_channels={self.out_channels} for an input "
                f"of {input_shape[-1]} channels"
            )

    def call(self, inputs):
        return zero_pad_shortcut(inputs, self.strides, self.out_channels)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        s = self.strides
        return (
            b,
            None if h is None else -(-h // s),
            None if w is None else -(-w // s),
            self.out_channels,
        )

    def get_config(self):
        return {**super().get_config(), "strides": self.strides, "out_channels": self.out_channels}
