"""EfficientNet B0-B7 (Tan & Le 2019): MBConv blocks with squeeze-and-excitation and swish,
scaled from the B0 table by compound width / depth / resolution coefficients.

The architecture is data: ``B0_STAGES`` is the paper's Table 1 and ``SIZES`` holds each
size's width and depth coefficients, resolution and dropout. Channel counts are rounded
to multiples of 8 and repeats rounded up, as in the reference TensorFlow implementation and
torchvision, so the parameter counts equal torchvision's.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.mobilenet import make_divisible
from kerascnn.zoo.registry import ModelInfo, register_rows

TAN2019 = (
    "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks "
    "(arXiv:1905.11946)"
)

__all__ = [
    "B0_STAGES",
    "EfficientNetOptions",
    "ROWS",
    "SIZES",
    "efficientnet",
    "mbconv",
    "scaled_stages",
]

# B0 (Table 1): expansion ratio, kernel size, stride of the stage's first block, output
# channels, repeats; one row per stage (stem: 3x3/2 conv with 32 filters; head: 1x1 conv to
# 4 x the last stage's channels = 1280).
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
B0_STEM = 32
HEAD_EXPANSION = 4

# Compound scaling: (width coefficient, depth coefficient, resolution, dropout), as the
# reference implementation's ``efficientnet_params`` and torchvision.
SIZES = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
# torchvision's B5-B7 use BatchNorm eps 1e-3 and PyTorch momentum 0.01 (Keras 0.99), the
# reference implementation's values; B0-B4 use PyTorch's defaults (1e-5, 0.1).
NORM_DEFAULTS = {
    "b5": {"epsilon": 1e-3, "momentum": 0.99},
    "b6": {"epsilon": 1e-3, "momentum": 0.99},
    "b7": {"epsilon": 1e-3, "momentum": 0.99},
}


def scaled_stages(
    width: float, depth: float, stages=B0_STAGES
) -> list[tuple[int, int, int, int, int]]:
    """``stages`` (default ``B0_STAGES``) scaled: channels ``make_divisible(c * width, 8)``,
    repeats ``ceil(n * depth)``."""
    return [
        (t, k, s, make_divisible(c * width), int(math.ceil(n * depth))) for t, k, s, c, n in stages
    ]


def _check_stages(stages):
    """``stages`` as a tuple of ``(expansion, kernel, stride, filters, repeats)`` rows."""
    if not isinstance(stages, (list, tuple)) or not stages:
        raise UserInputError(
            "stages must be a non-empty list of (expansion, kernel, stride, filters, repeats) "
            f"rows of integers >= 1, as B0_STAGES; received stages={stages!r}"
        )
    return tuple(
        common.check_int_list(
            f"stages[{i}]", row, length=5, per="expansion, kernel, stride, filters, repeats"
        )
        for i, row in enumerate(stages)
    )


def mbconv(
    in_channels: int,
    *,
    expansion: int,
    kernel_size: int,
    strides: int,
    filters: int,
    se_ratio: float,
) -> common.InvertedResidual:
    """The layout of one MBConv block (for :func:`kerascnn.zoo.common.inverted_residual`):
    1x1 expansion to ``expansion`` x the ``in_channels`` + norm + the builder's activation
    (swish; left out when ``expansion`` is 1), k x k depthwise + norm + swish,
    squeeze-and-excitation (squeezing to ``se_ratio`` x the block's *input* channels, swish,
    sigmoid gate), linear 1x1 projection + norm; identity shortcut with stochastic depth when
    stride is 1 and the channels match."""
    return common.InvertedResidual(
        expanded=in_channels * expansion, filters=filters, kernel_size=kernel_size,
        strides=strides,
        se_channels=max(1, int(in_channels * se_ratio)) if se_ratio > 0 else 0,
        se_activation="swish",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class EfficientNetOptions:
    """The layout options of :func:`efficientnet` (keywords of the builder).

    Args:
        width_coefficient, depth_coefficient: override the size's coefficients.
        stages: a custom base table of ``(expansion, kernel, stride, filters, repeats)`` rows
            instead of ``B0_STAGES`` (then scaled by the coefficients).
        se_ratio: squeeze-and-excitation bottleneck as a fraction of each block's input
            channels (0.25 in the paper); 0 removes the SE modules.
    """

    width_coefficient: float | None = None
    depth_coefficient: float | None = None
    stages: tuple | None = None
    se_ratio: float = 0.25


@common.zoo_builder
def efficientnet(
    size: str = "b0",
    *,
    drop_path_rate: float = 0.2,
    dropout: float | None = None,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
    **options,
) -> keras.Model:
    """EfficientNet (torchvision's layout, rounding and parameter counts).

    Stem 3x3/2 conv + norm + swish; seven stages of MBConv blocks (``B0_STAGES`` scaled by
    the width and depth coefficients); 1x1 conv to 4x the last stage's channels + norm +
    swish; global average pooling, dropout, linear classifier. B0 at 224x224x3 / 1000
    classes: 5,288,548 trainable parameters, about 0.39 G multiply-adds.

    Args:
        size: ``"b0"`` ... ``"b7"``: the width / depth coefficients, default input
            resolution and dropout of that size (``variant=`` is its deprecated name).
        drop_path_rate: stochastic depth (0.2 in the paper and torchvision); block ``i``
            (0-based) of ``N`` drops its residual branch with rate ``drop_path_rate * i / N``,
            as the reference implementation. Blocks without an identity shortcut have none.
        dropout: before the classifier (the size's, 0.2 to 0.5, by default).
        norm: the usual zoo hooks.
        options: the layout options of :class:`EfficientNetOptions`: ``width_coefficient``,
            ``depth_coefficient``, ``stages``, ``se_ratio``.

    Returns:
        A functional ``keras.Model`` with layer names like ``stage2_block1_expand_conv``.
    """
    if "variant" in options:
        warnings.warn(
            "efficientnet(variant=...) is deprecated; use efficientnet(size=...)",
            DeprecationWarning,
            stacklevel=3,
        )
        size = options.pop("variant")
    o = common.read_options(EfficientNetOptions, options, "efficientnet")
    common.check_choice("size", size, tuple(SIZES))
    width, depth, resolution, default_dropout = SIZES[size]
    if o.width_coefficient is not None:
        width = common.check_float("width_coefficient", o.width_coefficient, 0.1, 10.0, True)
    if o.depth_coefficient is not None:
        depth = common.check_float("depth_coefficient", o.depth_coefficient, 0.1, 10.0, True)
    stages = B0_STAGES if o.stages is None else _check_stages(o.stages)
    se_ratio = common.check_float("se_ratio", o.se_ratio, 0.0, 1.0, high_inclusive=True)
    common.check_float("drop_path_rate", drop_path_rate, 0.0, 1.0)
    dropout = default_dropout if dropout is None else dropout
    common.check_float("dropout", dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs(
        (resolution, resolution, 3), 2 * math.prod(row[2] for row in stages)
    )
    num_classes = shared.classes(1000)
    b = shared.builder(norm, activation="swish", **NORM_DEFAULTS.get(size, {}))

    stages = scaled_stages(width, depth, stages)
    total_blocks = sum(n for *_, n in stages)
    x = b.conv_norm_act(inputs, make_divisible(B0_STEM * width), 3, "stem", strides=2)
    index = 0
    for stage, (t, k, s, c, n) in enumerate(stages, start=1):
        for i in range(1, n + 1):
            block = mbconv(
                x.shape[-1], expansion=t, kernel_size=k, strides=s if i == 1 else 1, filters=c,
                se_ratio=se_ratio,
            )  # fmt: skip
            rate = drop_path_rate * index / total_blocks
            x = common.inverted_residual(b, x, block, drop_rate=rate, name=f"stage{stage}_block{i}")
            index += 1
    x = b.conv_norm_act(x, HEAD_EXPANSION * x.shape[-1], 1, "top")
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation, dropout),
        f"efficientnet_{size}",
    )


# The default input of each size is its resolution (``SIZES``).
ROWS = (
    ModelInfo("efficientnet_b0", efficientnet, {"size": "b0"},
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b1", efficientnet, {"size": "b1"}, input_shape=(240, 240, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b2", efficientnet, {"size": "b2"}, input_shape=(260, 260, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b3", efficientnet, {"size": "b3"}, input_shape=(300, 300, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b4", efficientnet, {"size": "b4"}, input_shape=(380, 380, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b5", efficientnet, {"size": "b5"}, input_shape=(456, 456, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b6", efficientnet, {"size": "b6"}, input_shape=(528, 528, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
    ModelInfo("efficientnet_b7", efficientnet, {"size": "b7"}, input_shape=(600, 600, 3),
              family="efficientnet", dataset="imagenet", paper=TAN2019),
)  # fmt: skip
register_rows(*ROWS)
