"""Inception v3 (Szegedy et al. 2016): factorized convolutions, grid-size reduction modules
and an optional auxiliary classifier.

The architecture is data: the stem is a list of convolutions and pools, each inception
module a list of branches (``MODULES``), each branch an optional pool followed by
convolutions and an optional final split into parallel (1 x n) and (n x 1) convolutions.

The pool branch's 3x3/1 average pool pads with zeros and divides by 9 at the borders too
(PyTorch's ``count_include_pad=True``, TensorFlow's original ``slim`` ``avg_pool2d`` with
``SAME`` padding over a zero-padded input): it is ``ZeroPadding2D(1)`` then a "valid" pool, not
Keras's ``padding="same"`` pool, which averages only the real pixels. The paper does not say;
torchvision's and the original's weights were trained with zeros counted, so this is the
network those weights compute (``kerascnn.zoo.torchvision_weights`` loads them).
"""

from __future__ import annotations

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

SZEGEDY2016 = (
    "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision "
    "(arXiv:1512.00567)"
)

__all__ = [
    "MODULES",
    "ROWS",
    "STEM",
    "inception_block",
    "inception_v3",
]

# A convolution: (filters, kernel, stride, padding); kernels may be (height, width).
# Stem (Figure/Table 1 of the paper, torchvision's Conv2d_1a ... Conv2d_4a); "max" = 3x3/2
# max pool without padding.
STEM = [
    (32, 3, 2, "valid"),
    (32, 3, 1, "valid"),
    (64, 3, 1, "same"),
    "max",
    (80, 1, 1, "valid"),
    (192, 3, 1, "valid"),
    "max",
]


def _branch(convs, pool=None, split=None):
    return {"pool": pool, "convs": convs, "split": split}


def module_a(pool_filters: int):
    """35x35 module (Figure 5): 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; avg pool -> 1x1."""
    return [
        _branch([(64, 1)]),
        _branch([(48, 1), (64, 5)]),
        _branch([(64, 1), (96, 3), (96, 3)]),
        _branch([(pool_filters, 1)], pool="avg"),
    ]


def module_b():
    """35x35 -> 17x17 grid reduction (Figure 10): 3x3/2; 1x1 -> 3x3 -> 3x3/2; max pool/2."""
    return [
        _branch([(384, 3, 2, "valid")]),
        _branch([(64, 1), (96, 3), (96, 3, 2, "valid")]),
        _branch([], pool="max"),
    ]


def module_c(c7: int):
    """17x17 module with 7x7 convolutions factorized into 1x7 and 7x1 (Figure 6)."""
    return [
        _branch([(192, 1)]),
        _branch([(c7, 1), (c7, (1, 7)), (192, (7, 1))]),
        _branch([(c7, 1), (c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)), (192, (1, 7))]),
        _branch([(192, 1)], pool="avg"),
    ]


def module_d():
    """17x17 -> 8x8 grid reduction: 1x1 -> 3x3/2; 1x1 -> 1x7 -> 7x1 -> 3x3/2; max pool/2."""
    return [
        _branch([(192, 1), (320, 3, 2, "valid")]),
        _branch([(192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2, "valid")]),
        _branch([], pool="max"),
    ]


def module_e():
    """8x8 module with expanded filter banks (Figure 7): the 3x3 outputs split into
    parallel 1x3 and 3x1 convolutions."""
    split = [(384, (1, 3)), (384, (3, 1))]
    return [
        _branch([(320, 1)]),
        _branch([(384, 1)], split=split),
        _branch([(448, 1), (384, 3)], split=split),
        _branch([(192, 1)], pool="avg"),
    ]


# The inception modules in order (torchvision's Mixed_5b ... Mixed_7c); the auxiliary
# classifier reads the output of "6e".
MODULES = [
    ("5b", module_a(32)),
    ("5c", module_a(64)),
    ("5d", module_a(64)),
    ("6a", module_b()),
    ("6b", module_c(128)),
    ("6c", module_c(160)),
    ("6d", module_c(160)),
    ("6e", module_c(192)),
    ("7a", module_d()),
    ("7b", module_e()),
    ("7c", module_e()),
]
AUX_AFTER = "6e"
MIN_INPUT = 75  # the smallest input that leaves 3x3 before the last grid reduction
AUX_MIN_INPUT = 299  # the auxiliary classifier's 5x5/3 pool and 5x5 conv need a 17x17 grid


def _conv(b: common.Builder, x, spec, name: str, suffix: str = ""):
    filters, kernel, strides, padding = spec if len(spec) == 4 else (*spec, 1, "same")
    x = b.conv(x, filters, kernel, f"{name}_conv{suffix}", strides=strides, padding=padding)
    x = b.normalize(x, f"{name}_bn{suffix}")
    return b.act(x, f"{name}_relu{suffix}")


