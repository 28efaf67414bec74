"""Multiply-accumulate counting for conv, depthwise, separable and dense layers."""

from __future__ import annotations

import math

import keras

from kerascnn.layers.ode import ODEBlock

__all__ = [
    "count_flops",
]


def _ode_block_macs(block: ODEBlock) -> int:
    """An ODE block evaluates its function ``block.evaluations`` times per forward pass; the
    function's convolutions keep the block's resolution (stride 1, ``"same"`` padding, as
    an ODE function must preserve the state's shape), so each costs ``h * w`` times its
    kernel's size per evaluation (``kh * kw * cin / groups * cout``)."""
    _, h, w, _ = block.output.shape
    per_evaluation = sum(
        h * w * math.prod(layer.kernel.shape)
        for layer in block.func._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.Conv2D)
    )
    return block.evaluations * per_evaluation


def _layer_macs(layer) -> int:
    if isinstance(layer, ODEBlock):
        return _ode_block_macs(layer)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, _ = layer.output.shape
        k = math.prod(layer.kernel_size)
        return h * w * k * layer.input.shape[-1] * layer.depth_multiplier
    if isinstance(layer, keras.layers.SeparableConv2D):
        _, h, w, out = layer.output.shape
        cin = layer.input.shape[-1]
        # depthwise at the output resolution (strides live in the depthwise step) + pointwise
        return (
            h
            * w
            * (
                math.prod(layer.kernel_size) * cin * layer.depth_multiplier
                + cin * layer.depth_multiplier * out
            )
        )
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, out = layer.output.shape
        cin = layer.input.shape[-1]
        return h * w * math.prod(layer.kernel_size) * (cin // layer.groups) * out
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(layer.input.shape[1:-1]) if len(layer.input.shape) > 2 else 1
        return positions * layer.input.shape[-1] * layer.units
    return 0


def count_flops(model: keras.Model) -> int:
    """Multiply-accumulates per image of the conv, depthwise-conv and dense layers.

    Normalization, activation, pooling and additions are not counted (the convention of
    the papers' "FLOPs" tables: ResNet-50 about 4.1 G, VGG-16 about 15.5 G), nor are other
    element-wise products: the squeeze-and-excitation rescale, ConvNeXt's layer scale.
    Squeeze-and-excitation's 1x1 convolutions count at their 1x1 resolution, and a ``Dense``
    applied to a feature map (ConvNeXt's pointwise layers) once per position, which gives
    torchvision's figures: EfficientNet-B0 0.386 G, MobileNetV3-Large 0.217 G, DenseNet-121
    2.83 G, ConvNeXt-T 4.46 G, Inception v3 5.71 G. An ODE block
    counts its function's convolutions once per function evaluation. Nested models
    (e.g. a ``Sequential`` of augmentation layers and a zoo model) are counted recursively.
    The model must be built with a fixed input size.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
        else:
            total += _layer_macs(layer)
    return int(total)
