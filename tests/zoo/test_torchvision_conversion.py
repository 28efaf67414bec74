"""torchvision's checkpoints in kerascnn (issue 27): every family torchvision has computes the
same function as torchvision's model, checked against torchvision itself.

Each family test builds torchvision's model with random weights and random BatchNorm (and
LayerNorm, layer-scale) parameters and statistics, saves its state dict with ``torch.save``,
converts it with ``kerascnn.zoo.create(name, weights=path)`` and compares the logits of both
in inference mode: max |kerascnn - torchvision| / max |torchvision| <= 1e-4.

torchvision here: the wheel the package index serves (``torchvision==0.28.0`` in the ``test``
extra, a CUDA build) cannot load its compiled operators next to the CPU build of torch, and
``import torchvision`` then fails in ``torchvision/_meta_registrations.py``, which registers
fake kernels for the operators ``torchvision::nms`` and ``torchvision::qnms`` that the
extension would have defined. :func:`torchvision_models` loads the extension where it can,
and otherwise defines the schemas of those two operators (never called by a classification
model) before importing torchvision: its model classes are pure Python and run on torch's own
operators. Nothing is skipped and nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import sys

import keras
import numpy as np
import pytest

from kerascnn import zoo
from kerascnn.errors import UserInputError
from kerascnn.zoo import torchvision_weights as tw

torch = pytest.importorskip("torch", reason="the reference is PyTorch's torchvision")

TOLERANCE = 1e-4
_LIBRARIES = []  # the operator schemas defined below live as long as the process


@functools.cache
def torchvision_models():
    """``torchvision.models``, also where torchvision's compiled operators cannot load (see
    the module docstring)."""
    if "torchvision" not in sys.modules:
        root = pathlib.Path(importlib.util.find_spec("torchvision").submodule_search_locations[0])
        compiled = sorted(root.glob("_C.*so")) + sorted(root.glob("_C.*pyd"))
        try:
            torch.ops.load_library(str(compiled[0]))
        except (OSError, IndexError):
            library = torch.library.Library("torchvision", "FRAGMENT")
            for op in ("nms", "qnms"):
                library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _LIBRARIES.append(library)
    import torchvision.models

    return torchvision.models


def random_torchvision(name: str, num_classes: int = 10, seed: int = 0):
    """torchvision's model of kerascnn's ``name`` in eval mode, random weights, random
    BatchNorm statistics and affine parameters, random LayerNorm and layer-scale
    parameters and biases (torchvision initializes these to constants that would hide
    mistakes). Auxiliary classifiers on, as in torchvision's checkpoints."""
    tvm = torchvision_models()
    builder = tw.TORCHVISION_WEIGHTS[name]["torchvision"]
    extra = {"init_weights": True} if builder in ("googlenet", "inception_v3") else {}
    torch.manual_seed(seed)
    net = tvm.get_model(builder, num_classes=num_classes, **extra).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif key.endswith("running_mean") or key.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.2)
            elif tensor.ndim == 1 or key.endswith("layer_scale"):  # norm scales, layer scales
                tensor.copy_(torch.rand(tensor.shape, generator=g) * 0.5 + 0.5)
    return net


def torchvision_input(pixels, mean, std):
    """torchvision's ``ToTensor`` + ``Normalize(mean, std)`` of 0..255 pixels (NHWC)."""
    x = torch.from_numpy(np.asarray(pixels, "float32")).permute(0, 3, 1, 2) / 255
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def relative(ours, reference) -> float:
    ours, reference = np.asarray(ours, "float64"), np.asarray(reference, "float64")
    assert ours.shape == reference.shape
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


# The input size of each family's test: small where the architecture allows; VGG's flatten
# needs its 7x7 maps (224); Inception v3's auxiliary classifier needs 299; GoogLeNet at 72
# meets odd maps (9x9), where ceil-mode pools differ from "same" ones; AlexNet at 224 (its
# adaptive pool on other sizes: test_adaptive_average_pool_equals_pytorchs).
def input_size(name: str) -> int:
    if name.startswith("vgg"):
        return 224
    return {"inception_v3": 299, "googlenet_torchvision": 72}.get(
        name, 64 if "alexnet" not in name else 224
    )


