"""ResNet v1 and v2, basic and bottleneck blocks, ResNeXt and plain nets: one builder.

The architecture is data: a layout (stem, per-stage filters, blocks per stage, strides),
a block type and a shortcut type. ``resnet(depth=56)`` looks up the CIFAR layout for depth
56 and calls the one builder; ``resnet50()`` is ``resnet(depth=50)``.
"""

from __future__ import annotations

import dataclasses
import sys

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "IMAGENET_DEPTHS",
    "ROWS",
    "ResNetOptions",
    "resnet",
]

# ImageNet layouts (He et al. 2016, Table 1): blocks per stage and the block type.
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
IMAGENET_FILTERS = (64, 128, 256, 512)
CIFAR_FILTERS = (16, 32, 64)
EXPANSION = {"basic": 1, "bottleneck": 4}
LAYOUTS = ("cifar", "imagenet")
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B")


def _resolve_layout(depth, layout, block, blocks, filters):
    """Return ``(layout, block, blocks per stage, filters per stage)``."""
    if layout is None:
        layout = "imagenet" if depth in IMAGENET_DEPTHS and blocks is None else "cifar"
    common.check_choice("layout", layout, LAYOUTS)
    if block is not None:
        common.check_choice("block", block, BLOCKS)
    if blocks is not None:
        blocks = common.check_int_list("blocks", blocks)
        block = block or "basic"
    elif layout == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise UserInputError(
                f"depth must be one of {sorted(IMAGENET_DEPTHS)} for the ImageNet layout; "
                f"received depth={depth!r}"
            )
        default_block, blocks = IMAGENET_DEPTHS[depth]
        block = block or default_block
    else:
        block = block or "basic"
        per_block = 2 if block == "basic" else 3
        common.check_int("depth", depth, 1)
        if (depth - 2) % (3 * per_block) or depth < 2 + 3 * per_block:
            examples = ", ".join(str(3 * per_block * n + 2) for n in (1, 2, 3, 6, 9, 18)) + ", ..."
            raise UserInputError(
                f"depth must be {3 * per_block}n+2 for CIFAR {block} blocks ({examples}); "
                f"received depth={depth}"
            )
        n = (depth - 2) // (3 * per_block)
        blocks = (n, n, n)
    if filters is None:
        filters = IMAGENET_FILTERS if layout == "imagenet" else CIFAR_FILTERS
    filters = common.check_int_list("filters", filters, length=len(blocks), per="one per stage")
    return layout, block, blocks, filters


def _shortcut(b: common.Builder, x, out_channels, strides, kind, name):
    """Identity, option A (zero-pad) or option B (1x1 conv + norm) shortcut."""
    from kerascnn.layers import ZeroPadShortcut

    if strides == 1 and x.shape[-1] == out_channels:
        return x
    if kind == "A":
        return ZeroPadShortcut(strides, out_channels, name=f"{name}_shortcut")(x)
    x = b.conv(x, out_channels, 1, f"{name}_shortcut_conv", strides=strides)
    return b.normalize(x, f"{name}_shortcut_bn")


def _branch(b: common.Builder, x, block, filters, strides, groups, width, version, zero_init, name):
    """The residual function F(x) of one block (without the final activation in v1)."""
    if block == "basic":
        convs = [(filters, 3, strides, 1), (filters, 3, 1, 1)]
    else:
        convs = [
            (width, 1, 1, 1),
            (width, 3, strides, groups),
            (filters * EXPANSION[block], 1, 1, 1),
        ]
    for i, (f, k, s, g) in enumerate(convs, start=1):
        last = i == len(convs)
        if version == 2 and i > 1:  # pre-activation: norm -> relu -> conv
            x = b.normalize(x, f"{name}_bn{i}")
            x = b.act(x, f"{name}_relu{i}")
        # v2 starts a block as the identity with a zero last conv (v1: a zero last norm scale)
        zeros = zero_init and last and version == 2
        maker = dataclasses.replace(b, kernel_initializer="zeros") if zeros else b
        x = maker.conv(x, f, k, f"{name}_conv{i}", strides=s, groups=g)
        if version == 1:
            x = b.normalize(x, f"{name}_bn{i}", zero_init=zero_init and last)
            if not last:
                x = b.act(x, f"{name}_relu{i}")
    return x


