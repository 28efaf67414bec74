"""GoogLeNet / Inception v1 with batch normalization: parallel branches, concatenated."""

from __future__ import annotations

import keras

from kerascnn.zoo import common
from kerascnn.zoo.registry import register_variant

__all__ = [
    "GOOGLENET",
    "googlenet",
    "inception_module",
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


def inception_module(b: common.Builder, x, widths, name: str):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1),
    concatenated along channels. Each conv is followed by norm and ReLU."""
    c1, r3, c3, r5, c5, pool_proj = widths
    branch1 = b.conv_norm_act(x, c1, 1, f"{name}_b1")
    branch2 = b.conv_norm_act(x, r3, 1, f"{name}_b2", suffix="1")
    branch2 = b.conv_norm_act(branch2, c3, 3, f"{name}_b2", suffix="2")
    branch3 = b.conv_norm_act(x, r5, 1, f"{name}_b3", suffix="1")
    branch3 = b.conv_norm_act(branch3, c5, 5, f"{name}_b3", suffix="2")
    branch4 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    branch4 = b.conv_norm_act(branch4, pool_proj, 1, f"{name}_b4")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])


@common.zoo_builder
def googlenet(
    *,
    dropout: float = 0.4,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
) -> keras.Model:
    """GoogLeNet (Inception v1) with a norm layer after every convolution.

    Stem: 7x7/2 conv 64, 3x3/2 max pool, 1x1 conv 64, 3x3 conv 192, 3x3/2 max pool; then
    inception modules 3a-3b, pool, 4a-4e, pool, 5a-5b (the paper's Table 1, with the 5x5
    branch as in the paper; torchvision uses 3x3 there), global average pooling, dropout
    0.4, linear classifier. The auxiliary classifiers are omitted (they matter only for
    training without normalization). About 7.0M parameters at 224x224x3 / 1000 classes.

    Args:
        dropout: before the classifier.
        norm: the usual zoo hooks.
    """
    common.check_float("dropout", dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs((224, 224, 3), 32)
    num_classes = shared.classes(1000)
    b = shared.builder(norm)

    x = b.conv_norm_act(inputs, 64, 7, "stem1", strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem1_pool")(x)
    x = b.conv_norm_act(x, 64, 1, "stem2")
    x = b.conv_norm_act(x, 192, 3, "stem3")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem3_pool")(x)
    pools = 0
    for entry in GOOGLENET:
        if entry is None:
            pools += 1
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{pools + 3}")(x)
        else:
            x = inception_module(b, x, entry[1], f"inception{entry[0]}")
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation, dropout),
        "googlenet",
    )


googlenet_variant = register_variant(
    "googlenet", googlenet, family="inception", paper=SZEGEDY2015, dataset="imagenet",
    feature_strides=(2, 4, 8, 16, 32),
    doc="GoogLeNet with batch normalization, ``googlenet()``.",
)  # fmt: skip
