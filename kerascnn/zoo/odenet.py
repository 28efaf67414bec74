"""ODE-Net (Chen et al. 2018) and the ResNet built from the same residual function.

Chen et al.'s MNIST ODE-Net: a down-sampling stem (3x3 conv, then two 4x4 stride-2 convs,
with group norm and ReLU), one ODE block on the 4x-down-sampled feature map, group norm,
ReLU, global average pooling and a linear classifier. ``block="resnet"`` replaces the ODE
block with ``steps`` residual blocks ``h + f_k(h)`` whose functions have the same architecture
but separate weights (no time channel): the network the ODE block is the continuous limit of,
with ``steps`` times the parameters.
"""

from __future__ import annotations

import keras

from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "ROWS",
    "odenet",
]

CHEN2018 = "Chen et al. 2018, Neural Ordinary Differential Equations (arXiv:1806.07366)"
BLOCKS = ("ode", "resnet")


@common.zoo_builder
def odenet(
    *,
    filters: int = 64,
    steps: int = 6,
    method: str = "rk4",
    block: str = "ode",
    hidden: int | None = None,
    norm_groups: int = 32,
    zero_init: bool = False,
    shared: common.Shared,
) -> keras.Model:
    """ODE-Net, or the ResNet with the same residual function.

    Args:
        filters: channels of the stem and of the ODE state.
        steps: solver steps of the ODE block (``block="ode"``) or number of residual blocks
            (``block="resnet"``).
        method: ``"euler"``, ``"midpoint"`` or ``"rk4"`` (``block="ode"`` only).
        block: ``"ode"`` (one function ``f(h, t)`` integrated over ``[0, 1]``) or
            ``"resnet"`` (``steps`` blocks ``h + f_k(h)``, each with its own weights).
        hidden: hidden width inside ``f`` (default ``filters``); widen it to match the
            parameters of a ResNet with the same number of blocks.
        norm_groups: group-norm groups (reduced so that each group has at least two channels).
        zero_init: start every function at ``f = 0`` (identity blocks).
    """
    from kerascnn.layers.ode import METHODS, ODEBlock, ODEFunction

    common.check_int("filters", filters, 1)
    common.check_int("steps", steps, 1)
    common.check_choice("method", method, METHODS)
    common.check_choice("block", block, BLOCKS)
    if hidden is not None:
        common.check_int("hidden", hidden, 1)
    common.check_int("norm_groups", norm_groups, 1)
    input_shape, inputs = shared.inputs((32, 32, 3), 4)
    num_classes = shared.classes(10)
    b = shared.builder(
        lambda n: keras.layers.GroupNormalization(
            groups=_groups(norm_groups, filters), epsilon=1e-5, name=n
        )
    )
    regularizer = b.regularizer

    x = b.conv(inputs, filters, 3, "stem_conv1")
    x = b.normalize(x, "stem_gn1")
    x = b.act(x, "stem_relu1")
    for i in (2, 3):
        x = keras.layers.ZeroPadding2D(1, name=f"stem_conv{i}_pad")(x)
        x = b.conv(x, filters, 4, f"stem_conv{i}", strides=2, padding="valid")
        if i == 2:
            x = b.normalize(x, f"stem_gn{i}")
            x = b.act(x, f"stem_relu{i}")

    def func(name, time_conditioned):
        return ODEFunction(
            filters=hidden, norm_groups=norm_groups, time_conditioned=time_conditioned,
            zero_init=zero_init, kernel_regularizer=regularizer, name=name,
        )  # fmt: skip

    if block == "ode":
        x = ODEBlock(func("ode_func", True), steps=steps, method=method, name="ode_block")(x)
    else:
        for k in range(1, steps + 1):
            y = func(f"block{k}_func", False)(x)
            x = keras.layers.Add(name=f"block{k}_add")([x, y])
    x = b.normalize(x, "post_gn")
    x = b.act(x, "post_relu")
    return shared.finish(
        inputs,
        x,
        lambda f: b.classifier(f, num_classes, shared.classifier_activation),
        f"odenet_{method}{steps}" if block == "ode" else f"odenet_resnet{steps}",
    )


def _groups(norm_groups: int, channels: int) -> int:
    from kerascnn.layers.ode import norm_groups_for

    return norm_groups_for(norm_groups, channels)


# Chen et al.'s ODE-Net with its defaults (64 filters, 6 RK4 steps), on CIFAR-10.
ROWS = (ModelInfo("odenet", odenet, {}, family="odenet", dataset="cifar10", paper=CHEN2018),)
register_rows(*ROWS)