def _block(
    b,
    x,
    *,
    block,
    filters,
    strides,
    groups,
    width,
    version,
    shortcut,
    residual,
    zero_init,
    drop_rate,
    name,
):
    out_channels = filters * EXPANSION[block]
    if version == 2:
        pre = b.normalize(x, f"{name}_bn1")
        pre = b.act(pre, f"{name}_relu1")
        # He et al. 2016b: a projection shortcut takes the pre-activated input.
        needs_projection = strides != 1 or x.shape[-1] != out_channels
        short_in = pre if needs_projection and shortcut == "B" else x
        y = _branch(b, pre, block, filters, strides, groups, width, 2, zero_init, name)
    else:
        short_in = x
        y = _branch(b, x, block, filters, strides, groups, width, 1, zero_init, name)
    if residual:
        if drop_rate > 0:
            from kerascnn.layers import StochasticDepth

            y = StochasticDepth(drop_rate, name=f"{name}_drop_path")(y)
        y = keras.layers.Add(name=f"{name}_add")(
            [_shortcut(b, short_in, out_channels, strides, shortcut, name), y]
        )
    if version == 1:
        y = b.act(y, f"{name}_out")
    return y


@dataclasses.dataclass(frozen=True)
class ResNetOptions:
    """The layout options of :func:`resnet` (keywords of the builder).

    Args:
        blocks: blocks per stage, overriding ``depth``.
        filters: filters per stage (bottleneck width before expansion).
        stem_filters: filters of the stem convolution (default: ``filters[0]`` for CIFAR, 64).
        residual: ``False`` drops every shortcut: the "plain" nets of He et al. Figure 1.
        groups: cardinality of the grouped 3x3 conv of bottleneck blocks (ResNeXt).
        base_width: ResNeXt bottleneck width per group at 64 filters (``width =
            filters * base_width / 64 * groups``); 64 with ``groups=1`` is plain ResNet.
        zero_init_residual: initialize the last norm scale of every residual branch to zero
            (v1) or the last conv of the branch to zero (v2), so each block starts as identity.
        drop_path_rate: stochastic depth (Huang et al. 2016), rate of the last block; block
            ``i`` of ``N`` drops its branch with rate ``drop_path_rate * i / N``.
    """

    blocks: tuple[int, ...] | None = None
    filters: tuple[int, ...] | None = None
    stem_filters: int | None = None
    residual: bool = True
    groups: int = 1
    base_width: int = 64
    zero_init_residual: bool = False
    drop_path_rate: float = 0.0


