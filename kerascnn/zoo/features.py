"""Stage outputs of any functional CNN: the feature pyramid of a backbone.

A *stage output* is the last feature map at each resolution on the network's trunk, as
timm's ``features_only`` and keras-hub's ``pyramid_outputs`` define them. They are found from
the graph, not from layer names, so every family of the zoo (and any functional model,
also one loaded from a ``.keras`` file) has them:

* a tensor is on the trunk when every path from the input to the output passes through it
  (the output of a residual block, a transition, a concatenation; not a layer inside a
  branch);
* its stride is the product of the ``strides`` of the layers before it (Inception's valid
  convolutions give 299 -> 149 -> 73 -> 35 -> 17 -> 8 pixels: strides 2, 4, 8, 16, 32,
  whatever the input size);
* stage ``k`` is the last trunk tensor of the ``k``-th stride, in order of increasing stride:
  the input of each down-sampling layer, and the backbone's output for the last stage.
  Padding layers are skipped, and the search stops at the classifier (a global pooling,
  ``Flatten`` or any tensor that is not a 4-D feature map). In inverted-residual networks
  (MobileNet v2/v3, EfficientNet) the input of a stride-2 depthwise convolution is the
  block's expansion (timm's ``feature_location="expansion"``); in ConvNeXt it is the
  normalized map that enters the down-sampling convolution.

>>> backbone = kerascnn.zoo.create("resnet56", include_top=False)
>>> [(f.name, f.stride, f.channels) for f in feature_info(backbone)]
[('stage1', 1, 16), ('stage2', 2, 32), ('stage3', 4, 64)]
>>> features = feature_extractor(backbone)           # a keras.Model with a dict of outputs
"""

from __future__ import annotations

import dataclasses

import keras

from kerascnn.errors import UserInputError

__all__ = [
    "Block",
    "FeatureInfo",
    "HEAD_LAYERS",
    "blocks",
    "feature_extractor",
    "feature_info",
    "node_strides",
    "trunk_nodes",
]

#: Layers that end the trunk: what follows is the classifier.
HEAD_LAYERS = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
)


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One stage output: its name (``stage1`` ...), stride, channels and the layer that
    computes it."""

    name: str
    stride: int
    channels: int
    layer: str


def _topological(model: keras.Model) -> list:
    """The model's nodes in a topological order (inputs first)."""
    # Keras's depth of a node is its distance to the outputs: an edge always goes from a
    # greater depth to a smaller one, so decreasing depth is a topological order.
    return [n for depth in sorted(model._nodes_by_depth, reverse=True)
            for n in model._nodes_by_depth[depth]]  # fmt: skip


def trunk_nodes(model: keras.Model) -> list:
    """The nodes every input-to-output path passes through (the *trunk*), in topological
    order: the input, the outputs of residual blocks, transitions, concatenations, the
    classifier's layers; not a layer inside a branch.

    In a topological order, a node is on every path exactly when no edge jumps over it
    (from a node before it to a node after it)."""
    nodes = _topological(model)
    position = {id(n): i for i, n in enumerate(nodes)}
    furthest = list(range(len(nodes)))  # furthest successor of each node
    for i, node in enumerate(nodes):
        for parent in node.parent_nodes:
            p = position[id(parent)]
            furthest[p] = max(furthest[p], i)
    trunk, reach = [], 0
    for i, node in enumerate(nodes):
        if reach <= i:
            trunk.append(node)
        reach = max(reach, furthest[i])
    return trunk


def _layer_stride(layer) -> int:
    strides = getattr(layer, "strides", None)
    if strides is None:
        return 1
    return int(strides[0] if isinstance(strides, (tuple, list)) else strides)


def node_strides(model: keras.Model) -> dict[int, int]:
    """The stride of every node's output (``{id(node): stride}``): the product of the
    layers' strides on its way from the input."""
    strides: dict[int, int] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            before = max((strides[id(p)] for p in node.parent_nodes), default=1)
            strides[id(node)] = before * _layer_stride(node.operation)
    return strides


