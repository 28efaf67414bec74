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

__all__ = ["FeatureInfo", "feature_extractor", "feature_info"]

# Layers that end the trunk: what follows is the classifier.
_HEAD_LAYERS = (
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


def _trunk(model: keras.Model) -> list:
    """The nodes every input-to-output path passes through, in topological order.

    In a topological order, a node is on every path exactly when no edge jumps over it
    (from a node before it to a node after it)."""
    # Keras's depth of a node is its distance to the outputs: an edge always goes from a
    # greater depth to a smaller one, so decreasing depth is a topological order.
    nodes = [n for depth in sorted(model._nodes_by_depth, reverse=True)
             for n in model._nodes_by_depth[depth]]  # fmt: skip
    position = {id(n): i for i, n in enumerate(nodes)}
    furthest = [i for i in range(len(nodes))]  # furthest successor of each node
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


def _strides(model: keras.Model) -> dict[int, int]:
    """The stride of every node's output: the product of the layers' strides on its way."""
    strides: dict[int, int] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            before = max((strides[id(p)] for p in node.parent_nodes), default=1)
            strides[id(node)] = before * _layer_stride(node.operation)
    return strides


def _stage_nodes(model: keras.Model) -> list[tuple[int, object]]:
    """``(stride, node)`` of the last trunk tensor at each stride."""
    if not isinstance(model, keras.Model) or not getattr(model, "_nodes_by_depth", None):
        raise ValueError(
            f"model={getattr(model, 'name', model)!r} is not a functional Keras model; stage "
            "outputs are found from the layer graph of a functional model (every kerascnn.zoo "
            "model is one)"
        )
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(
            f"stage outputs need a model with one image input (batch, height, width, "
            f"channels); model={model.name!r} has inputs {[t.shape for t in model.inputs]}"
        )
    strides = _strides(model)
    last: dict[int, object] = {}
    for node in _trunk(model):
        layer = node.operation
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, _HEAD_LAYERS) or len(node.output_tensors[0].shape) != 4:
            break
        if isinstance(layer, keras.layers.ZeroPadding2D):
            continue
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
        raise ValueError(
            f"stages must be a non-empty list of {', '.join(available)} (the stage outputs of "
            f"{model.name!r}); received stages={stages!r}"
        )
    outputs = {s: found[int(s[len("stage") :])].output_tensors[0] for s in stages}
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")
