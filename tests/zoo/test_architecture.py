"""Architecture details checked against the papers' definitions."""

import collections
import re

import keras
import numpy as np
import pytest

import kerascnn
from kerascnn.errors import UserInputError
from kerascnn.layers import ZeroPadShortcut, zero_pad_shortcut

pytestmark = pytest.mark.jax


def _sub(model, layer_name):
    return keras.Model(model.input, model.get_layer(layer_name).output)


def test_layer_names_are_stable_and_readable():
    model = kerascnn.zoo.resnet(depth=56)
    names = {layer.name for layer in model.layers}
    for expected in (
        "stem_conv",
        "stage2_block3_conv1",
        "stage2_block3_bn2",
        "stage3_block1_shortcut",
        "head_fc",
    ):
        assert expected in names
    assert len([n for n in names if n.endswith("_add")]) == 27


def test_zero_pad_shortcut_matches_numpy():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = keras.ops.convert_to_numpy(zero_pad_shortcut(x, 2, 7))
    expected = np.concatenate(
        [np.zeros((2, 2, 2, 2)), x[:, ::2, ::2, :], np.zeros((2, 2, 2, 2))], axis=-1
    )
    np.testing.assert_array_equal(y, expected)
    layer = ZeroPadShortcut(2, 7)
    assert layer.compute_output_shape((None, 5, 5, 3)) == (None, 3, 3, 7)
    with pytest.raises(
        UserInputError,
        match="out_channels must be at least the input's channels .*received "
        "out_channels=2 for an input of 3 channels",
    ):
        layer2 = ZeroPadShortcut(1, 2)
        layer2(x)


def test_option_a_has_no_shortcut_weights_and_option_b_projects():
    a = kerascnn.zoo.resnet(depth=20)
    b = kerascnn.zoo.resnet(depth=20, shortcut="B")
    assert not [w for w in a.weights if "shortcut" in w.path]
    projections = [layer.name for layer in b.layers if layer.name.endswith("shortcut_conv")]
    assert projections == ["stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"]


def test_plain_net_has_no_additions():
    model = kerascnn.zoo.create("plain20")
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]


def test_zero_init_residual_makes_every_v1_block_start_as_identity():
    model = kerascnn.zoo.resnet(depth=20, zero_init_residual=True, shortcut="B")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(_sub(model, "stem_relu")(x))
    after = keras.ops.convert_to_numpy(_sub(model, "stage1_block3_out")(x))
    np.testing.assert_allclose(after, before, atol=1e-6)  # inputs are post-ReLU, so relu(x + 0) = x


def test_zero_init_residual_makes_every_v2_block_start_as_identity():
    # v2 zeroes the last conv of every branch, so each block passes its input through
    model = kerascnn.zoo.resnet(depth=20, version=2, zero_init_residual=True)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(_sub(model, "stem_conv")(x))
    after = keras.ops.convert_to_numpy(_sub(model, "stage1_block3_add")(x))
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert np.any(keras.ops.convert_to_numpy(model.get_layer("stage1_block1_conv1").kernel))


def test_preactivation_block_order():
    model = kerascnn.zoo.resnet(depth=20, version=2)
    names = [layer.name for layer in model.layers]
    # v2: the block input goes through bn1 -> relu1 -> conv1 -> bn2 -> relu2 -> conv2 -> add.
    order = ["stage1_block1_bn1", "stage1_block1_relu1", "stage1_block1_conv1", "stage1_block1_bn2",
             "stage1_block1_relu2", "stage1_block1_conv2", "stage1_block1_add"]  # fmt: skip
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert "stem_bn" not in names and "post_bn" in names
    assert "stage1_block1_out" not in names  # no activation after the addition


def test_resnext_uses_grouped_convolutions():
    model = kerascnn.zoo.create("resnext50_32x4d")
    conv = model.get_layer("stage1_block1_conv2")
    assert conv.groups == 32 and conv.filters == 128
    assert model.get_layer("stage4_block1_conv2").filters == 1024


def test_vgg_sweep_filters_double_and_cap():
    model = kerascnn.zoo.vgg(num_blocks=4, convs_per_block=2, filters=64, max_filters=256)
    widths = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert widths == [64, 64, 128, 128, 256, 256, 256, 256]
    assert model.output_shape == (None, 10)
    assert any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in model.layers)


def test_l2_reaches_every_kernel_and_adds_the_right_loss():
    model = kerascnn.zoo.resnet(depth=20, l2=1e-4)
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel_regularizer")]
    assert kernels and all(layer.kernel_regularizer is not None for layer in kernels)
    expected = sum(
        1e-4 * float(np.sum(keras.ops.convert_to_numpy(layer.kernel) ** 2)) for layer in kernels
    )
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)


def test_norm_none_gives_biases_and_no_normalization():
    model = kerascnn.zoo.resnet(depth=20, norm=None)
    assert not [layer for layer in model.layers if "bn" in layer.name]
    assert model.get_layer("stem_conv").use_bias


def test_norm_accepts_a_callable():
    model = kerascnn.zoo.resnet(
        depth=20, norm=lambda name: keras.layers.LayerNormalization(name=name)
    )
    assert isinstance(model.get_layer("stem_bn"), keras.layers.LayerNormalization)


def test_custom_blocks_and_filters():
    model = kerascnn.zoo.resnet(
        blocks=[1, 1], filters=[8, 16], input_shape=(16, 16, 3), num_classes=3
    )
    assert model.get_layer("stage2_block1_conv1").filters == 16
    assert model.output_shape == (None, 3)


