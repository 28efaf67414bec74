"""Trainable parameter counts against the papers and public libraries (shared REFERENCES.md)."""

import numpy as np
import pytest

import kerascnn
from kerascnn.zoo import count_flops

pytestmark = pytest.mark.jax


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


CIFAR_RESNETS = {  # depth: (option A, option B)
    20: (269_722, 272_474),
    32: (464_154, 466_906),
    44: (658_586, 661_338),
    56: (853_018, 855_770),
    110: (1_727_962, 1_730_714),
}


@pytest.mark.parametrize("depth", sorted(CIFAR_RESNETS))
def test_cifar_resnet_counts_option_a_and_b(depth):
    option_a, option_b = CIFAR_RESNETS[depth]
    assert trainable(kerascnn.zoo.resnet(depth=depth)) == option_a
    assert trainable(kerascnn.zoo.resnet(depth=depth, shortcut="B")) == option_b
    assert trainable(kerascnn.zoo.create(f"resnet{depth}")) == option_a


def test_plain_net_has_same_weights_as_option_a_resnet():
    # Option A shortcuts are parameter-free, so plain-56 and ResNet-56 weigh the same.
    assert trainable(kerascnn.zoo.create("plain56")) == 853_018


IMAGENET = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnext50_32x4d": 25_028_904,
    "mobilenet_v2": 3_504_872,
}


@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_counts(name):
    model = kerascnn.zoo.create(name)
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert trainable(model) == IMAGENET[name]


def test_keras_applications_totals_for_models_without_conv_biases():
    # keras.applications' totals include BN moving statistics (REFERENCES.md).
    assert kerascnn.zoo.create("mobilenet_v2").count_params() == 3_538_984
    assert kerascnn.zoo.create("vgg16").count_params() == 138_357_544


@pytest.mark.slow
def test_vgg_matches_keras_applications_layer_by_layer():
    import keras

    ours = kerascnn.zoo.create("vgg16")
    ref = keras.applications.VGG16(weights=None)
    ours_shapes = [tuple(w.shape) for w in ours.weights]
    ref_shapes = [tuple(w.shape) for w in ref.weights]
    assert ours_shapes == ref_shapes


@pytest.mark.huge
def test_resnet1202_count():
    assert trainable(kerascnn.zoo.resnet(depth=1202)) == 19_421_274


@pytest.mark.parametrize(
    "name, reference",
    [("resnet50", 4.1e9), ("vgg16", 15.5e9), ("resnet56", 125e6)],
)
def test_count_flops_within_two_percent(name, reference):
    macs = count_flops(kerascnn.zoo.create(name))
    assert abs(macs - reference) / reference < 0.02, macs


def test_count_flops_by_hand_on_a_tiny_net():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8*9*3*4 = 6912
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 4*4*9*4 = 576
    x = keras.layers.Conv2D(8, 1, groups=2)(x)  # 4*4*1*2*8 = 256
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 40
    model = keras.Model(inputs, outputs)
    assert count_flops(model) == 6912 + 576 + 256 + 40
    wrapped = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.RandomFlip(), model])
    assert count_flops(wrapped) == count_flops(model)


@pytest.mark.parametrize("method, evaluations", [("euler", 3), ("midpoint", 6), ("rk4", 12)])
def test_count_flops_counts_an_ode_block_once_per_function_evaluation(method, evaluations):
    import keras

    from kerascnn.layers import ODEBlock

    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(8, 1)(inputs)  # 6*6*1*4*8 = 1152
    # the function's two 3x3 convolutions see the state plus a time channel: 8 + 1 -> 8
    x = ODEBlock(steps=3, method=method)(x)  # per evaluation: 2 * 6*6*9*9*8 = 46656
    model = keras.Model(inputs, x)
    assert count_flops(model) == 1152 + evaluations * 46656