@common.zoo_builder
def resnet(
    depth: int | None = None,
    *,
    version: int = 1,
    block: str | None = None,
    layout: str | None = None,
    shortcut: str | None = None,
    dropout: float = 0.0,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
    **options,
) -> keras.Model:
    """ResNet (v1 or v2), ResNeXt or plain network.

    How the layout is chosen: depths 18, 34, 50, 101, 152 (and 200) give the ImageNet layout
    (7x7 stride-2 stem + 3x3 max pool, four stages of 64/128/256/512 filters, 224x224x3 input,
    1000 classes); every other depth gives the CIFAR layout (3x3 stem with 16 filters, three
    stages of 16/32/64 filters, depth = 6n+2 with basic blocks or 9n+2 with bottleneck blocks,
    32x32x3 input, 10 classes). ``layout="cifar"`` or ``"imagenet"`` overrides the choice
    (``resnet(depth=50, layout="cifar", block="bottleneck")`` is a CIFAR ResNet-50... of 9n+2
    form only if depth allows), and ``blocks=`` / ``filters=`` give any custom layout.

    Args:
        depth: number of weighted layers (convolutions + the classifier).
        version: 1 (post-activation, He et al. 2016) or 2 (pre-activation, He et al. 2016b).
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1, 3x3, 1x1 with 4x
            expansion). Default: the paper's choice for the layout and depth.
        layout: ``"cifar"`` or ``"imagenet"``; see above.
        shortcut: ``"A"`` (parameter-free zero padding, the paper's CIFAR choice and the
            default of the CIFAR layout) or ``"B"`` (1x1 conv + norm projection when the
            shape changes, the ImageNet default).
        dropout: dropout rate before the classifier.
        norm: ``"batch"`` (default), ``"sync_batch"``, ``"layer"``, ``"channel_layer"``,
            ``"instance"``, ``"group"``, ``None`` or a callable ``name -> layer``.
        options: the layout options of :class:`ResNetOptions`: ``blocks``, ``filters``,
            ``stem_filters``, ``residual``, ``groups``, ``base_width``,
            ``zero_init_residual``, ``drop_path_rate``.

    Returns:
        A functional ``keras.Model`` with layer names like ``stage2_block3_conv1``.

    Example:
        >>> model = resnet(depth=56)                  # CIFAR ResNet-56, option A
        >>> sum(int(w.numpy().size) for w in model.trainable_weights)
        853018
    """
    o = common.read_options(ResNetOptions, options, "resnet")
    blocks, filters, groups, base_width = o.blocks, o.filters, o.groups, o.base_width
    residual, drop_path_rate = o.residual, o.drop_path_rate
    common.check_choice("version", version, (1, 2))
    if depth is None and blocks is None:
        raise UserInputError(
            "resnet needs depth= (e.g. 20, 56, 50) or blocks= (blocks per stage); received "
            "depth=None and blocks=None"
        )
    layout, block, blocks, filters = _resolve_layout(depth, layout, block, blocks, filters)
    shortcut = shortcut or ("A" if layout == "cifar" else "B")
    common.check_choice("shortcut", shortcut, SHORTCUTS)
    common.check_int("groups", groups, 1)
    common.check_int("base_width", base_width, 1)
    if groups > 1 and block != "bottleneck":
        raise UserInputError(
            f"groups > 1 (ResNeXt) needs block='bottleneck'; received block={block!r}, groups={groups}"
        )
    common.check_float("drop_path_rate", drop_path_rate, 0.0, 1.0)
    common.check_float("dropout", dropout, 0.0, 1.0)
    if drop_path_rate and not residual:
        raise UserInputError(
            "drop_path_rate needs residual=True: a plain net has no branch to drop; received "
            f"drop_path_rate={drop_path_rate!r} with residual={residual!r}"
        )

    default_shape = (224, 224, 3) if layout == "imagenet" else (32, 32, 3)
    num_classes = shared.classes(1000 if layout == "imagenet" else 10)
    b = shared.builder(norm)

    stem_filters = o.stem_filters
    if stem_filters is None:
        stem_filters = 64 if layout == "imagenet" else filters[0]
    common.check_int("stem_filters", stem_filters, 1)
    downsample = (4 if layout == "imagenet" else 1) * 2 ** (len(blocks) - 1)
    input_shape, inputs = shared.inputs(default_shape, downsample)

    if layout == "imagenet":
        x = b.conv(inputs, stem_filters, 7, "stem_conv", strides=2)
        if version == 1:
            x = b.normalize(x, "stem_bn")
            x = b.act(x, "stem_relu")
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    else:
        x = b.conv(inputs, stem_filters, 3, "stem_conv")
        if version == 1:
            x = b.normalize(x, "stem_bn")
            x = b.act(x, "stem_relu")

    total_blocks = sum(blocks)
    index = 0
    for stage, (n, f) in enumerate(zip(blocks, filters, strict=True), start=1):
        width = int(f * base_width / 64) * groups
        for i in range(1, n + 1):
            index += 1
            x = _block(
                b,
                x,
                block=block,
                filters=f,
                strides=2 if (i == 1 and stage > 1) else 1,
                groups=groups,
                width=width,
                version=version,
                shortcut=shortcut,
                residual=residual,
                zero_init=o.zero_init_residual,
                drop_rate=drop_path_rate * index / total_blocks,
                name=f"stage{stage}_block{i}",
            )
    if version == 2:
        x = b.normalize(x, "post_bn")
        x = b.act(x, "post_relu")
    # Keras walks the functional graph recursively (keras/src/ops/function.py); kerascnn
    # raises the limit on import, and deeper custom layouts raise it further here.
    needed = 40 * sum(blocks) + 2000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    kind = ("resnext" if groups > 1 else "resnet") if residual else "plain"
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation, dropout),
        f"{kind}{depth if depth else sum(blocks)}" + ("_v2" if version == 2 else ""),
    )


HE2016 = "He et al. 2016, Deep Residual Learning (arXiv:1512.03385)"
HE2016B = "He et al. 2016, Identity Mappings in Deep Residual Networks (arXiv:1603.05027)"
XIE2017 = "Xie et al. 2017, Aggregated Residual Transformations (arXiv:1611.05431)"


# The 1000+-layer variants start with zero-initialized residual branches (Goyal et al. 2017):
# with BatchNormalization in inference mode (identity at initialization) every block roughly
# doubles the activations' variance, so beyond about 120 blocks an untrained network
# overflows float32 and predicts NaN; it trains as well. ``zero_init_residual=False``
# restores the papers' initialization.
CIFAR = "resnet-cifar"  # the default recipe of the CIFAR-10 rows (kerascnn.training.RECIPES)

