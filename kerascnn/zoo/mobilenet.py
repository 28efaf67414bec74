"""MobileNet v1 (depthwise separable convs), v2 (inverted residuals) and v3 (inverted
residuals with squeeze-and-excitation and hard-swish): one builder."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

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

__all__ = [
    "ROWS",
    "make_divisible",
    "mobilenet",
]
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
# v3 (Howard et al. 2019, Tables 1 and 2; torchvision's layout): kernel, expansion (hidden)
# channels, output channels, squeeze-and-excitation, activation ("RE" ReLU, "HS"
# hard-swish), stride; one row per block. Stem: 3x3/2 conv with 16 filters + hard-swish.
# Head: 1x1 conv to 6 x the last block's channels, pooling, a 1x1 (dense) layer to
# ``V3_LAST`` channels + hard-swish, dropout 0.2, classifier.
V3_BLOCKS = {
    "large": [
        (3, 16, 16, False, "RE", 1),
        (3, 64, 24, False, "RE", 2),
        (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2),
        (5, 120, 40, True, "RE", 1),
        (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2),
        (3, 200, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 480, 112, True, "HS", 1),
        (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2),
        (5, 960, 160, True, "HS", 1),
        (5, 960, 160, True, "HS", 1),
    ],
    "small": [
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    ],
}
V3_LAST = {"large": 1280, "small": 1024}
V3_ACTIVATIONS = {"RE": "relu", "HS": "hard_swish"}
SIZES = ("large", "small")


def _stage_block_names(widths: Sequence[int]) -> list[str]:
    """``stage{s}_block{b}`` of each block, from the blocks' output widths in the paper's table.

    A stage is a run of consecutive blocks with the same output width (``b`` counts from 1
    within it): v2's table rows (t, c, n, s), and the grouping of timm's ``arch_def`` for
    MobileNet v1, v2 and v3. The names are those of every other family of the zoo (ResNet,
    DenseNet, ConvNeXt, EfficientNet), so a block is addressed the same way in all of them.
    ``widths`` are the table's, before the width multiplier: rounding scaled widths could
    merge or split stages, and a block's name must not depend on ``width_multiplier``.
    """
    names, stage, block, previous = [], 0, 0, None
    for width in widths:
        stage, block = (stage, block + 1) if width == previous else (stage + 1, 1)
        names.append(f"stage{stage}_block{block}")
        previous = width
    return names


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90 % of ``value``
    (the rule of the reference TensorFlow and torchvision implementations)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@common.zoo_builder
def mobilenet(
    version: int = 2,
    *,
    size: str | None = None,
    width_multiplier: float = 1.0,
    dropout: float | None = None,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
) -> keras.Model:
    """MobileNet v1, v2 or v3 (torchvision's layout and channel rounding).

    v1: 3x3 stride-2 stem with 32 filters, 13 depthwise separable blocks (depthwise 3x3 +
    norm + ReLU, pointwise 1x1 + norm + ReLU), global pooling, dropout, classifier.
    v2: stem, 17 inverted residual blocks (1x1 expansion + ReLU6, depthwise 3x3 + ReLU6,
    linear 1x1 projection; identity shortcut when the shape allows), 1x1 conv to 1280,
    pooling, dropout 0.2, classifier: 3,504,872 parameters at 224x224x3 / 1000 classes.
    v3: 3x3/2 stem + hard-swish, the blocks of ``V3_BLOCKS[size]`` (v2's inverted residual
    with a k x k depthwise conv, ReLU or hard-swish, and in some blocks squeeze-and-excitation
    with a hard-sigmoid gate), 1x1 conv + hard-swish, pooling, dense 1280 (large) or 1024
    (small) + hard-swish, dropout 0.2, classifier; norm eps 1e-3 and momentum 0.99 as
    torchvision: 5,483,032 (large) and 2,542,856 (small) parameters.

    Args:
        version: 1, 2 or 3.
        size: v3 only, ``"large"`` (default) or ``"small"``.
        width_multiplier: alpha, scales every layer's channels (v2 keeps the last 1280
            unless alpha > 1; v3 scales its last layers too).
        dropout: before the classifier (default 0.001 for v1 as Keras, 0.2 for v2 and v3).
        norm: the usual zoo hooks.

    Returns:
        A functional ``keras.Model`` with layer names like ``stage2_block1_expand_conv``
        (v2, v3) or ``stage4_block6_dw`` (v1): a stage is a run of blocks of one output
        width in the paper's table (:func:`_stage_block_names`).
    """
    common.check_choice("version", version, (1, 2, 3))
    if version == 3:
        size = common.check_choice("size", "large" if size is None else size, SIZES)
    elif size is not None:
        raise UserInputError(
            f"size applies to version=3 only ('large' or 'small'); received size={size!r} "
            f"with version={version}"
        )
    common.check_float("width_multiplier", width_multiplier, 0.01, 10.0, high_inclusive=True)
    dropout = (0.001 if version == 1 else 0.2) if dropout is None else dropout
    common.check_float("dropout", dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs((224, 224, 3), 32)
    num_classes = shared.classes(1000)
    alpha = width_multiplier
    if version == 3:
        b = shared.builder(norm, activation="hard_swish", epsilon=1e-3, momentum=0.99)
        x = _v3_features(b, inputs, size, alpha)
        last = make_divisible(V3_LAST[size] * alpha)

        def v3_head(x):
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
            x = b.dense(x, last, "head_fc1")
            x = b.act(x, "head_hswish")
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
            return b.dense(x, num_classes, "head_fc", activation=shared.classifier_activation)

        return shared.finish(inputs, x, v3_head, f"mobilenet_v3_{size}")
    b = shared.builder(norm)

    if version == 1:
        x = b.conv_norm_act(inputs, make_divisible(32 * alpha), 3, "stem", strides=2)
        names = _stage_block_names([filters for filters, _ in V1_BLOCKS])
        for name_i, (filters, stride) in zip(names, V1_BLOCKS, strict=True):
            x = b.depthwise(x, 3, f"{name_i}_dw", strides=stride)
            x = b.act(b.normalize(x, f"{name_i}_dw_bn"), f"{name_i}_dw_relu")
            x = b.conv_norm_act(x, make_divisible(filters * alpha), 1, f"{name_i}_pw")
    else:
        relu6 = "relu6"
        x = b.conv_norm_act(
            inputs, make_divisible(32 * alpha), 3, "stem", strides=2, activation=relu6
        )
        # one (t, c, stride) per block: the first of a row strides s, the others 1
        rows = [(t, c, s if j == 0 else 1) for t, c, n, s in V2_BLOCKS for j in range(n)]
        names = _stage_block_names([c for _, c, _ in rows])
        for name, (t, c, stride) in zip(names, rows, strict=True):
            block = common.InvertedResidual(
                expanded=x.shape[-1] * t, filters=make_divisible(c * alpha), strides=stride,
                activation=relu6,
            )  # fmt: skip
            x = common.inverted_residual(b, x, block, name=name)
        last = make_divisible(1280 * max(1.0, alpha))
        x = b.conv_norm_act(x, last, 1, "last", activation=relu6)
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation, dropout),
        f"mobilenet_v{version}",
    )


def _v3_features(b: common.Builder, inputs, size: str, alpha: float):
    """MobileNet v3's stem, inverted residual blocks and last 1x1 conv."""
    x = b.conv_norm_act(
        inputs, make_divisible(16 * alpha), 3, "stem", strides=2, activation="hard_swish"
    )
    rows = V3_BLOCKS[size]
    names = _stage_block_names([c for _, _, c, *_ in rows])
    for name, (k, hidden, c, se, act, stride) in zip(names, rows, strict=True):
        hidden = make_divisible(hidden * alpha)
        block = common.InvertedResidual(
            expanded=hidden, filters=make_divisible(c * alpha), kernel_size=k, strides=stride,
            activation=V3_ACTIVATIONS[act], se_channels=make_divisible(hidden // 4) if se else 0,
            se_gate="hard_sigmoid",
        )  # fmt: skip
        x = common.inverted_residual(b, x, block, name=name)
    return b.conv_norm_act(x, 6 * x.shape[-1], 1, "last", activation="hard_swish")


HOWARD2019 = "Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244)"

ROWS = (
    ModelInfo("mobilenet_v1", mobilenet, {"version": 1},
              family="mobilenet", dataset="imagenet", paper=HOWARD2017),
    ModelInfo("mobilenet_v2", mobilenet, {"version": 2},
              family="mobilenet", dataset="imagenet", paper=SANDLER2018),
    ModelInfo("mobilenet_v3_large", mobilenet, {"version": 3, "size": "large"},
              family="mobilenet", dataset="imagenet", paper=HOWARD2019),
    ModelInfo("mobilenet_v3_small", mobilenet, {"version": 3, "size": "small"},
              family="mobilenet", dataset="imagenet", paper=HOWARD2019),
)  # fmt: skip
register_rows(*ROWS)
