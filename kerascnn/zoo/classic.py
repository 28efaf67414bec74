"""LeNet-5 and AlexNet: the two networks that open every deep-CNN course."""

from __future__ import annotations

import keras

from kerascnn.layers.pooling import AdaptiveAveragePooling2D
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

LECUN1998 = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition"
KRIZHEVSKY2012 = (
    "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs (D2L ch. 8.1 layout)"
)

KRIZHEVSKY2014 = (
    "Krizhevsky 2014, One weird trick for parallelizing CNNs (arXiv:1404.5997; torchvision layout)"
)

__all__ = [
    "LAYOUTS",
    "ROWS",
    "alexnet",
    "lenet",
]


@common.zoo_builder
def lenet(
    *,
    activation: str = "tanh",
    subsampling: str = "avg",
    norm: common.NormSpec = None,
    shared: common.Shared,
) -> keras.Model:
    """LeNet-5 (LeCun et al. 1998): C1 conv 6@5x5, S2 2x2 pool, C3 conv 16@5x5, S4 pool,
    C5 conv 120@5x5 (a dense layer on 32x32 inputs), F6 dense 84, output dense.

    The original's connection table in C3, scaled tanh and RBF output are replaced by a
    full C3, ``tanh`` (or any ``activation``) and a linear classifier, as in modern
    re-implementations: 61,706 parameters at 32x32x1 and 10 classes.

    Args:
        activation: hidden activation (``"tanh"`` as the paper, ``"sigmoid"`` as D2L, ``"relu"``).
        subsampling: ``"avg"`` (as the paper) or ``"max"`` pooling in S2 and S4.
        norm: no normalization by default (the original has none); any ``norm=`` kind.
    """
    common.check_choice("subsampling", subsampling, ("avg", "max"))
    input_shape, inputs = shared.inputs((32, 32, 1), 32)
    num_classes = shared.classes(10)
    b = shared.builder(norm, activation=activation)
    pool = keras.layers.AveragePooling2D if subsampling == "avg" else keras.layers.MaxPooling2D
    x = b.conv(inputs, 6, 5, "c1_conv", padding="valid")
    x = b.act(b.normalize(x, "c1_bn"), "c1_act")
    x = pool(2, name="s2_pool")(x)
    x = b.conv(x, 16, 5, "c3_conv", padding="valid")
    x = b.act(b.normalize(x, "c3_bn"), "c3_act")
    x = pool(2, name="s4_pool")(x)
    x = b.conv(x, 120, 5, "c5_conv", padding="valid")
    x = b.act(b.normalize(x, "c5_bn"), "c5_act")

    def head(x):
        x = keras.layers.Flatten(name="flatten")(x)
        x = b.dense(x, 84, "f6_fc", activation=activation)
        return b.dense(x, num_classes, "head_fc", activation=shared.classifier_activation)

    return shared.finish(inputs, x, head, "lenet5")


# The two layouts of ``alexnet(layout=...)``: per convolution (filters, kernel, stride,
# padding, max pool after). "d2l": Dive into Deep Learning's single tower (the paper's two
# GPU towers merged: 96/256/384/384/256 filters). "torchvision": torchvision's AlexNet (and its
# ImageNet weights), after the "one weird trick" paper's single-tower variant
# (Krizhevsky 2014, arXiv:1404.5997): 64/192/384/256/256 filters, the first conv padded by 2.
LAYOUTS = {
    "d2l": [
        (96, 11, 4, "valid", True),
        (256, 5, 1, "same", True),
        (384, 3, 1, "same", False),
        (384, 3, 1, "same", False),
        (256, 3, 1, "same", True),
    ],
    "torchvision": [
        (64, 11, 4, 2, True),
        (192, 5, 1, "same", True),
        (384, 3, 1, "same", False),
        (256, 3, 1, "same", False),
        (256, 3, 1, "same", True),
    ],
}


@common.zoo_builder
def alexnet(
    *,
    layout: str = "d2l",
    dropout: float = 0.5,
    norm: common.NormSpec = None,
    shared: common.Shared,
) -> keras.Model:
    """AlexNet (Krizhevsky et al. 2012) as a single tower, in one of two layouts
    (``LAYOUTS``); the original's local response normalization is omitted in both.

    * ``"d2l"`` (``alexnet``): Dive into Deep Learning ch. 8.1: conv 96@11x11/4, 3x3/2 max
      pool, conv 256@5x5, pool, conv 384, 384, 256 @3x3, pool, flatten, dense 4096, dropout,
      dense 4096, dropout, dense classifier. 50,844,008 parameters at 224x224x3 with 1000
      classes (the paper's two GPU towers hold 96/256/384/384/256 filters in all).
    * ``"torchvision"`` (``alexnet_torchvision``): torchvision's AlexNet, the network its
      ImageNet weights were trained on: conv 64@11x11/4 (padded by 2), pool, conv 192@5x5,
      pool, conv 384, 256, 256 @3x3, pool, an adaptive average pool to 6x6, flattened
      (:class:`AdaptiveAveragePooling2D`, as torchvision: any input of 63x63 or more), then
      dropout, dense 4096, dropout, dense 4096, dense classifier (torchvision's order: dropout
      before each hidden dense layer). 61,100,840 parameters at 224x224x3 / 1000 classes.

    Args:
        layout: ``"d2l"`` or ``"torchvision"``.
        dropout: dropout rate of the two hidden dense layers.
        norm: the usual zoo hooks (no normalization by default).
    """
    common.check_choice("layout", layout, tuple(LAYOUTS))
    common.check_float("dropout", dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs((224, 224, 3), 67 if layout == "d2l" else 63)
    num_classes = shared.classes(1000)
    b = shared.builder(norm)
    x = inputs
    pool_index = 0
    for i, (filters, kernel, stride, padding, pool_after) in enumerate(LAYOUTS[layout], start=1):
        if isinstance(padding, int):
            x = keras.layers.ZeroPadding2D(padding, name=f"conv{i}_pad")(x)
            padding = "valid"
        x = b.conv(x, filters, kernel, f"conv{i}", strides=stride, padding=padding)
        x = b.act(b.normalize(x, f"bn{i}"), f"relu{i}")
        if pool_after:
            pool_index += 1
            common.require_spatial(x, 3, f"pool{pool_index}", input_shape)
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{pool_index}")(x)
    if layout == "d2l":
        head = common.fc_head(b, num_classes, shared.classifier_activation, 4096, dropout)
    else:

        def head(x):
            x = AdaptiveAveragePooling2D(6, flatten=True, name="avgpool")(x)
            for i in (1, 2):
                x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
                x = b.dense(x, 4096, f"fc{i}", activation="relu")
            return b.dense(x, num_classes, "head_fc", activation=shared.classifier_activation)

    return shared.finish(inputs, x, head, "alexnet")


ROWS = (
    ModelInfo("lenet5", lenet, {}, family="lenet", dataset="mnist", paper=LECUN1998),
    ModelInfo("alexnet", alexnet, {}, family="alexnet", dataset="imagenet", paper=KRIZHEVSKY2012),
    # torchvision's layout: its ImageNet weights convert into it
    ModelInfo("alexnet_torchvision", alexnet, {"layout": "torchvision"},
              family="alexnet", dataset="imagenet", paper=KRIZHEVSKY2014),
)  # fmt: skip
register_rows(*ROWS)
