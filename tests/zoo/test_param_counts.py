"""Trainable parameter counts against the papers and public libraries (shared REFERENCES.md)."""

import numpy as np
import pytest

import kerascnn
from kerascnn.zoo import count_flops, model_info

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
# The lecture's later families. Reference: torchvision's weights' ``meta["num_params"]``
# (ImageNet layout, 1000 classes; BN scale and offset trainable, moving statistics not):
# b0, mobilenet_v3_large/small, densenet121, convnext_tiny and inception_v3 with its
# auxiliary classifier as listed in shared REFERENCES.md; the others from the same
# torchvision tables (given in issue 19). Inception v3 counts without the auxiliary
# classifier: 23,834,568 (torchvision's ``inception_v3(aux_logits=False)``).
LATER = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "convnext_tiny": 28_589_128,
    "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
    "inception_v3": 23_834_568,
}
# Multiply-adds per image, torchvision's weights' ``meta["_ops"]`` (GFLOPS there; they count
# multiply-adds of convs and linear layers, as count_flops). Checked within 2 %.
LATER_MACS = {
    "efficientnet_b0": 0.386e9,
    "mobilenet_v3_large": 0.217e9,
    "mobilenet_v3_small": 0.057e9,
    "densenet121": 2.834e9,
    "convnext_tiny": 4.456e9,
    "inception_v3": 5.713e9,
}
# Building these on JAX costs 20-50 s each (the initializers compile once per weight shape);
# the counts do not depend on the backend, so they run on TensorFlow only.
_TF_ONLY = pytest.mark.tensorflow_pass_only
# Quick: the cheapest variant of each new family; the rest are marked slow.
_QUICK_LATER = set(LATER_MACS)


def _imagenet_params():
    for name in IMAGENET:
        yield pytest.param(name, id=name)
    for name in LATER:
        marks = [_TF_ONLY] + ([] if name in _QUICK_LATER else [pytest.mark.slow])
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_imagenet_params()))
def test_imagenet_counts(name):
    model = kerascnn.zoo.create(name)
    assert model.input_shape == (None, *model_info(name).default_input_shape)
    assert model.output_shape == (None, 1000)
    assert trainable(model) == {**IMAGENET, **LATER}[name]
    if name in LATER_MACS:
        macs = count_flops(model)
        assert abs(macs - LATER_MACS[name]) / LATER_MACS[name] < 0.02, macs


def test_efficientnet_default_resolutions_follow_the_paper():
    # Tan & Le 2019, Table 2 / the reference implementation's efficientnet_params.
    resolutions = [model_info(f"efficientnet_b{i}").default_input_shape[0] for i in range(8)]
    assert resolutions == [224, 240, 260, 300, 380, 456, 528, 600]


@_TF_ONLY
def test_inception_v3_auxiliary_classifier_count_and_outputs():
    # torchvision inception_v3 (aux_logits=True, its default): 27,161,264 (REFERENCES.md).
    model = kerascnn.zoo.create("inception_v3", aux_logits=True)
    assert trainable(model) == 27_161_264
    assert [tuple(o.shape) for o in model.outputs] == [(None, 1000), (None, 1000)]


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


# Every row's measurements (model_table.json, shown by `kerascnn list` and docs/models.md)
# against the model the row builds. CI builds the rows that take about a second here, one per
# family where one is that cheap; the others are slow (2-30 s each), the 1000+-layer ones huge.
MEASURED_QUICK = {
    "lenet5", "alexnet", "odenet", "resnet20", "preact_resnet20", "mobilenet_v1",
    "mobilenet_v3_small", "googlenet",
}  # fmt: skip
MEASURED_HUGE = {"resnet1202", "preact_resnet1001"}


def _every_row():
    for name in kerascnn.zoo.list_models():
        marks = [_TF_ONLY] + ([] if name in MEASURED_QUICK else [pytest.mark.slow])
        if name in MEASURED_HUGE:
            marks.append(pytest.mark.huge)
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_every_row()))
def test_every_rows_measurements_equal_the_built_model(name):
    from kerascnn.zoo import feature_info

    info = model_info(name)
    model = info.build()
    assert model.input_shape == (None, *info.default_input_shape)
    assert model.output_shape == (None, info.default_num_classes)
    assert info.trainable_params == trainable(model)
    assert info.macs == count_flops(model)
    assert info.feature_strides == tuple(f.stride for f in feature_info(model))


def test_stored_table_holds_the_reference_counts():
    # `kerascnn list` reads this table (python -m kerascnn.zoo.table); no build needed here.
    from kerascnn.zoo.registry import load_counts

    stored = load_counts()
    assert set(stored) == set(kerascnn.zoo.list_models()), "one measurement per row"
    assert {name: stored[name]["trainable_params"] for name in {**IMAGENET, **LATER}} == {
        **IMAGENET,
        **LATER,
    }
    assert {f"resnet{d}": stored[f"resnet{d}"]["trainable_params"] for d in CIFAR_RESNETS} == {
        f"resnet{d}": counts[0] for d, counts in CIFAR_RESNETS.items()
    }
