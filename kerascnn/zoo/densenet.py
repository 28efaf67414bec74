"""DenseNet-BC (Huang et al. 2017): dense blocks whose layers see every earlier feature map.

The architecture is data: layers per dense block for each depth (``DEPTHS``, the paper's
Table 1), the growth rate, the bottleneck width factor and the transitions' compression.
"""

from __future__ import annotations

import dataclasses

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "DEPTHS",
    "DenseNetOptions",
    "ROWS",
    "dense_layer",
    "densenet",
    "transition",
]

HUANG2017 = "Huang et al. 2017, Densely Connected Convolutional Networks (arXiv:1608.06993)"

# Table 1 (ImageNet, growth rate k = 32): layers in each of the four dense blocks.
DEPTHS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}


def dense_layer(b: common.Builder, x, growth_rate: int, bottleneck: int, dropout, name: str):
    """norm -> ReLU -> 1x1 conv (``bottleneck * growth_rate``) -> norm -> ReLU -> 3x3 conv
    (``growth_rate``), optional dropout; the new maps are concatenated to the input."""
    y = b.normalize(x, f"{name}_bn1")
    y = b.act(y, f"{name}_relu1")
    y = b.conv(y, bottleneck * growth_rate, 1, f"{name}_conv1")
    y = b.normalize(y, f"{name}_bn2")
    y = b.act(y, f"{name}_relu2")
    y = b.conv(y, growth_rate, 3, f"{name}_conv2")
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(b: common.Builder, x, filters: int, name: str):
    """norm -> ReLU -> 1x1 conv (compression) -> 2x2 average pool, stride 2."""
    x = b.normalize(x, f"{name}_bn")
    x = b.act(x, f"{name}_relu")
    x = b.conv(x, filters, 1, f"{name}_conv")
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


@dataclasses.dataclass(frozen=True)
class DenseNetOptions:
    """The layout options of :func:`densenet` (keywords of the builder).

    Args:
        stem_filters: filters of the stem conv (default ``2 * growth_rate``).
        bottleneck: the 1x1 conv of each layer produces ``bottleneck * growth_rate`` maps.
        compression: theta, the fraction of channels a transition keeps (0.5 for DenseNet-BC).
    """

    stem_filters: int | None = None
    bottleneck: int = 4
    compression: float = 0.5


@common.zoo_builder
def densenet(
    depth: int | None = 121,
    *,
    blocks=None,
    growth_rate: int = 32,
    block_dropout: float = 0.0,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
    **options,
) -> keras.Model:
    """DenseNet-BC for ImageNet (torchvision's layout and parameter counts).

    Stem: 7x7/2 conv with ``2 * growth_rate`` filters, norm, ReLU, 3x3/2 max pool; four
    dense blocks of ``DEPTHS[depth]`` layers separated by transitions that compress the
    channels by ``compression``; final norm and ReLU, global average pooling, linear
    classifier. DenseNet-121: 7,978,856 trainable parameters at 224x224x3 / 1000 classes.

    Args:
        depth: 121, 169, 201 or 264 (the paper's Table 1).
        blocks: layers per dense block, overriding ``depth`` (any number of blocks).
        growth_rate: k, the feature maps each layer adds (32 in the paper).
        block_dropout: dropout after each layer's 3x3 conv (the paper uses 0.2 without
            data augmentation).
        norm: the usual zoo hooks.
        options: the layout options of :class:`DenseNetOptions`: ``stem_filters``,
            ``bottleneck``, ``compression``.

    Returns:
        A functional ``keras.Model`` with layer names like ``stage2_block3_conv1``.
    """
    o = common.read_options(DenseNetOptions, options, "densenet")
    stem_filters, bottleneck, compression = o.stem_filters, o.bottleneck, o.compression
    if blocks is None:
        if depth not in DEPTHS:
            raise UserInputError(
                f"depth must be one of {', '.join(map(str, DEPTHS))} (or pass blocks=); "
                f"received depth={depth!r}"
            )
        blocks = DEPTHS[depth]
    else:
        blocks = common.check_int_list("blocks", blocks)
        depth = None
    common.check_int("growth_rate", growth_rate, 1)
    stem_filters = 2 * growth_rate if stem_filters is None else stem_filters
    common.check_int("stem_filters", stem_filters, 1)
    common.check_int("bottleneck", bottleneck, 1)
    common.check_float("compression", compression, 0.0, 1.0, high_inclusive=True)
    if compression == 0:
        raise UserInputError(
            f"compression must be a number in (0.0, 1.0]; received compression={compression!r}"
        )
    common.check_float("block_dropout", block_dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs((224, 224, 3), 4 * 2 ** (len(blocks) - 1))
    num_classes = shared.classes(1000)
    b = shared.builder(norm)

    x = b.conv_norm_act(inputs, stem_filters, 7, "stem", strides=2)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            x = dense_layer(b, x, growth_rate, bottleneck, block_dropout, f"stage{stage}_block{i}")
        if stage < len(blocks):
            x = transition(b, x, int(x.shape[-1] * compression), f"transition{stage}")
    x = b.normalize(x, "post_bn")
    x = b.act(x, "post_relu")
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation),
        f"densenet{depth or sum(blocks) * 2 + 5}",
    )


ROWS = (
    ModelInfo("densenet121", densenet, {"depth": 121},
              family="densenet", dataset="imagenet", paper=HUANG2017),
    ModelInfo("densenet169", densenet, {"depth": 169},
              family="densenet", dataset="imagenet", paper=HUANG2017),
    ModelInfo("densenet201", densenet, {"depth": 201},
              family="densenet", dataset="imagenet", paper=HUANG2017),
)  # fmt: skip
register_rows(*ROWS)