# fmt: off
ROWS = (
    ModelInfo("resnet20", resnet, {"depth": 20},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet32", resnet, {"depth": 32},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet44", resnet, {"depth": 44},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet56", resnet, {"depth": 56},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet110", resnet, {"depth": 110},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet1202", resnet, {"depth": 1202, "zero_init_residual": True},
              family="resnet", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("resnet18", resnet, {"depth": 18},
              family="resnet", dataset="imagenet", paper=HE2016),
    ModelInfo("resnet34", resnet, {"depth": 34},
              family="resnet", dataset="imagenet", paper=HE2016),
    ModelInfo("resnet50", resnet, {"depth": 50},
              family="resnet", dataset="imagenet", paper=HE2016),
    ModelInfo("resnet101", resnet, {"depth": 101},
              family="resnet", dataset="imagenet", paper=HE2016),
    ModelInfo("resnet152", resnet, {"depth": 152},
              family="resnet", dataset="imagenet", paper=HE2016),
    ModelInfo("plain20", resnet, {"depth": 20, "residual": False},
              family="plain", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("plain32", resnet, {"depth": 32, "residual": False},
              family="plain", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("plain44", resnet, {"depth": 44, "residual": False},
              family="plain", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("plain56", resnet, {"depth": 56, "residual": False},
              family="plain", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("plain110", resnet, {"depth": 110, "residual": False},
              family="plain", dataset="cifar10", paper=HE2016, recipe=CIFAR),
    ModelInfo("preact_resnet20", resnet, {"depth": 20, "version": 2},
              family="preact_resnet", dataset="cifar10", paper=HE2016B, recipe=CIFAR),
    ModelInfo("preact_resnet56", resnet, {"depth": 56, "version": 2},
              family="preact_resnet", dataset="cifar10", paper=HE2016B, recipe=CIFAR),
    ModelInfo("preact_resnet110", resnet, {"depth": 110, "version": 2},
              family="preact_resnet", dataset="cifar10", paper=HE2016B, recipe=CIFAR),
    ModelInfo("preact_resnet164", resnet,
              {"depth": 164, "version": 2, "block": "bottleneck", "shortcut": "B"},
              family="preact_resnet", dataset="cifar10", paper=HE2016B, recipe=CIFAR),
    ModelInfo("preact_resnet1001", resnet,
              {"depth": 1001, "version": 2, "block": "bottleneck", "shortcut": "B",
               "zero_init_residual": True},
              family="preact_resnet", dataset="cifar10", paper=HE2016B, recipe=CIFAR),
    ModelInfo("preact_resnet18", resnet, {"depth": 18, "version": 2},
              family="preact_resnet", dataset="imagenet", paper=HE2016B),
    ModelInfo("preact_resnet34", resnet, {"depth": 34, "version": 2},
              family="preact_resnet", dataset="imagenet", paper=HE2016B),
    ModelInfo("preact_resnet50", resnet, {"depth": 50, "version": 2},
              family="preact_resnet", dataset="imagenet", paper=HE2016B),
    ModelInfo("preact_resnet101", resnet, {"depth": 101, "version": 2},
              family="preact_resnet", dataset="imagenet", paper=HE2016B),
    ModelInfo("preact_resnet152", resnet, {"depth": 152, "version": 2},
              family="preact_resnet", dataset="imagenet", paper=HE2016B),
    # ResNeXt-29 on CIFAR (Xie et al. sec. 5.3): bottleneck widths 64/128/256 per group of 64
    ModelInfo("resnext29_8x64d", resnet,
              {"depth": 29, "block": "bottleneck", "filters": (64, 128, 256), "stem_filters": 64,
               "base_width": 64, "shortcut": "B", "groups": 8},
              family="resnext", dataset="cifar10", paper=XIE2017),
    # ResNeXt-29 on CIFAR (Xie et al. sec. 5.3): bottleneck widths 64/128/256 per group of 64
    ModelInfo("resnext29_16x64d", resnet,
              {"depth": 29, "block": "bottleneck", "filters": (64, 128, 256), "stem_filters": 64,
               "base_width": 64, "shortcut": "B", "groups": 16},
              family="resnext", dataset="cifar10", paper=XIE2017),
    ModelInfo("resnext50_32x4d", resnet, {"depth": 50, "groups": 32, "base_width": 4},
              family="resnext", dataset="imagenet", paper=XIE2017),
    ModelInfo("resnext101_32x8d", resnet, {"depth": 101, "groups": 32, "base_width": 8},
              family="resnext", dataset="imagenet", paper=XIE2017),
)
# fmt: on
register_rows(*ROWS)
