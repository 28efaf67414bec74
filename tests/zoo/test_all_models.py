"""Generic tests over the whole registry: build, forward, one training step, .keras round trip."""

import keras
import numpy as np
import pytest

import kerascnn
from kerascnn.zoo import model_info

# Marked slow: heavy at small inputs (tens of millions of weights or 1000+ layers), and deeper
# variants that run the same builder code as a shallower sibling left in CI (resnet20/32,
# plain20/32, preact_resnet20/164, resnet18/preact_resnet18).
SLOW = {
    "resnet101", "resnet152", "resnet1202", "preact_resnet101", "preact_resnet152",
    "preact_resnet1001", "resnext29_8x64d", "resnext29_16x64d", "resnext101_32x8d",
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "resnet44", "resnet56", "resnet110", "plain44", "plain56", "plain110",
    "preact_resnet56", "preact_resnet110", "resnet34", "preact_resnet34",
    # EfficientNet, MobileNet v3, DenseNet, ConvNeXt: the cheapest variant of each builder
    # (efficientnet_b0, mobilenet_v3_small, convnext_tiny) stays in CI; the wider and deeper
    # ones run the same code (8-36 s each here). densenet121 (429 layers) and inception_v3
    # (24M weights) take 14-15 s each: CI builds and counts them (test_param_counts.py) and
    # trains their blocks in the stand-in below.
    "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "mobilenet_v3_large",
    "densenet121", "densenet169", "densenet201", "convnext_small", "convnext_base",
    "inception_v3",
}  # fmt: skip
# 1000+ layers: minutes each to build, save and reload on 2 CPU cores. Not in CI's time budget
# (deselected there with -m "not huge"); run them with `pytest -m huge tests/zoo`.
HUGE = {"resnet1202", "preact_resnet1001"}
# A representative per family, also run on the JAX backend by CI (where building costs one XLA
# compilation per distinct weight shape); the pre-activation bottleneck block (preact_resnet164)
# runs there as an 11-layer stand-in with the same layers.
# EfficientNet, MobileNet v3, DenseNet, ConvNeXt and Inception v3 run there as one small
# network of their blocks (test_later_families_blocks_train_and_round_trip).
JAX_SET = {"lenet5", "alexnet", "vgg11_bn", "resnet20", "preact_resnet20", "plain20", "resnet18",
           "resnext50_32x4d", "mobilenet_v1", "mobilenet_v2", "googlenet"}  # fmt: skip


def small_input_shape(name):
    """The smallest convenient input the architecture allows (64x64 for ImageNet layouts)."""
    h, w, c = model_info(name).default_input_shape
    if name == "alexnet":
        return (72, 72, c)
    if name == "inception_v3":
        return (75, 75, c)  # its smallest input (3x3 before the last grid reduction)
    return (min(h, 64), min(w, 64), c)


def _params():
    for name in kerascnn.zoo.list_models():
        marks = []
        if name in SLOW:
            marks.append(pytest.mark.slow)
        if name in HUGE:
            marks.append(pytest.mark.huge)
        if name in JAX_SET:
            marks.append(pytest.mark.jax)
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_build_forward_train_and_keras_round_trip(name, tmp_path):
    shape = small_input_shape(name)
    model = kerascnn.zoo.create(name, input_shape=shape, num_classes=5)
    assert model.name == name
    _check_forward_train_and_keras_round_trip(model, shape, tmp_path)


def _preact_bottleneck_stand_in():
    """preact_resnet164's blocks at depth 11 (one bottleneck block per stage)."""
    return kerascnn.zoo.resnet(depth=11, version=2, block="bottleneck", shortcut="B", num_classes=5)


def test_preact_bottleneck_stand_in_has_preact_resnet164_layers():
    reference = kerascnn.zoo.create("preact_resnet164", num_classes=5)
    for layer in _preact_bottleneck_stand_in().layers:
        twin = reference.get_layer(layer.name)
        assert type(twin) is type(layer), layer.name
        assert [w.shape for w in twin.weights] == [w.shape for w in layer.weights], layer.name


@pytest.mark.jax
def test_preact_bottleneck_stand_in_trains(tmp_path):
    _check_forward_train_and_keras_round_trip(_preact_bottleneck_stand_in(), (32, 32, 3), tmp_path)


def _later_families_stand_in():
    """One small network through the block functions of the EfficientNet, MobileNet v3,
    DenseNet, ConvNeXt and Inception v3 builders: MBConv with squeeze-and-excitation, swish
    and stochastic depth; a hard-sigmoid SE gate and hard-swish; a dense layer and a
    transition; a ConvNeXt block (LayerNorm over channels, GELU, per-position Dense, layer
    scale, stochastic depth); an Inception v3 module with factorized 1x3 / 3x1 convolutions."""
    import importlib

    # the builder functions shadow their modules' names in kerascnn.zoo
    common, convnext, densenet, efficientnet, inception_v3 = (
        importlib.import_module(f"kerascnn.zoo.{m}")
        for m in ("common", "convnext", "densenet", "efficientnet", "inception_v3")
    )

    b = common.Builder.from_args("batch", activation="swish")
    ln = common.Builder.from_args("channel_layer")
    inputs = keras.Input((32, 32, 3))
    x = b.conv_norm_act(inputs, 16, 3, "stem", strides=2)
    for i, strides in enumerate((2, 1), start=1):
        block = efficientnet.mbconv(
            x.shape[-1], expansion=6, kernel_size=3, strides=strides, filters=16, se_ratio=0.25
        )
        x = common.inverted_residual(b, x, block, drop_rate=0.1, name=f"mbconv{i}")
    x = common.squeeze_excite(b, x, 8, "v3_se", gate="hard_sigmoid")
    x = b.act(x, "v3_hswish", "hard_swish")
    x = densenet.dense_layer(b, x, 8, 4, 0.0, "dense")
    x = densenet.transition(b, x, 16, "transition")
    x = convnext.convnext_block(ln, x, 1e-6, 0.1, "convnext")
    branches = [
        {"pool": None, "convs": [(8, 1)], "split": [(8, (1, 3)), (8, (3, 1))]},
        {"pool": "avg", "convs": [(8, 1)], "split": None},
    ]
    x = inception_v3.inception_block(b, x, branches, "mixed")
    outputs = b.classifier(x, 5)
    return keras.Model(inputs, outputs, name="later_families_stand_in")


@pytest.mark.jax
def test_later_families_blocks_train_and_round_trip(tmp_path):
    # CI's JAX run trains this instead of efficientnet_b0, mobilenet_v3_small, densenet121,
    # convnext_tiny and inception_v3 (24 to 112 s each there on 2 cores; even a 3-block model
    # of one family costs about 20 s, mostly compiling each new weight shape's initializer),
    # which TensorFlow's run builds, trains and round-trips above (the last two as slow tests).
    model = _later_families_stand_in()
    types = {type(layer).__name__ for layer in model.layers}
    assert {"StochasticDepth", "LayerScale", "LayerNormalization", "Multiply"} <= types
    _check_forward_train_and_keras_round_trip(model, (32, 32, 3), tmp_path)


def _check_forward_train_and_keras_round_trip(model, shape, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(2, *shape)).astype("float32")
    y = np.array([0, 3])

    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (2, 5)
    assert np.all(np.isfinite(logits))

    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)), (
        "a training step changed nothing"
    )

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
    )
