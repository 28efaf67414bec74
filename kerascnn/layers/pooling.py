"""Adaptive average pooling: PyTorch's ``AdaptiveAvgPool2d`` in Keras (torchvision's AlexNet
and VGG pool their feature maps to a fixed size before the classifier)."""

from __future__ import annotations

import keras

from kerascnn.checks import check_bool, check_pair

__all__ = ["AdaptiveAveragePooling2D", "adaptive_average_pool"]


def adaptive_average_pool(x, output_size: tuple[int, int]):
    """PyTorch's ``adaptive_avg_pool2d`` on a channels-last batch with static height and
    width: output cell ``(i, j)`` averages rows ``floor(i*H/h) .. ceil((i+1)*H/h) - 1`` and
    columns likewise (cells overlap, or repeat pixels, when ``H`` is not a multiple of
    ``h``)."""
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = output_size
    if height % out_h == 0 and width % out_w == 0:
        window = (height // out_h, width // out_w)
        return keras.ops.average_pool(x, window, strides=window, padding="valid")

    def bins(size, out):
        return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]

    rows = [
        keras.ops.stack(
            [keras.ops.mean(x[:, h0:h1, w0:w1, :], axis=(1, 2)) for w0, w1 in bins(width, out_w)],
            axis=1,
        )
        for h0, h1 in bins(height, out_h)
    ]
    return keras.ops.stack(rows, axis=1)


@keras.saving.register_keras_serializable(package="kerascnn")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """torchvision's ``AdaptiveAvgPool2d(output_size)`` for channels-last inputs of a known
    height and width (:func:`adaptive_average_pool`).

    Args:
        output_size: ``(height, width)`` of the output, or one int for both.
        flatten: return the pooled map flattened to ``(batch, height * width * channels)``
            in Keras's ``Flatten`` order (height, width, channels), as torchvision's
            classifiers take it (``torch.flatten(avgpool(x), 1)``); the layer then ends the
            trunk as a classifier's first layer (:mod:`kerascnn.zoo.features`).

    Input shape: ``(batch, H, W, channels)``, ``H`` and ``W`` known.
    Output shape: ``(batch, height, width, channels)``, or ``(batch, height * width *
    channels)`` with ``flatten``.

    Example:
        >>> AdaptiveAveragePooling2D(6)(keras.ops.ones((1, 13, 13, 2))).shape
        (1, 6, 6, 2)
    """

    def __init__(self, output_size, flatten: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_bool("flatten", flatten)
        self.flatten = flatten
        self.output_size = check_pair("output_size", output_size)

    def call(self, inputs):
        x = adaptive_average_pool(inputs, self.output_size)
        return (
            keras.ops.reshape(x, (-1, int(x.shape[1] * x.shape[2] * x.shape[3])))
            if self.flatten
            else x
        )

    def compute_output_shape(self, input_shape):
        if self.flatten:
            return (input_shape[0], self.output_size[0] * self.output_size[1] * input_shape[-1])
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "flatten": self.flatten}