def inception_block(b: common.Builder, x, branches, name: str):
    """The branches of one module side by side, concatenated along channels. Layer names:
    ``{name}_b{branch}_conv{i}``, ``_bn{i}``, ``_relu{i}``, ``_pool``, ``_concat``."""
    outputs = []
    for j, branch in enumerate(branches, start=1):
        prefix = f"{name}_b{j}"
        y = x
        if branch["pool"] == "avg":
            # count_include_pad: zeros at the border count (torchvision, the TF original).
            y = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pad")(y)
            y = keras.layers.AveragePooling2D(3, strides=1, name=f"{prefix}_pool")(y)
        elif branch["pool"] == "max":
            y = keras.layers.MaxPooling2D(3, strides=2, name=f"{prefix}_pool")(y)
        for i, spec in enumerate(branch["convs"], start=1):
            y = _conv(b, y, spec, prefix, str(i))
        if branch["split"]:
            n = len(branch["convs"]) + 1
            parts = [
                _conv(b, y, spec, prefix, f"{n}{letter}")
                for spec, letter in zip(branch["split"], "abcdefgh", strict=False)
            ]
            y = keras.layers.Concatenate(name=f"{prefix}_concat")(parts)
        outputs.append(y)
    return keras.layers.Concatenate(name=f"{name}_concat")(outputs)


def _aux_classifier(b: common.Builder, x, num_classes, classifier_activation):
    """torchvision's InceptionAux: 5x5/3 average pool, 1x1 conv 128, 5x5 conv 768 (both with
    norm and ReLU), global average pooling, linear classifier."""
    x = keras.layers.AveragePooling2D(5, strides=3, name="aux_pool")(x)
    x = _conv(b, x, (128, 1), "aux", "1")
    x = _conv(b, x, (768, 5, 1, "valid"), "aux", "2")
    x = keras.layers.GlobalAveragePooling2D(name="aux_gap")(x)
    return b.dense(x, num_classes, "aux_fc", activation=classifier_activation)


@common.zoo_builder
def inception_v3(
    *,
    aux_logits: bool = False,
    dropout: float = 0.5,
    norm: common.NormSpec = "batch",
    shared: common.Shared,
) -> keras.Model:
    """Inception v3 (torchvision's layout and parameter counts).

    Stem of five convolutions and two max pools (``STEM``), three 35x35 modules, a grid
    reduction, four 17x17 modules with factorized 7x7 convolutions, a grid reduction, two
    8x8 modules; global average pooling, dropout 0.5, linear classifier. Every convolution
    is followed by norm (eps 1e-3, as torchvision) and ReLU; the pool branches' average
    pools count the zero padding (as torchvision). 23,834,568 trainable parameters
    at 299x299x3 / 1000 classes; 27,161,264 with the auxiliary classifier.

    Args:
        aux_logits: add the auxiliary classifier on the 17x17 grid. The model then has two
            outputs, ``[logits, aux_logits]`` (torchvision's training-mode outputs; the paper
            weighs the auxiliary loss by 0.3 or 0.4, e.g. ``loss_weights=[1.0, 0.4]``); it
            needs inputs of at least 299x299.
        dropout: before the classifier.
        norm: the usual zoo hooks.

    Returns:
        A functional ``keras.Model`` with layer names like ``mixed6b_b3_conv2``.
    """
    common.check_bool("aux_logits", aux_logits)
    common.check_float("dropout", dropout, 0.0, 1.0)
    input_shape, inputs = shared.inputs((299, 299, 3))
    if input_shape[0] < MIN_INPUT or input_shape[1] < MIN_INPUT:
        raise UserInputError(
            f"input_shape={tuple(input_shape)!r} is too small for Inception v3: height and "
            f"width must be at least {MIN_INPUT}."
        )
    if aux_logits and (input_shape[0] < AUX_MIN_INPUT or input_shape[1] < AUX_MIN_INPUT):
        raise UserInputError(
            f"aux_logits=True needs input_shape of at least {AUX_MIN_INPUT}x{AUX_MIN_INPUT} "
            f"(the auxiliary classifier reads a 17x17 grid); received "
            f"input_shape={tuple(input_shape)!r}. Use aux_logits=False for smaller inputs."
        )
    num_classes = shared.classes(1000)
    b = shared.builder(norm, epsilon=1e-3)

    x = inputs
    convs = pools = 0
    for spec in STEM:
        if spec == "max":
            pools += 1
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"stem_pool{pools}")(x)
        else:
            convs += 1
            x = _conv(b, x, spec, "stem", str(convs))
    aux = None
    for key, branches in MODULES:
        x = inception_block(b, x, branches, f"mixed{key}")
        if aux_logits and shared.include_top and key == AUX_AFTER:
            aux = _aux_classifier(b, x, num_classes, shared.classifier_activation)

    def head(x):
        logits = b.classifier(x, num_classes, shared.classifier_activation, dropout)
        return [logits, aux] if aux_logits else logits

    return shared.finish(inputs, x, head, "inception_v3")


# ``aux_logits=True`` adds the auxiliary classifier.
ROWS = (
    ModelInfo("inception_v3", inception_v3, {}, input_shape=(299, 299, 3),
              family="inception", dataset="imagenet", paper=SZEGEDY2016),
)  # fmt: skip
register_rows(*ROWS)