def _check_image_model(model, what: str) -> None:
    if not isinstance(model, keras.Model) or not getattr(model, "_nodes_by_depth", None):
        raise UserInputError(
            f"model={getattr(model, 'name', model)!r} is not a functional Keras model; {what} "
            "are found from the layer graph of a functional model (every kerascnn.zoo model "
            "is one)"
        )
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise UserInputError(
            f"{what} need a model with one image input (batch, height, width, channels); "
            f"model={model.name!r} has inputs {[t.shape for t in model.inputs]}"
        )


def _feature_trunk(model: keras.Model) -> list:
    """The trunk nodes of the feature maps: after the input, before the classifier (the
    first global pooling, ``Flatten`` or tensor that is not 4-D)."""
    nodes = []
    for node in trunk_nodes(model):
        layer = node.operation
        if isinstance(layer, HEAD_LAYERS) or len(node.output_tensors[0].shape) != 4:
            break
        nodes.append(node)
    return nodes


def _stage_nodes(model: keras.Model) -> list[tuple[int, object]]:
    """``(stride, node)`` of the last trunk tensor at each stride."""
    _check_image_model(model, "stage outputs")
    strides = node_strides(model)
    last: dict[int, object] = {}
    for node in _feature_trunk(model):
        if not isinstance(node.operation, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)):
            last[strides[id(node)]] = node
    return sorted(last.items(), key=lambda item: item[0])


def feature_info(model: keras.Model) -> list[FeatureInfo]:
    """The stage outputs of ``model`` (see the module's docstring), shallowest first."""
    return [
        FeatureInfo(
            name=f"stage{k}",
            stride=stride,
            channels=int(node.output_tensors[0].shape[-1]),
            layer=node.operation.name,
        )
        for k, (stride, node) in enumerate(_stage_nodes(model), start=1)
    ]


def feature_extractor(model: keras.Model, stages=None, name: str | None = None) -> keras.Model:
    """A model sharing ``model``'s layers and weights that returns the stage outputs as a
    dict ``{"stage1": ..., "stageN": ...}`` (``stages``: the names to keep, default all).

    Use it as the backbone of a new head (detection, segmentation, a probe per stage), or to
    look inside a trained classifier: the classifier's own layers are left out.
    """
    found = {k: node for k, (_, node) in enumerate(_stage_nodes(model), start=1)}
    available = [f"stage{k}" for k in found]
    if stages is None:
        stages = available
    stages = list(stages)
    unknown = [s for s in stages if s not in available]
    if unknown or not stages:
        raise UserInputError(
            f"stages must be a non-empty list of {', '.join(available)} (the stage outputs of "
            f"{model.name!r}); received stages={stages!r}"
        )
    outputs = {s: found[int(s[len("stage") :])].output_tensors[0] for s in stages}
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")


# --------------------------------------------------------------------------- blocks
@dataclasses.dataclass(frozen=True)
class Block:
    """One block of a residual network, or of a plain network read like its residual twin
    (:func:`blocks`).

    Attributes:
        name: ``stage{s}_block{b}``: ``s`` counts the strides of the blocks' outputs (in
            increasing order), ``b`` the blocks of that stride.
        stride: the stride of the block's output.
        downsampling: the block lowers the resolution (its output's stride is larger than
            its input's).
        layers: the block's layers, in order (the residual branch, the shortcut and the
            ``Add``, or a plain net's layers of the same convolutions).
        add: the ``Add`` layer joining the residual branch and the shortcut (None in a
            plain net).
        shortcut: the position of the shortcut among the ``Add``'s inputs (None in a
            plain net).
        convolutions: the convolutions of the residual branch (of a plain net: of the block).
    """

    name: str
    stride: int
    downsampling: bool
    layers: tuple = dataclasses.field(repr=False)
    add: object = dataclasses.field(default=None, repr=False)
    shortcut: int | None = None
    convolutions: int = 0