def agreement(name: str, folder: pathlib.Path, suffix: str = ".pth") -> dict[str, float]:
    """Convert a random torchvision ``name`` (saved in ``folder``) and return the relative
    difference of the logits (and of Inception v3's auxiliary logits) on two images."""
    net = random_torchvision(name)
    path = folder / f"{name}{suffix}"
    if suffix == ".pth":
        torch.save(net.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    size = input_size(name)
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    aux = name == "inception_v3"
    model = zoo.create(
        name, weights=str(path), include_preprocessing=False, input_shape=(size, size, 3),
        num_classes=10, **({"aux_logits": True} if aux else {}),
    )  # fmt: skip
    outputs = model.predict(x, verbose=0)
    captured = {}
    if aux:  # torchvision computes the auxiliary logits in training mode only: hook them
        net.Mixed_6e.register_forward_hook(lambda m, i, o: captured.update(x=o))
    with torch.no_grad():
        reference = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
        result = {"logits": relative(outputs[0] if aux else outputs, reference)}
        if aux:
            result["aux_logits"] = relative(outputs[1], net.AuxLogits(captured["x"]).numpy())
    keras.utils.clear_session()
    return result


# One per family in CI; GoogLeNet's runs there as the real-pixels test below (at 224, through
# torchvision's pretrained loading path), its odd-size pools in test_ceil_mode_max_pool...
QUICK = ["resnet18", "resnext50_32x4d", "vgg11_bn", "alexnet_torchvision", "mobilenet_v2",
         "mobilenet_v3_small", "efficientnet_b0", "densenet121", "convnext_tiny",
         "inception_v3"]  # fmt: skip


def _families():
    for name in tw.TORCHVISION_WEIGHTS:
        marks = [] if name in QUICK else [pytest.mark.slow]
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_families()))
def test_kerascnn_computes_torchvisions_function_with_its_converted_weights(name, tmp_path):
    result = agreement(name, tmp_path)
    assert max(result.values()) < TOLERANCE, result


def test_every_torchvision_family_kerascnn_registers_converts():
    tvm = torchvision_models()
    theirs = set(tvm.list_models(module=tvm))
    for name in zoo.list_models():
        if name in ("googlenet", "alexnet"):  # the paper's / D2L's layouts: other networks
            assert tw.TORCHVISION_WEIGHTS[f"{name}_torchvision"]["torchvision"] == name
        elif name in theirs:
            assert tw.TORCHVISION_WEIGHTS[name]["torchvision"] == name


def test_the_rows_are_torchvisions_weights_and_transforms():
    """Each row against torchvision's weights enum: file, resize and crop sizes,
    interpolation, top-1, mean and std (for GoogLeNet and Inception v3, torchvision's
    ImageNet standardization followed by the transform_input its pretrained models do)."""
    tvm = torchvision_models()
    for name, row in tw.TORCHVISION_WEIGHTS.items():
        enums = [
            w for w in tvm.get_model_weights(row["torchvision"]) if w.name != "IMAGENET1K_FEATURES"
        ]
        assert [w.name for w in enums] == [e[0] for e in row["weights"]], name
        for entry, weights in zip(row["weights"], enums, strict=True):
            t = weights.transforms()
            assert entry[1] == weights.url.rsplit("/", 1)[1]
            assert (entry[2], entry[3]) == (t.resize_size[0], t.crop_size[0])
            assert entry[4] == t.interpolation.value
            assert entry[5] == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            mean, std = np.array(t.mean), np.array(t.std)
            if row["torchvision"] in ("googlenet", "inception_v3"):
                # x_norm * std / 0.5 + (mean - 0.5) / 0.5 with x_norm = (p - mean) / std
                mean, std = mean - (mean - 0.5), std * 0.5 / std
            np.testing.assert_allclose(row["mean"], mean, atol=1e-12)
            np.testing.assert_allclose(row["std"], std, atol=1e-12)


@pytest.fixture
def sample_images():
    from kerascnn import pipelines

    return pipelines.load("cifar10-sample", split="validation").read(np.arange(6))


def test_preprocess_resizes_and_crops_as_torchvisions_pil_transforms(sample_images):
    from PIL import Image
    from torchvision import transforms as T

    for name in ("resnet50", "efficientnet_b3", "inception_v3"):
        row = tw.transforms(name)
        mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
        reference = T.Compose([T.Resize(row["resize_size"], mode[row["interpolation"]]),
                               T.CenterCrop(row["crop_size"])])  # fmt: skip
        wide = np.concatenate([sample_images, sample_images[:, :, :9]], axis=2)  # 32x41
        expected = np.stack([np.asarray(reference(Image.fromarray(im))) for im in wide])
        np.testing.assert_array_equal(tw.preprocess(wide, name), expected)
    row = tw.transforms("resnet50", "some/folder/resnet50-11ad3fa6.pth")
    assert (row["weights"], row["resize_size"], row["crop_size"]) == ("IMAGENET1K_V2", 232, 224)


def _pretrained_torchvision(name, state, monkeypatch):
    """torchvision's *pretrained* model of ``name`` with ``state`` as its checkpoint: its own
    loading path (transform_input, auxiliary heads dropped), without a download."""
    tvm = torchvision_models()
    row = tw.transforms(name)
    weights = tvm.get_model_weights(row["torchvision"])[row["weights"]]
    monkeypatch.setattr(type(weights), "get_state_dict", lambda self, *a, **k: state)
    return tvm.get_model(row["torchvision"], weights=weights).eval(), weights


