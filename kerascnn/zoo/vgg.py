"""VGG (Simonyan & Zisserman 2014) and the lecture's configurable VGG-like nets: one builder.

An architecture is a list of blocks, each a list of 3x3 conv widths followed by a 2x2 max
pool (torchvision's ``cfgs`` table, written as nested lists instead of 'M' markers).
"""

from __future__ import annotations

import dataclasses

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "CONFIGS",
    "ROWS",
    "VGGOptions",
    "vgg",
    "vgg_blocks",
]

SIMONYAN2014 = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks (arXiv:1409.1556)"

# Configurations A, B, D, E of the paper's Table 1: the conv widths of the five blocks.
CONFIGS = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}
HEADS = ("fc", "gap")


def vgg_blocks(num_blocks: int, convs_per_block, filters: int = 64, max_filters: int = 512):
    """The lecture's VGG-like layout: ``num_blocks`` blocks of ``convs_per_block`` convs
    (an int, or one int per block), filters doubling per block from ``filters``, capped at
    ``max_filters``."""
    common.check_int("num_blocks", num_blocks, 1)
    common.check_int("filters", filters, 1)
    common.check_int("max_filters", max_filters, 1)
    if isinstance(convs_per_block, int) and not isinstance(convs_per_block, bool):
        common.check_int("convs_per_block", convs_per_block, 1)
        convs_per_block = [convs_per_block] * num_blocks
    convs_per_block = common.check_int_list(
        "convs_per_block", convs_per_block, length=num_blocks, per="one per block, or one for all"
    )
    return [[min(filters * 2**i, max_filters)] * n for i, n in enumerate(convs_per_block)]


@dataclasses.dataclass(frozen=True)
class VGGOptions:
    """The options of :func:`vgg` for the lecture's layout (keywords of the builder),
    :func:`vgg_blocks`'s arguments.

    Args:
        num_blocks: number of blocks.
        convs_per_block: convolutions per block (an int, or one int per block).
        filters: filters of the first block, doubling per block...
        max_filters: ... up to this cap.
    """

    num_blocks: int | None = None
    convs_per_block: int | tuple[int, ...] | None = None
    filters: int = 64
    max_filters: int = 512


@common.zoo_builder
def vgg(
    depth: int | None = None,
    *,
    blocks=None,
    head: str | None = None,
    dropout: float = 0.5,
    hidden_units: int = 4096,
    norm: common.NormSpec = None,
    shared: common.Shared,
    **options,
) -> keras.Model:
    """VGG network, by paper depth or any block layout.

    Exactly one way to give the layout:
      * ``depth=11 | 13 | 16 | 19``: configurations A, B, D, E (default ``head="fc"``,
        224x224x3, 1000 classes: VGG-16 has 138,357,544 parameters);
      * ``num_blocks=..., convs_per_block=...``: the lecture's depth sweep (default
        ``head="gap"``, 32x32x3, 10 classes), filters doubling per block from ``filters``
        and capped at ``max_filters``;
      * ``blocks=[[64, 64], [128], ...]``: conv widths per block.

    Every block is its 3x3 "same" convolutions (ReLU), then a 2x2 max pool.

    Args:
        head: ``"fc"`` (flatten, two ``hidden_units`` dense layers with ReLU and dropout,
            classifier: the paper's) or ``"gap"`` (global average pooling + one linear layer).
        dropout: dropout rate in the FC head.
        norm: ``None`` (the paper, default) or ``"batch"`` etc. after every conv (VGG-BN;
            convs keep their bias, as in torchvision's ``vgg*_bn``).
        options: the lecture's layout, :class:`VGGOptions`: ``num_blocks``,
            ``convs_per_block``, ``filters``, ``max_filters``.
    """
    o = common.read_options(VGGOptions, options, "vgg")
    num_blocks, convs_per_block = o.num_blocks, o.convs_per_block
    given = [
        depth is not None,
        blocks is not None,
        num_blocks is not None or convs_per_block is not None,
    ]
    if sum(given) != 1:
        raise UserInputError(
            "Give the VGG layout exactly one way: depth= (11, 13, 16, 19), "
            "num_blocks= with convs_per_block=, or blocks=; "
            f"received depth={depth!r}, blocks={blocks!r}, num_blocks={num_blocks!r}, "
            f"convs_per_block={convs_per_block!r}"
        )
    paper = depth is not None
    if paper:
        common.check_choice("depth", depth, tuple(CONFIGS))
        blocks = CONFIGS[depth]
    elif blocks is None:
        if num_blocks is None or convs_per_block is None:
            raise UserInputError(
                "num_blocks and convs_per_block go together; received "
                f"num_blocks={num_blocks!r}, convs_per_block={convs_per_block!r}"
            )
        blocks = vgg_blocks(num_blocks, convs_per_block, o.filters, o.max_filters)
    else:
        if not isinstance(blocks, (list, tuple)) or not blocks:
            raise UserInputError(
                "blocks must be a non-empty list of blocks, each a non-empty list of conv widths "
                f"(integers >= 1); received blocks={blocks!r}"
            )
        for i, blk in enumerate(blocks):
            common.check_int_list(f"blocks[{i}]", blk)
    head = head or ("fc" if paper else "gap")
    common.check_choice("head", head, HEADS)
    common.check_float("dropout", dropout, 0.0, 1.0)
    common.check_int("hidden_units", hidden_units, 1)
    input_shape, inputs = shared.inputs((224, 224, 3) if paper else (32, 32, 3), 2 ** len(blocks))
    num_classes = shared.classes(1000 if paper else 10)
    b = shared.builder(norm)

    x = inputs
    for i, widths in enumerate(blocks, start=1):
        for j, f in enumerate(widths, start=1):
            x = b.conv(x, f, 3, f"block{i}_conv{j}", use_bias=True)
            x = b.normalize(x, f"block{i}_bn{j}")
            x = b.act(x, f"block{i}_relu{j}")
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    if head == "fc":
        top = common.fc_head(b, num_classes, shared.classifier_activation, hidden_units, dropout)
    else:

        def top(x):
            return b.classifier(x, num_classes, shared.classifier_activation)

    layout = "-".join(str(len(w)) for w in blocks)
    return shared.finish(inputs, x, top, f"vgg{depth}" if paper else f"vgg_{len(blocks)}x{layout}")


# fmt: off
ROWS = (
    ModelInfo("vgg11", vgg, {"depth": 11}, family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg11_bn", vgg, {"depth": 11, "norm": "batch"},
              family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg13", vgg, {"depth": 13}, family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg13_bn", vgg, {"depth": 13, "norm": "batch"},
              family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg16", vgg, {"depth": 16}, family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg16_bn", vgg, {"depth": 16, "norm": "batch"},
              family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg19", vgg, {"depth": 19}, family="vgg", dataset="imagenet", paper=SIMONYAN2014),
    ModelInfo("vgg19_bn", vgg, {"depth": 19, "norm": "batch"},
              family="vgg", dataset="imagenet", paper=SIMONYAN2014),
)
# fmt: on
register_rows(*ROWS)
