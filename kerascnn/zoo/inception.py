"""GoogLeNet / Inception v1 with batch normalization: parallel branches, concatenated."""

from __future__ import annotations

import keras

from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "GOOGLENET",
    "LAYOUTS",
    "ROWS",
    "googlenet",
    "inception_module",
    "max_pool",
]

SZEGEDY2015 = "Szegedy et al. 2015, Going Deeper with Convolutions (arXiv:1409.4842)"

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; None = max pool.
GOOGLENET = [
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    None,
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    None,
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
]


# The two layouts of ``googlenet(layout=...)``: the paper's, and torchvision's (whose ImageNet
# weights were trained on it). torchvision keeps a 3x3 convolution in the "5x5" branch (a
# known slip it preserves for its weights), BatchNorm epsilon 1e-3, and PyTorch max pools with
# ``ceil_mode=True``, 2x2/2 after inception 4e.
LAYOUTS = {
    "paper": {"branch3_kernel": 5, "epsilon": common.BN_EPSILON, "ceil_mode": False, "pool4": 3},
    "torchvision": {"branch3_kernel": 3, "epsilon": 1e-3, "ceil_mode": True, "pool4": 2},
}


def max_pool(x, size: int, strides: int, name: str, ceil_mode: bool = False):
    """A max pool. ``ceil_mode=False``: Keras's ``padding="same"``. ``ceil_mode=True``:
    PyTorch's ``MaxPool2d(size, strides, ceil_mode=True)``: windows start at the top left,
    one more window covers the remainder at the bottom and right (padded with zeros, layer
    ``{name}_pad``, which equals PyTorch's -inf there because the inputs here follow a ReLU).
    The two agree on even sizes with 3x3/2 windows and differ on odd ones."""
    if not ceil_mode:
        return keras.layers.MaxPooling2D(size, strides=strides, padding="same", name=name)(x)
    pads = []
    for n in x.shape[1:3]:
        out = -(-(n - size) // strides) + 1
        if (out - 1) * strides >= n:  # PyTorch drops a window that would start past the end
            out -= 1
        pads.append((0, max((out - 1) * strides + size - n, 0)))
    if any(p for _, p in pads):
        x = keras.layers.ZeroPadding2D(tuple(pads), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(size, strides=strides, name=name)(x)


def inception_module(b: common.Builder, x, widths, name: str, branch3_kernel: int = 5):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5, or ``branch3_kernel``; 3x3 max
    pool -> 1x1), concatenated along channels. Each conv is followed by norm and ReLU."""
    c1, r3, c3, r5, c5, pool_proj = widths
    branch1 = b.conv_norm_act(x, c1, 1, f"{name}_b1")
    branch2 = b.conv_norm_act(x, r3, 1, f"{name}_b2", suffix="1")
    branch2 = b.conv_norm_act(branch2, c3, 3, f"{name}_b2", suffix="2")
    branch3 = b.conv_norm_act(x, r5, 1, f"{name}_b3", suffix="1")
    branch3 = b.conv_norm_act(branch3, c5, branch3_kernel, f"{name}_b3", suffix="2")
    branch4 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    branch4 = b.conv_norm_act(branch4, pool_proj, 1, f"{name}_b4")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])


@common.zoo_builder
def googlenet(
    *,
    layout: str = "paper",
    dropout: float = 0.4,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
) -> keras.Model:
    """GoogLeNet (Inception v1) with a norm layer after every convolution.

    Stem: 7x7/2 conv 64, 3x3/2 max pool, 1x1 conv 64, 3x3 conv 192, 3x3/2 max pool; then
    inception modules 3a-3b, pool, 4a-4e, pool, 5a-5b (the paper's Table 1), global average
    pooling, dropout, linear classifier. The auxiliary classifiers are omitted (they matter
    only for training without normalization; torchvision drops them from its pretrained
    model too).

    Two layouts (``LAYOUTS``):

    * ``"paper"`` (``googlenet``): the paper's 5x5 convolution in the third branch, BatchNorm
      epsilon 1e-5, 3x3/2 "same" max pools, dropout 0.4 (the paper's). 7,005,832
      parameters at 224x224x3 / 1000 classes.
    * ``"torchvision"`` (``googlenet_torchvision``): the network of torchvision's GoogLeNet
      and its ImageNet weights: a 3x3 convolution in that branch (torchvision's known
      deviation from the paper, kept for its weights), BatchNorm epsilon 1e-3, max pools
      with ``ceil_mode=True`` and 2x2/2 after inception 4e (:func:`max_pool`); with
      ``dropout=0.2`` (torchvision's). 6,624,904 parameters. torchvision's
      ``transform_input`` (off unless its weights are loaded) is not part of the network:
      a converted checkpoint's input standardization is its preprocessing
      (:mod:`kerascnn.zoo.torchvision_weights`).

    Args:
        layout: ``"paper"`` or ``"torchvision"``.
        dropout: before the classifier.
        norm: the usual zoo hooks (BatchNorm with the layout's epsilon by default).
    """
    common.check_choice("layout", layout, tuple(LAYOUTS))
    common.check_float("dropout", dropout, 0.0, 1.0)
    spec = LAYOUTS[layout]
    input_shape, inputs = shared.inputs((224, 224, 3), 32)
    num_classes = shared.classes(1000)
    b = shared.builder(norm, epsilon=spec["epsilon"])
    ceil = spec["ceil_mode"]

    x = b.conv_norm_act(inputs, 64, 7, "stem1", strides=2)
    x = max_pool(x, 3, 2, "stem1_pool", ceil)
    x = b.conv_norm_act(x, 64, 1, "stem2")
    x = b.conv_norm_act(x, 192, 3, "stem3")
    x = max_pool(x, 3, 2, "stem3_pool", ceil)
    pools = 0
    for entry in GOOGLENET:
        if entry is None:
            pools += 1
            size = spec["pool4"] if pools == 2 else 3
            x = max_pool(x, size, 2, f"pool{pools + 3}", ceil)
        else:
            x = inception_module(b, x, entry[1], f"inception{entry[0]}", spec["branch3_kernel"])
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation, dropout),
        "googlenet",
    )


ROWS = (
    ModelInfo("googlenet", googlenet, {},
              family="inception", dataset="imagenet", paper=SZEGEDY2015),
    # torchvision's layout and dropout: its ImageNet weights convert into it
    ModelInfo("googlenet_torchvision", googlenet, {"layout": "torchvision", "dropout": 0.2},
              family="inception", dataset="imagenet", paper=SZEGEDY2015),
)  # fmt: skip
register_rows(*ROWS)