def test_mobilenet_v2_inverted_residual_structure():
    model = kerascnn.zoo.create("mobilenet_v2")
    assert model.get_layer("stage2_block1_expand_conv").filters == 96  # 16 * 6
    assert "stage1_block1_expand_conv" not in [layer.name for layer in model.layers]  # t = 1
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Add)]) == 10


@pytest.mark.parametrize(
    "version, size, blocks_per_stage",
    [
        (1, None, [1, 2, 2, 6, 2]),  # timm's arch_def: c64 x1, c128 x2, c256 x2, c512 x6, ...
        (2, None, [1, 2, 3, 4, 3, 3, 1]),  # Sandler et al. Table 2's rows (t, c, n, s)
        (3, "large", [1, 2, 3, 4, 2, 3]),  # c16, c24, c40, c80, c112, c160
        (3, "small", [1, 2, 3, 2, 3]),  # c16, c24, c40, c48, c96
    ],
)
def test_mobilenet_stages_are_runs_of_one_width_in_the_papers_table(
    version, size, blocks_per_stage
):
    """``stage{s}_block{b}`` as the other families; at width 0.35 the rounded widths of
    neighbouring stages coincide (v2: 16 and 24 -> 8; v3 small: 40 and 48 -> 16), and the
    names still follow the table's widths."""
    model = kerascnn.zoo.mobilenet(
        version=version, size=size, width_multiplier=0.35, input_shape=(32, 32, 3),
        num_classes=2,
    )  # fmt: skip
    names = [layer.name for layer in model.layers]
    blocks = dict.fromkeys(m[0] for n in names if (m := re.match(r"stage\d+_block\d+", n)))
    stages = collections.Counter(int(re.match(r"stage(\d+)", b)[1]) for b in blocks)
    assert list(stages) == list(range(1, len(blocks_per_stage) + 1))
    assert list(stages.values()) == blocks_per_stage
    assert list(blocks) == [
        f"stage{s}_block{b}" for s, n in stages.items() for b in range(1, n + 1)
    ]
    others = {n.split("_")[0] for n in names if not n.startswith("stage")}
    assert others <= {"input", "stem", "last", "head"}, others


# The later families' structure. Building them on JAX costs 20-50 s each (the initializers
# compile once per weight shape) and the structure does not depend on the backend.
_TF_ONLY = pytest.mark.tensorflow_pass_only


@_TF_ONLY
def test_efficientnet_b0_mbconv_se_and_linear_stochastic_depth():
    from kerascnn.layers import StochasticDepth

    model = kerascnn.zoo.create("efficientnet_b0")
    assert model.get_layer("stage2_block1_expand_conv").filters == 96  # 16 * 6
    assert model.get_layer("stage2_block1_se_reduce").filters == 4  # 16 input channels / 4
    assert model.get_layer("stage2_block1_se_sigmoid").activation.__name__ == "sigmoid"
    assert model.get_layer("stage1_block1_dw_swish").activation.__name__ == "silu"
    assert model.get_layer("stage3_block1_dw").kernel_size == (5, 5)
    assert model.get_layer("top_conv").filters == 1280
    # Tan & Le / torchvision: block i (0-based) of 16 drops with 0.2 * i / 16; only blocks with
    # an identity shortcut (stride 1, same channels) carry the layer.
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)}
    residual = [2, 4, 6, 7, 9, 10, 12, 13, 14]  # 0-based indices of the 9 residual blocks
    assert sorted(rates.values()) == pytest.approx([0.2 * i / 16 for i in residual])
    assert rates["stage6_block4_drop_path"] == pytest.approx(0.2 * 14 / 16)


@_TF_ONLY
def test_mobilenet_v3_small_blocks_and_head():
    model = kerascnn.zoo.create("mobilenet_v3_small")
    names = {layer.name for layer in model.layers}
    # 16 -> 16 with SE
    assert "stage1_block1_expand_conv" not in names and "stage1_block1_se_reduce" in names
    assert model.get_layer("stage1_block1_se_reduce").filters == 8  # make_divisible(16 // 4)
    assert model.get_layer("stage1_block1_se_hsigmoid").activation.__name__ == "hard_sigmoid"
    assert model.get_layer("stage3_block1_dw_hswish").activation.__name__ == "hard_silu"
    assert model.get_layer("stage2_block1_dw_relu").activation.__name__ == "relu"
    assert model.get_layer("last_conv").filters == 576
    assert model.get_layer("head_fc1").units == 1024
    bn = model.get_layer("stem_bn")
    assert bn.epsilon == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.99)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Add)]) == 6


@_TF_ONLY
def test_convnext_tiny_layer_scale_norm_and_stochastic_depth():
    from kerascnn.layers import StochasticDepth

    model = kerascnn.zoo.create("convnext_tiny")
    scale = model.get_layer("stage3_block9_layer_scale")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(scale.scale), np.full(384, 1e-6, dtype="float32")
    )
    norm = model.get_layer("stage1_block1_norm")
    assert isinstance(norm, keras.layers.LayerNormalization) and norm.epsilon == 1e-6
    assert list(norm.axis) in ([-1], [3])  # over channels only
    assert model.get_layer("stem_conv").strides == (4, 4)
    assert model.get_layer("downsample2_conv").kernel_size == (2, 2)
    # torchvision: block i (0-based) of 18 drops with 0.1 * i / 17
    rates = [layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert rates == pytest.approx([0.1 * i / 17 for i in range(1, 18)])