@pytest.mark.parametrize(
    "name, everything",
    [
        pytest.param("mobilenet_v3_small", True, marks=[pytest.mark.jax, pytest.mark.torch]),
        ("googlenet_torchvision", False),  # torchvision's transform_input, aux heads dropped
    ],
)
def test_a_torch_saved_checkpoint_predicts_as_torchvision_on_real_pixels(
    name, everything, sample_images, tmp_path, monkeypatch
):
    """The bundled sample's images, resized and cropped, through torchvision's pretrained
    model (its checkpoint a random one saved with torch.save) and through the converted
    kerascnn model on raw pixels: on every backend; with ``everything``, also after
    `kerascnn convert` (no PyTorch at load time) and (TensorFlow) in its SavedModel export."""
    row = tw.transforms(name)
    net = random_torchvision(name, num_classes=1000)
    checkpoint = tmp_path / row["file"]
    torch.save(net.state_dict(), checkpoint)
    reference_net, weights = _pretrained_torchvision(name, net.state_dict(), monkeypatch)
    pixels = tw.preprocess(sample_images, name)
    assert pixels.shape == (6, row["crop_size"], row["crop_size"], 3) and pixels.dtype == np.uint8
    with torch.no_grad():
        t = weights.transforms()
        reference = reference_net(torchvision_input(pixels, t.mean, t.std)).numpy()

    model = zoo.create(name, weights=str(checkpoint))
    assert model.input_shape == (None, row["crop_size"], row["crop_size"], 3)
    assert model.layers[1].name == "standardize"
    assert relative(model.predict(pixels, verbose=0), reference) < TOLERANCE
    if not everything:
        return

    converted = tmp_path / f"{name}.weights.h5"
    tw.convert(zoo.model_info(name).build, name, checkpoint, converted)
    again = zoo.create(name, weights=str(converted))
    assert relative(again.predict(pixels, verbose=0), reference) < TOLERANCE

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from kerascnn.export import serving_export

        path = serving_export(model, tmp_path / "saved", class_names=[str(i) for i in range(1000)])
        served = tf.saved_model.load(path).signatures["serving_default"]
        exported = served(images=tf.constant(pixels))["logits"].numpy()
        assert relative(exported, reference) < TOLERANCE


def test_the_backbone_takes_every_tensor_but_the_classifiers(tmp_path):
    net = random_torchvision("resnet18")
    torch.save(net.state_dict(), tmp_path / "r.pth")
    backbone = zoo.create("resnet18", weights=str(tmp_path / "r.pth"), include_top=False,
                          pooling="avg", include_preprocessing=False, input_shape=(64, 64, 3))  # fmt: skip
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        reference = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert relative(backbone.predict(x, verbose=0), reference) < TOLERANCE


def test_safetensors_files_are_read_without_pytorch(tmp_path, monkeypatch):
    """Written by the safetensors library (its torch API), read here with torch unimportable;
    float32, float16 and bfloat16 tensors come back as torch holds them."""
    from safetensors.torch import save_file

    state = {"a.weight": torch.randn(3, 4), "b.bias": torch.randn(5).half(),
             "c.running_var": torch.randn(2, 2).bfloat16(), "c.num_batches_tracked": torch.tensor(7)}  # fmt: skip
    save_file(state, tmp_path / "x.safetensors")
    monkeypatch.setitem(sys.modules, "torch", None)
    read = tw.load_checkpoint(tmp_path / "x.safetensors")
    monkeypatch.undo()
    assert set(read) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(
            read[key], value.float().numpy() if value.is_floating_point() else value.numpy()
        )


def test_mobilenets_flat_torchvision_blocks_go_to_the_models_stage_blocks():
    """torchvision numbers MobileNet's blocks through the network (``features.1`` ...),
    kerascnn per stage of one width: the rule's ``block{i}`` is the model's i-th block, so
    v3 small's ``features.9`` (the first 96-wide block) is ``stage5_block1``."""
    model = zoo.create("mobilenet_v3_small", input_shape=(32, 32, 3), num_classes=2)
    layers = [layer for layer in model.layers if tw._keras_kind(layer)]
    flat = tw._flat_block_names(layers)
    found = {}
    for layer in layers:
        if flat[id(layer)] != layer.name:
            index = int(flat[id(layer)].split("_")[0][len("block") :])
            found.setdefault(index, set()).add("_".join(layer.name.split("_")[:2]))
    expected = ["stage1_block1", "stage2_block1", "stage2_block2", "stage3_block1",
                "stage3_block2", "stage3_block3", "stage4_block1", "stage4_block2",
                "stage5_block1", "stage5_block2", "stage5_block3"]  # fmt: skip
    assert found == {i: {block} for i, block in enumerate(expected, start=1)}
    assert {flat[id(layer)] for layer in layers} >= {"stem_conv", "last_conv", "head_fc"}


