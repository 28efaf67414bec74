"""MobileNet v1 (depthwise separable convs) and v2 (inverted residuals)."""

from __future__ import annotations

import keras

from kerascnn.zoo import common
from kerascnn.zoo.registry import register

HOWARD2017 = "Howard et al. 2017, MobileNets (arXiv:1704.04861)"
SANDLER2018 = (
    "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (arXiv:1801.04381)"
)

# v1 (Table 1): (output filters, stride) of the 13 depthwise separable blocks.
V1_BLOCKS = (
    [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    + [(512, 1)] * 5
    + [(1024, 2), (1024, 1)]
)
# v2 (Table 2): expansion t, output channels c, repeats n, first stride s.
V2_BLOCKS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90 % of ``value``
    (the rule of the reference TensorFlow and torchvision implementations)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def mobilenet(
    version: int = 2,
    *,
    width_multiplier: float = 1.0,
    input_shape=None,
    num_classes: int | None = None,
    dropout: float | None = None,
    classifier_activation=None,
    norm: common.NormSpec = "batch",
    l2: float | None = None,
    kernel_regularizer=None,
    name: str | None = None,
) -> keras.Model:
    """MobileNet v1 or v2 (torchvision's layout and channel rounding).

    v1: 3x3 stride-2 stem with 32 filters, 13 depthwise separable blocks (depthwise 3x3 +
    norm + ReLU, pointwise 1x1 + norm + ReLU), global pooling, dropout, classifier.
    v2: stem, 17 inverted residual blocks (1x1 expansion + ReLU6, depthwise 3x3 + ReLU6,
    linear 1x1 projection; identity shortcut when the shape allows), 1x1 conv to 1280,
    pooling, dropout 0.2, classifier: 3,504,872 parameters at 224x224x3 / 1000 classes.

    Args:
        version: 1 or 2.
        width_multiplier: alpha, scales every layer's channels (v2 keeps the last 1280
            unless alpha > 1).
        dropout: before the classifier (default 0.001 for v1 as Keras, 0.2 for v2).
        norm, l2, kernel_regularizer: the usual zoo hooks.
    """
    common.check_choice("version", version, (1, 2))
    common.check_float("width_multiplier", width_multiplier, 0.01, 10.0, high_inclusive=True)
    dropout = (0.001 if version == 1 else 0.2) if dropout is None else dropout
    common.check_float("dropout", dropout, 0.0, 1.0)
    common.check_classifier_activation(classifier_activation)
    input_shape, inputs = common.model_inputs(input_shape, (224, 224, 3))
    common.minimum_input(input_shape, 32)
    num_classes = common.resolve_num_classes(num_classes, 1000)
    b = common.Builder.from_args(norm, l2, kernel_regularizer)
    alpha = width_multiplier

    if version == 1:
        x = b.conv_norm_act(inputs, make_divisible(32 * alpha), 3, "stem", strides=2)
        for i, (filters, stride) in enumerate(V1_BLOCKS, start=1):
            name_i = f"block{i}"
            x = b.depthwise(x, 3, f"{name_i}_dw", strides=stride)
            x = b.act(b.normalize(x, f"{name_i}_dw_bn"), f"{name_i}_dw_relu")
            x = b.conv_norm_act(x, make_divisible(filters * alpha), 1, f"{name_i}_pw")
    else:
        relu6 = "relu6"
        x = b.conv_norm_act(
            inputs, make_divisible(32 * alpha), 3, "stem", strides=2, activation=relu6
        )
        index = 0
        for t, c, n, s in V2_BLOCKS:
            out = make_divisible(c * alpha)
            for j in range(n):
                index += 1
                name_i = f"block{index}"
                stride = s if j == 0 else 1
                y = x
                if t != 1:
                    y = b.conv_norm_act(y, x.shape[-1] * t, 1, f"{name_i}_expand", activation=relu6)
                y = b.depthwise(y, 3, f"{name_i}_dw", strides=stride)
                y = b.act(b.normalize(y, f"{name_i}_dw_bn"), f"{name_i}_dw_relu6", relu6)
                y = b.conv_norm_act(y, out, 1, f"{name_i}_project", activation=False)
                if stride == 1 and x.shape[-1] == out:
                    y = keras.layers.Add(name=f"{name_i}_add")([x, y])
                x = y
        last = make_divisible(1280 * max(1.0, alpha))
        x = b.conv_norm_act(x, last, 1, "last", activation=relu6)
    outputs = b.classifier(x, num_classes, classifier_activation, dropout)
    return keras.Model(inputs, outputs, name=name or f"mobilenet_v{version}")


def _variant(version, paper):
    name = f"mobilenet_v{version}"

    @register(name, family="mobilenet", input_shape=(224, 224, 3), num_classes=1000, paper=paper)
    def build(**overrides):
        return mobilenet(**{"version": version, "name": name, **overrides})

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"MobileNet v{version}, ``mobilenet(version={version})``."
    return build


mobilenet_v1 = _variant(1, HOWARD2017)
mobilenet_v2 = _variant(2, SANDLER2018)
