"""Invalid configurations raise ValueError naming the argument, the value and what is allowed."""

import pytest

import kerascnn
from kerascnn.errors import UserInputError

pytestmark = pytest.mark.jax


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: kerascnn.zoo.resnet(depth=57), r"depth must be 6n\+2 .*received depth=57"),
        (
            lambda: kerascnn.zoo.resnet(depth=32, block="bottleneck"),
            r"depth must be 9n\+2 .*received depth=32",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, num_classes=-3),
            r"num_classes must be an integer >= 1; received num_classes=-3",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, block="fancy"),
            r"block must be one of 'basic', 'bottleneck'; received block='fancy'",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, shortcut="C"),
            r"shortcut must be one of 'A', 'B'; received shortcut='C'",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, version=3),
            r"version must be one of 1, 2; received version=3",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=50, input_shape=(16, 16, 3)),
            r"input_shape=\(16, 16, 3\) is too small.*at least 32",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, input_shape=(32, 32)),
            r"input_shape must be \(height, width, channels\)",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, norm="weird"),
            r"norm must be one of .*received norm='weird'",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, l2=-1.0),
            r"l2 must be a number >= 0; received l2=-1.0",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, l2=1e-4, kernel_regularizer="l1"),
            r"either l2 or kernel_regularizer",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, groups=4),
            r"groups > 1 \(ResNeXt\) needs block='bottleneck'",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, drop_path_rate=1.5),
            r"drop_path_rate must be a number in \[0.0, 1.0\); received drop_path_rate=1.5",
        ),
        (
            lambda: kerascnn.zoo.vgg(depth=12),
            r"depth must be one of 11, 13, 16, 19; received depth=12",
        ),
        (
            lambda: kerascnn.zoo.vgg(num_blocks=6, convs_per_block=2),
            r"input_shape=\(32, 32, 3\) is too small.*down-samples by 64",
        ),
        (
            lambda: kerascnn.zoo.vgg(num_blocks=3, convs_per_block=[1, 2]),
            r"convs_per_block must be a list of 3 integers >= 1 \(one per block, or one for "
            r"all\); received convs_per_block=\[1, 2\]",
        ),
        (lambda: kerascnn.zoo.vgg(depth=16, num_blocks=3, convs_per_block=2), r"exactly one way"),
        (
            lambda: kerascnn.zoo.vgg(depth=16, head="mlp"),
            r"head must be one of 'fc', 'gap'; received head='mlp'",
        ),
        (
            lambda: kerascnn.zoo.alexnet(input_shape=(64, 64, 3)),
            r"input_shape=\(64, 64, 3\) is too small",
        ),
        (
            lambda: kerascnn.zoo.mobilenet(version=4),
            r"version must be one of 1, 2, 3; received version=4",
        ),
        (
            lambda: kerascnn.zoo.mobilenet(version=3, size="medium"),
            r"size must be one of 'large', 'small'; received size='medium'",
        ),
        (
            lambda: kerascnn.zoo.mobilenet(version=2, size="small"),
            r"size applies to version=3 only .*received size='small' with version=2",
        ),
        (
            lambda: kerascnn.zoo.efficientnet("b8"),
            r"size must be one of 'b0', 'b1', .*'b7'; received size='b8'",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, drop_rate=0.1),
            r"resnet has no argument drop_rate=0.1; besides its named arguments and the zoo's "
            r"shared ones it takes blocks, filters, stem_filters, residual, groups, base_width, "
            r"zero_init_residual, drop_path_rate$",
        ),
        (
            lambda: kerascnn.zoo.vgg(num_blocks=3, convs_per_block=2, width=32),
            r"vgg has no argument width=32; .* it takes num_blocks, convs_per_block, filters, "
            r"max_filters$",
        ),
        (
            lambda: kerascnn.zoo.efficientnet(drop_path_rate=1.0),
            r"drop_path_rate must be a number in \[0.0, 1.0\); received drop_path_rate=1.0",
        ),
        (
            lambda: kerascnn.zoo.efficientnet(se_ratio=-0.25),
            r"se_ratio must be a number in \[0.0, 1.0\]; received se_ratio=-0.25",
        ),
        (
            lambda: kerascnn.zoo.efficientnet(stages=[(6, 3, 2, 24)]),
            r"stages\[0\] must be a list of 5 integers >= 1 \(expansion, kernel, stride, "
            r"filters, repeats\); received stages\[0\]=\(6, 3, 2, 24\)",
        ),
        (
            lambda: kerascnn.zoo.efficientnet(width_coefficient=0),
            r"width_coefficient must be a number in \[0.1, 10.0\]; received width_coefficient=0",
        ),
        (
            lambda: kerascnn.zoo.densenet(depth=100),
            r"depth must be one of 121, 169, 201, 264 \(or pass blocks=\); received depth=100",
        ),
        (
            lambda: kerascnn.zoo.densenet(growth_rate=0),
            r"growth_rate must be an integer >= 1; received growth_rate=0",
        ),
        (
            lambda: kerascnn.zoo.densenet(compression=1.5),
            r"compression must be a number in \[0.0, 1.0\]; received compression=1.5",
        ),
        (
            lambda: kerascnn.zoo.densenet(blocks=[6, 0]),
            r"blocks must be a non-empty list of integers >= 1; received blocks=\[6, 0\]",
        ),
        (
            lambda: kerascnn.zoo.convnext("huge"),
            r"size must be one of 'tiny', 'small', 'base', 'large'; received size='huge'",
        ),
        (
            lambda: kerascnn.zoo.convnext(channels=(96, 192), blocks=(3, 3, 9)),
            r"channels and blocks must have one entry per stage",
        ),
        (
            lambda: kerascnn.zoo.convnext(norm="weird"),
            r"norm must be one of 'batch', 'sync_batch', 'layer', 'channel_layer', .*"
            r"received norm='weird'",
        ),
        (
            lambda: kerascnn.zoo.convnext(layer_scale=-1.0),
            r"layer_scale must be a number in \[0.0, 1000.0\); received layer_scale=-1.0",
        ),
        (
            lambda: kerascnn.zoo.convnext(drop_path_rate=-0.1),
            r"drop_path_rate must be a number in \[0.0, 1.0\); received drop_path_rate=-0.1",
        ),
        (
            lambda: kerascnn.zoo.inception_v3(input_shape=(64, 64, 3)),
            r"input_shape=\(64, 64, 3\) is too small for Inception v3.*at least 75",
        ),
        (
            lambda: kerascnn.zoo.inception_v3(aux_logits=True, input_shape=(224, 224, 3)),
            r"aux_logits=True needs input_shape of at least 299x299.*received "
            r"input_shape=\(224, 224, 3\)",
        ),
        (
            lambda: kerascnn.zoo.inception_v3(aux_logits="yes"),
            r"aux_logits must be True or False; received aux_logits='yes'",
        ),
        (
            lambda: kerascnn.zoo.LayerScale(0.0),
            r"init_value must be a number > 0; received init_value=0.0",
        ),
        (
            lambda: kerascnn.zoo.lenet(subsampling="median"),
            r"subsampling must be one of 'avg', 'max'",
        ),
        (
            lambda: kerascnn.zoo.create("resnet57"),
            r"Unknown model name='resnet57'\. Did you mean: .*resnet5",
        ),
    ],
)
def test_invalid_configuration_raises_value_error(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def _zoo_module(name):
    import importlib

    return importlib.import_module(f"kerascnn.zoo.{name}")


def _two_input_model():
    import keras

    a, b = keras.Input((4, 4, 3)), keras.Input((4, 4, 3))
    return keras.Model([a, b], keras.layers.Add()([a, b]))


@pytest.mark.parametrize(
    "build, pattern",
    [
        (
            lambda: kerascnn.zoo.resnet(depth=20, l2=-1.0),  # zoo.common
            r"l2 must be a number >= 0; received l2=-1.0",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=20, include_top=True, pooling="avg"),  # zoo.common
            r"pooling='avg' applies to include_top=False",
        ),
        (
            lambda: kerascnn.zoo.resnet(depth=57),
            r"depth must be 6n\+2 for CIFAR basic blocks .*; received depth=57",
        ),
        (
            lambda: kerascnn.zoo.resnet(blocks=(2, 0, 2)),
            r"blocks must be a non-empty list of integers >= 1; received blocks=\(2, 0, 2\)",
        ),
        (
            lambda: kerascnn.zoo.resnet(blocks=(2, 2), filters=(16, 32, 64)),
            r"filters must be a list of 2 integers >= 1 \(one per stage\); "
            r"received filters=\(16, 32, 64\)",
        ),
        (
            lambda: kerascnn.zoo.resnet(),
            r"resnet needs depth= .* or blocks= .*; received depth=None and blocks=None",
        ),
        (
            lambda: kerascnn.zoo.vgg(blocks=[[64], []]),
            r"blocks\[1\] must be a non-empty list of integers >= 1; received blocks\[1\]=\[\]",
        ),
        (
            lambda: kerascnn.zoo.vgg(num_blocks=2, convs_per_block=[1, True]),
            r"convs_per_block must be a list of 2 integers >= 1 .*received "
            r"convs_per_block=\[1, True\]",
        ),
        (
            lambda: kerascnn.zoo.densenet(blocks=[6, 0]),
            r"blocks must be a non-empty list of integers >= 1; received blocks=\[6, 0\]",
        ),
        (
            lambda: kerascnn.zoo.densenet(compression=0.0),
            r"compression must be a number in \(0.0, 1.0\]; received compression=0.0",
        ),
        (
            lambda: kerascnn.zoo.convnext(channels=(96, 0, 384, 768)),
            r"channels must be a non-empty list of integers >= 1; received "
            r"channels=\(96, 0, 384, 768\)",
        ),
        (
            lambda: kerascnn.zoo.LayerScale(-1),
            r"init_value must be a number > 0; received init_value=-1",
        ),
        (
            lambda: kerascnn.zoo.mobilenet(version=1, size="large"),
            r"size applies to version=3 only .*received size='large' with version=1",
        ),
        (
            lambda: kerascnn.zoo.efficientnet(stages=[]),
            r"stages must be a non-empty list of \(expansion, kernel, stride, filters, repeats\)"
            r" rows of integers >= 1, as B0_STAGES; received stages=\[\]",
        ),
        (
            lambda: kerascnn.zoo.feature_extractor(
                kerascnn.zoo.resnet(depth=8, input_shape=(16, 16, 3), include_top=False),
                stages=["stage4"],
            ),
            r"stages must be a non-empty list of stage1, stage2, stage3 .*"
            r"received stages=\['stage4'\]",
        ),
        (
            lambda: _zoo_module("presets").preset("resnet20", "imagenet"),
            r"weights='imagenet' are not available for 'resnet20'; available: 'cifar10'",
        ),
        (
            lambda: _zoo_module("pixels").with_preprocessing(_two_input_model(), []),
            r"model must have one image input; received model='.*' with 2 inputs",
        ),
    ],
)
def test_invalid_zoo_arguments_are_the_users_error(build, pattern):
    with pytest.raises(UserInputError, match=pattern):
        build()


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):

        @kerascnn.zoo.register("resnet56", family="resnet", paper="x", dataset="cifar10")
        def again(**overrides):  # pragma: no cover - never registered
            return None


def test_list_models_patterns_and_natural_order():
    cifar = kerascnn.zoo.list_models("resnet[0-9]*")
    assert (
        cifar.index("resnet20")
        < cifar.index("resnet56")
        < cifar.index("resnet110")
        < cifar.index("resnet1202")
    )
    assert kerascnn.zoo.list_models("vgg*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert kerascnn.zoo.list_models("nothing*") == []
    required = """lenet5 alexnet vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg16_bn resnet20 resnet32 resnet44
    resnet56 resnet110 resnet1202 resnet18 resnet34 resnet50 resnet101 resnet152 preact_resnet56
    plain20 plain56 resnext29_8x64d resnext50_32x4d mobilenet_v1 mobilenet_v2 googlenet
    efficientnet_b0 efficientnet_b1 efficientnet_b2 efficientnet_b3 efficientnet_b4
    efficientnet_b5 efficientnet_b6 efficientnet_b7 mobilenet_v3_large mobilenet_v3_small
    inception_v3 densenet121 densenet169 densenet201 convnext_tiny convnext_small
    convnext_base""".split()
    assert set(required) <= set(kerascnn.zoo.list_models())