def test_a_safetensors_checkpoint_converts_as_the_pth(tmp_path):
    result = agreement("mobilenet_v3_small", tmp_path, suffix=".safetensors")
    assert result["logits"] < TOLERANCE


def _resnet18_state(num_classes=10):
    return {
        k: v.numpy() for k, v in random_torchvision("resnet18", num_classes).state_dict().items()
    }


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("resnet34", None,
         "checkpoint does not fit kerascnn's resnet34: variable 'stage1_block3_conv1/kernel' "
         "(3, 3, 64, 64) has no tensor in the checkpoint: it needs a tensor (64, 64, 3, 3)"),
        ("resnet18", lambda s: s.pop("layer3.0.bn1.running_var"),
         "checkpoint does not fit kerascnn's resnet18: variable 'stage3_block1_bn1/moving_variance' "
         "(256,) has no tensor in the checkpoint: it needs 'layer3.0.bn1.running_var' (256,)"),
        ("resnet18", lambda s: s.update({"layer5.0.conv1.weight": np.zeros((8, 8, 3, 3))}),
         "checkpoint does not fit kerascnn's resnet18: tensor 'layer5.0.conv1.weight' (8, 8, 3, 3) "
         "has no variable left in kerascnn's resnet18"),
        ("resnet18", lambda s: s.update({"fc.weight": np.zeros((10, 256))}),
         "checkpoint does not fit kerascnn's resnet18: tensor 'fc.weight' (10, 256) does not fit "
         "variable 'head_fc/kernel' (512, 10), which needs (10, 512)"),
        ("mobilenet_v2", None,
         "checkpoint does not fit kerascnn's mobilenet_v2: tensor 'conv1.weight' (64, 3, 7, 7) "
         "has no layer in kerascnn's mobilenet_v2"),
    ],
)  # fmt: skip
def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line_naming_the_first_tensor(
    name, edit, message
):
    state = _resnet18_state()
    if edit:
        edit(state)
    model = zoo.model_info(name).build(input_shape=(64, 64, 3), num_classes=10)
    with pytest.raises(UserInputError) as caught:
        tw.set_weights(model, name, state)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(message), str(caught.value)


def test_kerascnn_convert_writes_keras_weights_and_refuses_in_one_line(tmp_path, capsys):
    from kerascnn.cli import main

    net = random_torchvision("resnet18", num_classes=1000)
    checkpoint = tmp_path / "resnet18-f37072fd.pth"
    torch.save(net.state_dict(), checkpoint)
    out = tmp_path / "resnet18.weights.h5"
    assert main(["convert", "resnet18", str(checkpoint), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "IMAGENET1K_V1" in printed and "to 256" in printed
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        reference = net(torchvision_input(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])).numpy()
    loaded = zoo.create("resnet18", weights=str(out))
    assert relative(loaded.predict(x, verbose=0), reference) < TOLERANCE
    with pytest.raises(UserInputError, match="holds the weights of kerascnn's 'resnet18'"):
        zoo.create("resnet34", weights=str(out))

    assert main(["convert", "resnet34", str(checkpoint), str(tmp_path / "r34.weights.h5")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'stage1_block3_conv1/kernel'" in error
    assert main(["convert", "resnet20", str(checkpoint), str(tmp_path / "r20.weights.h5")]) == 2
    assert "received name='resnet20'" in capsys.readouterr().err


def test_adaptive_average_pool_equals_pytorchs():
    from kerascnn.layers import AdaptiveAveragePooling2D

    x = np.random.default_rng(0).normal(size=(2, 13, 5, 3)).astype("float32")
    for size in [(6, 6), (13, 5), (4, 7), (1, 1)]:
        expected = torch.nn.functional.adaptive_avg_pool2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), size
        )
        ours = keras.ops.convert_to_numpy(AdaptiveAveragePooling2D(size)(x))
        np.testing.assert_allclose(ours, expected.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_ceil_mode_max_pool_equals_pytorchs():
    from kerascnn.zoo.inception import max_pool

    for n, size in [(9, 3), (8, 3), (7, 2), (14, 2), (5, 3)]:
        x = np.random.default_rng(n).uniform(0, 1, size=(1, n, n + 2, 4)).astype("float32")
        inputs = keras.Input((n, n + 2, 4))
        model = keras.Model(inputs, max_pool(inputs, size, 2, "pool", ceil_mode=True))
        expected = torch.nn.functional.max_pool2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), size, 2, ceil_mode=True
        ).permute(0, 2, 3, 1)
        np.testing.assert_array_equal(model.predict(x, verbose=0), expected.numpy())