_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def _ancestors(node, stop_ids: set, within: set) -> set:
    """ids of ``node`` and the nodes before it inside ``within``, not walking past
    ``stop_ids``."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if id(current) in seen or id(current) in stop_ids or id(current) not in within:
            continue
        seen.add(id(current))
        todo.extend(current.parent_nodes)
    return seen


def _residual_segments(model: keras.Model) -> tuple[list, int]:
    """``([(input node, segment nodes, add node, shortcut index, branch convs)], stem
    convolutions)`` of the blocks of a residual net: a block is the part of the graph
    between two consecutive trunk tensors that contains an ``Add`` of two branches."""
    order = _topological(model)
    position = {id(n): i for i, n in enumerate(order)}
    trunk = _feature_trunk(model)
    found, stem_convs = [], None
    for start, end in zip(trunk, trunk[1:], strict=False):
        segment = order[position[id(start)] + 1 : position[id(end)] + 1]
        adds = [n for n in segment if isinstance(n.operation, keras.layers.Add)]
        if len(adds) != 1 or len(adds[0].parent_nodes) != 2:
            continue
        if stem_convs is None:
            before = order[: position[id(start)] + 1]
            stem_convs = sum(isinstance(n.operation, _CONVOLUTIONS) for n in before)
        add = adds[0]
        within = {id(n) for n in segment}
        # the shortcut is the input of the Add with the fewer layers since the block's input
        sides = [_ancestors(parent, {id(start)}, within) for parent in add.parent_nodes]
        shortcut = min(range(2), key=lambda i: len(sides[i]))
        branch = sides[1 - shortcut] - sides[shortcut]
        convs = sum(isinstance(n.operation, _CONVOLUTIONS) for n in segment if id(n) in branch)
        found.append((start, segment, add, shortcut, convs))
    return found, stem_convs or 0


def _plain_segments(model: keras.Model, stem_convs: int, sizes: list[int]) -> list:
    """The blocks of a plain net (a chain, no ``Add``) with the convolutions of its residual
    twin: after ``stem_convs`` convolutions, groups of ``sizes[k]`` convolutions; a block
    runs from the group's first layer (padding included) to the layer before the next
    group's first layer (the last block: to the last feature map)."""
    trunk = _feature_trunk(model)
    convs = [i for i, n in enumerate(trunk) if isinstance(n.operation, _CONVOLUTIONS)]
    if len(convs) != stem_convs + sum(sizes):
        raise UserInputError(
            f"model={model.name!r} has {len(convs)} convolutions on its trunk, but its residual "
            f"twin like= has {stem_convs} in the stem and {sum(sizes)} in its blocks; pass as "
            "like= the same builder's model with residual=True"
        )
    firsts, k = [], stem_convs
    for size in sizes:
        first = convs[k]
        while first > 1 and isinstance(trunk[first - 1].operation, keras.layers.ZeroPadding2D):
            first -= 1
        firsts.append(first)
        k += size
    ends = [f - 1 for f in firsts[1:]] + [len(trunk) - 1]
    return [
        (trunk[first - 1], trunk[first : end + 1], None, None, size)
        for first, end, size in zip(firsts, ends, sizes, strict=True)
    ]


def blocks(model: keras.Model, like: keras.Model | None = None) -> list[Block]:
    """The blocks of a residual network, found from its graph (not its layer names).

    A block is the part of the graph between two consecutive trunk tensors (see
    :func:`trunk_nodes`) that contains an ``Add``: the residual branch, the shortcut (the
    ``Add``'s input with fewer layers since the block's input) and the addition. What
    follows the addition (the block's output activation) is not part of it.

    A plain network has no ``Add``; its blocks are those of its residual twin ``like`` (the
    same builder with ``residual=True``): after as many stem convolutions, the same numbers
    of convolutions per block, each block ending before the next one's first layer (its
    output activation included). Without ``like`` a plain net has no blocks.
    """
    _check_image_model(model, "blocks")
    segments, stem = _residual_segments(model)
    if not segments and like is not None:
        _check_image_model(like, "blocks")
        twin, stem = _residual_segments(like)
        segments = _plain_segments(model, stem, [convs for *_, convs in twin])
    strides = node_strides(model)
    out_strides = sorted({strides[id(segment[-1])] for _, segment, *_ in segments})
    found, counts = [], {}
    for start, segment, add, shortcut, convs in segments:
        stride = strides[id(segment[-1])]
        stage = out_strides.index(stride) + 1
        counts[stage] = counts.get(stage, 0) + 1
        found.append(
            Block(
                name=f"stage{stage}_block{counts[stage]}",
                stride=stride,
                downsampling=stride > strides[id(start)],
                layers=tuple(n.operation for n in segment),
                add=None if add is None else add.operation,
                shortcut=shortcut,
                convolutions=convs,
            )
        )
    return found
