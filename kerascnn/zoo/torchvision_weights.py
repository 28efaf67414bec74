"""torchvision's ImageNet checkpoints in kerascnn's networks.

``kerascnn.zoo.create("resnet50", weights="resnet50-0676ba61.pth")`` builds kerascnn's
``resnet50`` and sets every weight from the torchvision state dict in the file (``.pth``, read
with ``torch.load(weights_only=True)``: needs PyTorch, ``pip install 'kerascnn[torch]'``; or
``.safetensors``, read here with NumPy alone). ``kerascnn convert NAME CHECKPOINT
OUT.weights.h5`` (:func:`convert`) writes the converted weights once as a Keras weights file,
which ``create(NAME, weights="OUT.weights.h5")`` loads on any backend without PyTorch.

What the model does and what the caller does (torchvision's ``weights.transforms()``):

* The model takes raw RGB pixels, 0..255, uint8 or float, of the checkpoint's crop size
  (its input shape; 224x224 for most, 299x299 for Inception v3): its first layer,
  ``standardize``, is torchvision's ``Normalize`` of 0..1 pixels written in pixel units,
  ``(x - 255 * mean) / (255 * std)`` with ImageNet's mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225); for GoogLeNet and Inception v3, whose pretrained torchvision models
  also ``transform_input``, the two steps together, ``(x - 127.5) / 127.5``. It is a
  :class:`~kerascnn.zoo.pixels.PixelModel`, as the CIFAR-10 presets;
  ``include_preprocessing=False`` gives the bare network.
* The caller resizes and crops: the shorter side to ``resize_size`` (bilinear or bicubic, as
  the row says), then the centre ``crop_size`` square. :func:`preprocess` does that for PIL
  images or arrays, as torchvision's transforms do on PIL images; :func:`transforms` gives
  the row (``TORCHVISION_WEIGHTS``): e.g. ResNet-50's ``IMAGENET1K_V1`` weights want 256 /
  224, its ``IMAGENET1K_V2`` 232 / 224, Inception v3 342 / 299, EfficientNet-B4 384 / 380
  bicubic. A checkpoint is matched to its row by torchvision's file name
  (``resnet50-11ad3fa6.pth`` is ``IMAGENET1K_V2``); another file name gets the name's first
  row.

How tensors find their variables: every family has rules (``RULES``) that send a torchvision
module (``layer2.0.downsample.0``) to kerascnn layers by name (``stage2_block1_shortcut_conv``);
a rule may send several modules to a pattern of layers (torchvision's ``features.3`` of VGG to
``block\\d+_(conv|bn)\\d+``; MobileNet's flat ``features.{i}`` to the model's i-th
``stage{s}_block{b}``, ``FLAT_BLOCKS``), and then the modules, in torchvision's order, and the
layers, in the model's order, are paired kind by kind (convolutions, batch norms, dense, layer
norms, layer scales). Every pair must have the same shape after the layout change (convolution
kernels OIHW -> HWIO, depthwise kernels (C*m, 1, H, W) -> (H, W, C, m), dense kernels
transposed, and rows of a dense layer after a flatten reordered from CHW to HWC; BatchNorm
weight, bias, running mean and variance -> gamma, beta, moving mean and variance;
``num_batches_tracked`` is dropped). A checkpoint that does not fit (another architecture, a
missing or an extra tensor, a wrong shape) is refused with one line naming the first tensor
that differs (:class:`~kerascnn.errors.UserInputError`). Auxiliary classifiers are loaded
when the model has them (``inception_v3(aux_logits=True)``) and dropped otherwise, as
torchvision drops them from its pretrained models; a model built with ``include_top=False``
takes every tensor but the classifier's.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable, Mapping

import keras
import numpy as np

from kerascnn.errors import UserInputError

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RULES",
    "TORCHVISION_WEIGHTS",
    "convert",
    "is_checkpoint",
    "load_checkpoint",
    "load_weights_file",
    "preprocess",
    "pretrained",
    "read_safetensors",
    "set_weights",
    "transforms",
]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# GoogLeNet's and Inception v3's pretrained torchvision models set transform_input=True:
# ImageNet's Normalize followed by x * std / 0.5 + (mean - 0.5) / 0.5 is (x - 0.5) / 0.5.
HALF = (0.5, 0.5, 0.5)

# The rows: kerascnn name -> (torchvision builder, standardization (mean, std) of 0..1
# pixels, weights), each weights entry (torchvision's enum name, its file name, resize_size,
# crop_size, interpolation, ImageNet-1K top-1 %), from torchvision 0.28's weights enums
# (``torchvision.models.get_model_weights(name)``; a test checks them against torchvision).
_V1 = "IMAGENET1K_V1"
_V2 = "IMAGENET1K_V2"
TORCHVISION_WEIGHTS: dict[str, dict] = {
    name: {"torchvision": builder, "mean": mean, "std": std, "weights": weights}
    for name, builder, (mean, std), weights in [
        ("alexnet_torchvision", "alexnet", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "alexnet-owt-7be5be79.pth", 256, 224, "bilinear", 56.522)]),
        ("convnext_tiny", "convnext_tiny", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "convnext_tiny-983f1562.pth", 236, 224, "bilinear", 82.52)]),
        ("convnext_small", "convnext_small", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "convnext_small-0c510722.pth", 230, 224, "bilinear", 83.616)]),
        ("convnext_base", "convnext_base", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "convnext_base-6075fbad.pth", 232, 224, "bilinear", 84.062)]),
        ("densenet121", "densenet121", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "densenet121-a639ec97.pth", 256, 224, "bilinear", 74.434)]),
        ("densenet169", "densenet169", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "densenet169-b2777c0a.pth", 256, 224, "bilinear", 75.6)]),
        ("densenet201", "densenet201", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "densenet201-c1103571.pth", 256, 224, "bilinear", 76.896)]),
        ("efficientnet_b0", "efficientnet_b0", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b0_rwightman-7f5810bc.pth", 256, 224, "bicubic", 77.692)]),
        ("efficientnet_b1", "efficientnet_b1", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b1_rwightman-bac287d4.pth", 256, 240, "bicubic", 78.642),
            (_V2, "efficientnet_b1-c27df63c.pth", 255, 240, "bilinear", 79.838)]),
        ("efficientnet_b2", "efficientnet_b2", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b2_rwightman-c35c1473.pth", 288, 288, "bicubic", 80.608)]),
        ("efficientnet_b3", "efficientnet_b3", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b3_rwightman-b3899882.pth", 320, 300, "bicubic", 82.008)]),
        ("efficientnet_b4", "efficientnet_b4", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b4_rwightman-23ab8bcd.pth", 384, 380, "bicubic", 83.384)]),
        ("efficientnet_b5", "efficientnet_b5", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b5_lukemelas-1a07897c.pth", 456, 456, "bicubic", 83.444)]),
        ("efficientnet_b6", "efficientnet_b6", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b6_lukemelas-24a108a5.pth", 528, 528, "bicubic", 84.008)]),
        ("efficientnet_b7", "efficientnet_b7", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "efficientnet_b7_lukemelas-c5b4e57e.pth", 600, 600, "bicubic", 84.122)]),
        ("googlenet_torchvision", "googlenet", (HALF, HALF), [
            (_V1, "googlenet-1378be20.pth", 256, 224, "bilinear", 69.778)]),
        ("inception_v3", "inception_v3", (HALF, HALF), [
            (_V1, "inception_v3_google-0cc3c7bd.pth", 342, 299, "bilinear", 77.294)]),
        ("mobilenet_v2", "mobilenet_v2", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "mobilenet_v2-b0353104.pth", 256, 224, "bilinear", 71.878),
            (_V2, "mobilenet_v2-7ebf99e0.pth", 232, 224, "bilinear", 72.154)]),
        ("mobilenet_v3_large", "mobilenet_v3_large", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "mobilenet_v3_large-8738ca79.pth", 256, 224, "bilinear", 74.042),
            (_V2, "mobilenet_v3_large-5c1a4163.pth", 232, 224, "bilinear", 75.274)]),
        ("mobilenet_v3_small", "mobilenet_v3_small", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "mobilenet_v3_small-047dcff4.pth", 256, 224, "bilinear", 67.668)]),
        ("resnet18", "resnet18", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnet18-f37072fd.pth", 256, 224, "bilinear", 69.758)]),
        ("resnet34", "resnet34", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnet34-b627a593.pth", 256, 224, "bilinear", 73.314)]),
        ("resnet50", "resnet50", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnet50-0676ba61.pth", 256, 224, "bilinear", 76.13),
            (_V2, "resnet50-11ad3fa6.pth", 232, 224, "bilinear", 80.858)]),
        ("resnet101", "resnet101", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnet101-63fe2227.pth", 256, 224, "bilinear", 77.374),
            (_V2, "resnet101-cd907fc2.pth", 232, 224, "bilinear", 81.886)]),
        ("resnet152", "resnet152", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnet152-394f9c45.pth", 256, 224, "bilinear", 78.312),
            (_V2, "resnet152-f82ba261.pth", 232, 224, "bilinear", 82.284)]),
        ("resnext50_32x4d", "resnext50_32x4d", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnext50_32x4d-7cdf4587.pth", 256, 224, "bilinear", 77.618),
            (_V2, "resnext50_32x4d-1a0047aa.pth", 232, 224, "bilinear", 81.198)]),
        ("resnext101_32x8d", "resnext101_32x8d", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "resnext101_32x8d-8ba56ff5.pth", 256, 224, "bilinear", 79.312),
            (_V2, "resnext101_32x8d-110c445d.pth", 232, 224, "bilinear", 82.834)]),
        ("vgg11", "vgg11", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg11-8a719046.pth", 256, 224, "bilinear", 69.02)]),
        ("vgg11_bn", "vgg11_bn", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg11_bn-6002323d.pth", 256, 224, "bilinear", 70.37)]),
        ("vgg13", "vgg13", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg13-19584684.pth", 256, 224, "bilinear", 69.928)]),
        ("vgg13_bn", "vgg13_bn", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg13_bn-abd245e5.pth", 256, 224, "bilinear", 71.586)]),
        ("vgg16", "vgg16", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg16-397923af.pth", 256, 224, "bilinear", 71.592)]),
        ("vgg16_bn", "vgg16_bn", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg16_bn-6c64b313.pth", 256, 224, "bilinear", 73.36)]),
        ("vgg19", "vgg19", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg19-dcbb9e9d.pth", 256, 224, "bilinear", 72.376)]),
        ("vgg19_bn", "vgg19_bn", (IMAGENET_MEAN, IMAGENET_STD), [
            (_V1, "vgg19_bn-c79401a0.pth", 256, 224, "bilinear", 74.218)]),
    ]
}  # fmt: skip

# --------------------------------------------------------------------------- the rules
# A rule: (torchvision module regex, kerascnn layer regex). The module path is matched whole;
# its groups (digit strings as ints) fill the layer pattern, a format string or a function.
Rule = tuple[str, str | Callable[..., str]]

# Inception v3's branches in kerascnn's order (mixed{key}_b{j}), per module kind; the kind
# of each Mixed block; torchvision's Mixed_6a and Mixed_7a have no pool parameters.
_INCEPTION_BRANCHES = {
    "A": ("branch1x1", "branch5x5", "branch3x3dbl", "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl"),
    "C": ("branch1x1", "branch7x7", "branch7x7dbl", "branch_pool"),
    "D": ("branch3x3", "branch7x7x3"),
    "E": ("branch1x1", "branch3x3", "branch3x3dbl", "branch_pool"),
}
_INCEPTION_KINDS = {"5b": "A", "5c": "A", "5d": "A", "6a": "B", "6b": "C", "6c": "C",
                    "6d": "C", "6e": "C", "7a": "D", "7b": "E", "7c": "E"}  # fmt: skip


def _inception_mixed(key, branch, suffix, kind):
    j = _INCEPTION_BRANCHES[_INCEPTION_KINDS[key]].index(branch) + 1
    return f"mixed{key}_b{j}_{kind}{suffix or 1}"


RULES: dict[str, list[Rule]] = {
    "resnet": [
        (r"conv1", "stem_conv"),
        (r"bn1", "stem_bn"),
        (r"layer(\d+)\.(\d+)\.(conv|bn)(\d)", lambda s, b, k, i: f"stage{s}_block{b + 1}_{k}{i}"),
        (r"layer(\d+)\.(\d+)\.downsample\.\d", lambda s, b: f"stage{s}_block{b + 1}_shortcut_(conv|bn)"),
        (r"fc", "head_fc"),
    ],
    "vgg": [
        (r"features\.\d+", r"block\d+_(conv|bn)\d+"),
        (r"classifier\.\d+", r"fc\d|head_fc"),
    ],
    "alexnet": [
        (r"features\.\d+", r"conv\d"),
        (r"classifier\.\d+", r"fc\d|head_fc"),
    ],
    "mobilenet": [
        (r"features\.0\.\d", r"stem_(conv|bn)"),
        (r"features\.(\d+)\.(?:conv|block)\..+", "block{}_.+"),  # the i-th block: FLAT_BLOCKS
        (r"features\.\d+\.\d", r"last_(conv|bn)"),
        (r"classifier\.\d+", r"head_fc\d?"),
    ],
    "efficientnet": [
        (r"features\.0\.\d", r"stem_(conv|bn)"),
        (r"features\.(\d+)\.(\d+)\.block\..+", lambda s, b: f"stage{s}_block{b + 1}_.+"),
        (r"features\.\d+\.\d", r"top_(conv|bn)"),
        (r"classifier\.1", "head_fc"),
    ],
    "densenet": [
        (r"features\.(?:conv|norm)0", r"stem_(conv|bn)"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.(?:norm|conv)\d", r"stage{}_block{}_(bn|conv)\d"),
        (r"features\.transition(\d+)\.(?:norm|conv)", "transition{}_(bn|conv)"),
        (r"features\.norm5", "post_bn"),
        (r"classifier", "head_fc"),
    ],
    "convnext": [
        (r"features\.0\.\d", r"stem_(conv|norm)"),
        (r"features\.(\d+)\.(\d+)\.(?:block\.\d+|layer_scale)",
         lambda f, b: f"stage{(f + 1) // 2}_block{b + 1}_.+"),
        (r"features\.(\d+)\.\d", lambda f: f"downsample{f // 2 + 1}_(norm|conv)"),
        (r"classifier\.\d", r"head_(norm|fc)"),
    ],
    "inception_v3": [
        (r"Conv2d_\w+\.(?:conv|bn)", r"stem_(conv|bn)\d"),
        (r"Mixed_(\d[a-e])\.(branch(?:_pool|\d+x\d+(?:x\d+|dbl)?))(?:_(\d[ab]?))?\.(conv|bn)",
         _inception_mixed),
        (r"AuxLogits\.conv(\d)\.(conv|bn)", lambda i, k: f"aux_{k}{i + 1}"),
        (r"AuxLogits\.fc", "aux_fc"),
        (r"fc", "head_fc"),
    ],
    "googlenet": [
        (r"conv(\d)\.(conv|bn)", "stem{}_{}"),
        (r"inception(\w+)\.branch1\.(conv|bn)", "inception{}_b1_{}"),
        (r"inception(\w+)\.branch([23])\.(\d)\.(conv|bn)", lambda m, j, i, k: f"inception{m}_b{j}_{k}{i + 1}"),
        (r"inception(\w+)\.branch4\.1\.(conv|bn)", "inception{}_b4_{}"),
        (r"fc", "head_fc"),
    ],
}  # fmt: skip
# Families whose torchvision blocks are numbered through the network (MobileNet's
# ``features.1`` ... ``features.17``) while kerascnn's are numbered per stage
# (``stage2_block1_...``, stages that differ between v2, v3 large and v3 small): their rules
# name ``block{i}_...``, the i-th of the model's ``stage{s}_block{b}`` blocks in (s, b) order
# (:func:`_flat_block_names`), so that each torchvision block is still paired with one
# kerascnn block, whichever version the model is.
FLAT_BLOCKS = {"mobilenet"}
# Modules of auxiliary classifiers: dropped when the kerascnn model has no layer for them.
OPTIONAL = {"inception_v3": r"AuxLogits\..+", "googlenet": r"aux[12]\..+"}
# The classifier's modules: dropped when the model is built without its top (include_top=False).
HEADS = {"resnet": r"fc", "inception_v3": r"fc", "googlenet": r"fc", "densenet": r"classifier"}


def _family(name: str) -> str:
    for prefix, family in (("resne", "resnet"), ("vgg", "vgg"), ("alexnet", "alexnet"),
                           ("mobilenet", "mobilenet"), ("efficientnet", "efficientnet"),
                           ("densenet", "densenet"), ("convnext", "convnext"),
                           ("inception_v3", "inception_v3"), ("googlenet", "googlenet")):  # fmt: skip
        if name.startswith(prefix):
            return family
    raise AssertionError(name)


def check_name(name: str) -> dict:
    """The row of ``name``; :class:`UserInputError` naming those that convert otherwise."""
    if name not in TORCHVISION_WEIGHTS:
        listed = ", ".join(TORCHVISION_WEIGHTS)
        raise UserInputError(
            f"torchvision checkpoints convert into these kerascnn models: {listed}; "
            f"received name={name!r}"
        )
    return TORCHVISION_WEIGHTS[name]


def transforms(name: str, checkpoint: str | pathlib.Path | None = None) -> dict:
    """torchvision's input contract of ``name``'s weights: ``weights`` (the enum name, e.g.
    ``"IMAGENET1K_V2"``), ``file``, ``resize_size``, ``crop_size``, ``interpolation``,
    ``acc@1``, and ``mean`` / ``std`` of 0..1 pixels (the model's ``standardize`` layer holds
    them times 255). The row whose file name is ``checkpoint``'s, else the first."""
    row = check_name(name)
    entries = [
        dict(zip(("weights", "file", "resize_size", "crop_size", "interpolation", "acc@1"), e, strict=True))
        for e in row["weights"]
    ]  # fmt: skip
    chosen = entries[0]
    if checkpoint is not None:
        chosen = next((e for e in entries if e["file"] == pathlib.Path(checkpoint).name), chosen)
    return {**chosen, "torchvision": row["torchvision"], "mean": row["mean"], "std": row["std"]}


def preprocess(images, name: str, checkpoint=None) -> np.ndarray:
    """``images`` (PIL images, or uint8 arrays HxWx3 / a batch NxHxWx3) resized and centre
    cropped as torchvision's ``weights.transforms()`` do on PIL images: the shorter side to
    ``resize_size`` (PIL's antialiased bilinear or bicubic), then the centre ``crop_size``
    square. Returns uint8 pixels ``(N, crop, crop, 3)``, the converted model's input."""
    from PIL import Image

    row = transforms(name, checkpoint)
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[row["interpolation"]]
    size, crop = row["resize_size"], row["crop_size"]
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    out = []
    for image in images:
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image, dtype=np.uint8))
        image = image.convert("RGB")
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(size * long / short)
        image = image.resize((size, new_long) if w <= h else (new_long, size), resample)
        w, h = image.size
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        out.append(np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8))
    return np.stack(out)


# --------------------------------------------------------------------------- reading
def read_safetensors(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file as NumPy arrays, in the file's order, read with
    NumPy alone (the format: an 8-byte little-endian header length, a JSON header of
    ``{name: {"dtype", "shape", "data_offsets"}}``, the raw little-endian data)."""
    path = pathlib.Path(path)
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
              "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}  # fmt: skip
    data = path.read_bytes()

    def refuse(why):
        return UserInputError(f"{path} is not a readable .safetensors file: {why}")

    if len(data) < 8:
        raise refuse("it is shorter than the 8-byte header length")
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as error:
        raise refuse(f"its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    start = 8 + size
    tensors = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if spec.get("dtype") not in dtypes:
            raise refuse(
                f"tensor {key!r} has dtype {spec.get('dtype')!r}; readable: {', '.join(dtypes)}"
            )
        begin, end = spec["data_offsets"]
        shape = tuple(int(d) for d in spec["shape"])
        dtype = np.dtype(dtypes[spec["dtype"]])
        if start + end > len(data) or end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise refuse(f"tensor {key!r} {shape} does not match its data offsets {begin}..{end}")
        array = np.frombuffer(data, dtype, int(np.prod(shape)), start + begin).reshape(shape)
        if spec["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[key] = array
    return tensors


def _read_pth(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        from kerascnn.backends import MissingDependencyError

        raise MissingDependencyError(
            f"reading {path} (a PyTorch .pth checkpoint) needs PyTorch: pip install "
            "'kerascnn[torch]', or convert the checkpoint to .safetensors, which needs no PyTorch"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a zip or pickle that is not a state dict of tensors
        raise UserInputError(
            f"{path} is not a PyTorch state dict torch.load(weights_only=True) can read: "
            f"{' '.join(str(error).split())[:200]}"
        ) from None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserInputError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors "
            "(torchvision's checkpoints are model.state_dict())"
        )
    return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in state.items()}  # fmt: skip


def is_checkpoint(weights) -> bool:
    """Whether ``weights`` (the argument of ``create``) names a file to convert or load: a
    path ending in ``.pth``, ``.pt``, ``.safetensors`` or ``.weights.h5``."""
    text = str(weights) if isinstance(weights, (str, pathlib.Path)) else ""
    return text.endswith((*CHECKPOINT_SUFFIXES, KERAS_WEIGHTS_SUFFIX))


def load_checkpoint(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The state dict in ``path`` (``.pth``/``.pt`` with PyTorch, ``.safetensors`` without)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in (".pth", ".pt"):
        return _read_pth(path)
    raise UserInputError(
        f"checkpoint must be a .pth, .pt or .safetensors file; received {str(path)!r}"
    )


# --------------------------------------------------------------------------- pairing
_TENSOR_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_TORCH_OF = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
             "moving_mean": "running_mean", "moving_variance": "running_var", "scale": ""}  # fmt: skip


def _natural(text: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _torch_modules(state: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Module path -> {tensor name: array}, in the checkpoint's order; a parameter held
    directly by a module (ConvNeXt's ``layer_scale``) is a module of its own, tensor ``""``."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, tensor = key.rpartition(".")
        if tensor not in _TENSOR_NAMES:
            module, tensor = key, ""
        if tensor != "num_batches_tracked":
            modules.setdefault(module, {})[tensor] = np.asarray(value)
    return modules


def _torch_kind(tensors: Mapping[str, np.ndarray]) -> str:
    if "" in tensors:
        return "scale"
    if "running_mean" in tensors:
        return "bn"
    return {4: "conv", 2: "dense", 1: "norm"}.get(tensors.get("weight", np.zeros(())).ndim, "other")


# kerascnn's own layers by their registered (serialization) names: this module imports no
# builder module, since the registry imports it.
_LAYER_SCALE = "kerascnn>LayerScale"
_ADAPTIVE_POOL = "kerascnn>AdaptiveAveragePooling2D"


def _registered(layer) -> str:
    return keras.saving.get_registered_name(type(layer))


def _keras_kind(layer) -> str | None:
    for cls, kind in ((keras.layers.BatchNormalization, "bn"), (keras.layers.Conv2D, "conv"),
                      (keras.layers.DepthwiseConv2D, "conv"), (keras.layers.Dense, "dense"),
                      (keras.layers.LayerNormalization, "norm")):  # fmt: skip
        if isinstance(layer, cls):
            return kind
    return "scale" if _registered(layer) == _LAYER_SCALE else None


def _flat_block_names(layers) -> dict[int, str]:
    """``{id(layer): name}`` with ``stage{s}_block{b}_rest`` written ``block{i}_rest``, ``i``
    counting the blocks from 1 in order of (s, b); other names as they are."""
    pattern = re.compile(r"stage(\d+)_block(\d+)_(.+)")
    found = {id(layer): m for layer in layers if (m := pattern.fullmatch(layer.name))}
    order = sorted({(int(m[1]), int(m[2])) for m in found.values()})
    index = {stage_block: i for i, stage_block in enumerate(order, start=1)}
    names = {id(layer): layer.name for layer in layers}
    for key, m in found.items():
        names[key] = f"block{index[int(m[1]), int(m[2])]}_{m[3]}"
    return names


def _key(module: str, tensor: str) -> str:
    return f"{module}.{tensor}" if tensor else module


def _converted(layer, variable, array: np.ndarray, flattened) -> np.ndarray:
    """``array`` (torch layout) in the layout of ``variable`` of ``layer``."""
    name = variable.name
    if name == "kernel" and array.ndim == 4:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w = array.shape[2:]
            return array.transpose(2, 3, 0, 1).reshape(h, w, *variable.shape[2:])
        return array.transpose(2, 3, 1, 0)
    if name == "kernel" and array.ndim == 2:
        if flattened is not None and array.shape[1] == int(np.prod(flattened)):
            h, w, c = flattened  # torch flattens C, H, W; Keras H, W, C
            array = array.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(array.shape[0], -1)
        return array.T
    if name == "scale":
        return array.reshape(-1)
    return array


def _torch_shape(layer, variable) -> tuple[int, ...]:
    """The shape the torch tensor of ``variable`` must have."""
    shape = tuple(variable.shape)
    if variable.name == "kernel" and len(shape) == 4:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return (shape[2] * shape[3], 1, shape[0], shape[1])
        return (shape[3], shape[2], shape[0], shape[1])
    if variable.name == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return shape


def _fits(layer, variable, array) -> bool:
    if variable.name == "scale":
        return array.size == int(np.prod(variable.shape)) and array.shape[0] == variable.shape[0]
    return tuple(array.shape) == _torch_shape(layer, variable)


def set_weights(
    model: keras.Model, name: str, state: Mapping[str, np.ndarray], source="checkpoint"
) -> keras.Model:
    """Set every weight of ``model`` (kerascnn's ``name``, freshly built, without
    preprocessing) from the torchvision state dict ``state``, or raise
    :class:`UserInputError` naming the first tensor that does not fit (``source`` names the
    file in the message)."""
    check_name(name)
    family = _family(name)
    rules = [(re.compile(pattern), target) for pattern, target in RULES[family]]
    optional = OPTIONAL.get(family, r"(?!)")
    if not any(layer.name == "head_fc" for layer in model.layers):  # include_top=False
        optional += "|" + HEADS.get(family, r"classifier\..+")
    optional = re.compile(optional)
    layers = [layer for layer in model.layers if _keras_kind(layer)]
    # The (H, W, C) a flatten saw, by the tensors that carry its output (through dropout).
    flatten_inputs: dict[int, tuple] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            flatten_inputs[id(layer.output)] = tuple(layer.input.shape[1:])
        elif _registered(layer) == _ADAPTIVE_POOL and layer.flatten:
            flatten_inputs[id(layer.output)] = (*layer.output_size, layer.input.shape[-1])
        elif isinstance(layer, keras.layers.Dropout) and id(layer.input) in flatten_inputs:
            flatten_inputs[id(layer.output)] = flatten_inputs[id(layer.input)]

    def refuse(message):
        return UserInputError(f"{source} does not fit kerascnn's {name}: {message}")

    # Group the modules by the layer pattern their rule gives; pair within a group by kind.
    modules = _torch_modules(state)
    groups: dict[str, list[str]] = {}
    dropped: set[str] = set()  # auxiliary classifiers the model does not have
    for module in modules:
        for pattern, target in rules:
            match = pattern.fullmatch(module)
            if match:
                args = [int(g) if g and g.isdigit() else g for g in match.groups()]
                groups.setdefault(
                    target(*args) if callable(target) else target.format(*args), []
                ).append(module)
                break
        else:
            if optional.fullmatch(module):
                dropped.add(module)
            else:
                first = next(iter(modules[module].items()))
                raise refuse(
                    f"tensor {_key(module, first[0])!r} {tuple(first[1].shape)} has no "
                    f"layer in kerascnn's {name} (another architecture?)"
                )
    pairs: dict[str, object] = {}  # torch module -> keras layer
    rule_names = (
        _flat_block_names(layers) if family in FLAT_BLOCKS
        else {id(layer): layer.name for layer in layers}
    )  # fmt: skip
    for pattern, members in groups.items():
        regex = re.compile(pattern)
        candidates = [layer for layer in layers if regex.fullmatch(rule_names[id(layer)])]
        if not candidates and all(optional.fullmatch(m) for m in members):
            dropped.update(members)
            continue
        for kind in dict.fromkeys(_torch_kind(modules[m]) for m in members):
            theirs = sorted((m for m in members if _torch_kind(modules[m]) == kind), key=_natural)
            ours = [layer for layer in candidates if _keras_kind(layer) == kind]
            pairs.update(zip(theirs, ours, strict=False))
    # Check and convert in the checkpoint's order: the first misfit is the one reported.
    values: dict[int, np.ndarray] = {}
    for module, tensors in modules.items():
        layer = pairs.get(module)
        if module in dropped:
            continue
        if layer is None:
            key, array = next(iter(tensors.items()))
            raise refuse(
                f"tensor {_key(module, key)!r} {tuple(array.shape)} has no variable left in "
                f"kerascnn's {name} (an extra tensor, or another architecture)"
            )
        by_name = {_TORCH_OF.get(v.name, v.name): v for v in layer.weights}
        for tensor, array in tensors.items():
            variable = by_name.get(tensor)
            if variable is None:
                raise refuse(
                    f"tensor {_key(module, tensor)!r} {tuple(array.shape)} has no variable in "
                    f"layer {layer.name!r} ({', '.join(v.path for v in layer.weights)})"
                )
            if not _fits(layer, variable, array):
                raise refuse(
                    f"tensor {_key(module, tensor)!r} {tuple(array.shape)} does not fit variable "
                    f"{variable.path!r} {tuple(variable.shape)}, which needs "
                    f"{_torch_shape(layer, variable)}"
                )
            flattened = flatten_inputs.get(id(layer.input)) if variable.name == "kernel" else None
            values[id(variable)] = _converted(layer, variable, array, flattened)
    modules_of = {id(layer): module for module, layer in pairs.items()}
    for layer in layers:
        for variable in layer.weights:
            if id(variable) not in values:
                module = modules_of.get(id(layer))
                wanted = f"{_key(module, _TORCH_OF[variable.name])!r} " if module else "a tensor "
                raise refuse(
                    f"variable {variable.path!r} {tuple(variable.shape)} has no tensor in the "
                    f"checkpoint: it needs {wanted}{_torch_shape(layer, variable)} (a missing "
                    "tensor, or another architecture)"
                )
    for layer in layers:
        for variable in layer.weights:
            variable.assign(values[id(variable)].astype(variable.dtype))
    return model


# --------------------------------------------------------------------------- models
def _standardization(row: dict) -> list[keras.Layer]:
    from kerascnn.layers import Standardize

    return [
        Standardize(
            [255.0 * m for m in row["mean"]], [255.0 * s for s in row["std"]], name="standardize"
        )
    ]


def _build(build: Callable[..., keras.Model], name: str, row: dict, overrides: dict) -> keras.Model:
    if overrides.get("input_shape") is None and "crop_size" in row:
        overrides = {**overrides, "input_shape": (row["crop_size"], row["crop_size"], 3)}
    return build(**overrides)


def pretrained(
    build: Callable[..., keras.Model],
    name: str,
    path: str | pathlib.Path,
    include_preprocessing: bool | None = None,
    **overrides,
) -> keras.Model:
    """``build(**overrides)`` (kerascnn's ``name``; input shape by default the checkpoint's
    crop size) with the weights of ``path``: a torchvision checkpoint (``.pth``, ``.pt``,
    ``.safetensors``) converted, or a ``.weights.h5`` file written by :func:`convert`. With
    the checkpoint's standardization in front (a
    :class:`~kerascnn.zoo.pixels.PixelModel` taking raw 0..255 pixels) unless
    ``include_preprocessing=False``. ``kerascnn.zoo.create(name, weights=path)`` calls this."""
    from kerascnn.checks import check_bool
    from kerascnn.zoo.pixels import with_preprocessing

    if include_preprocessing is not None:
        check_bool("include_preprocessing", include_preprocessing)
    path = pathlib.Path(path)
    if str(path).endswith(KERAS_WEIGHTS_SUFFIX):
        model, row = load_weights_file(build, name, path, overrides)
    else:
        row = transforms(name, path)
        state = load_checkpoint(path)
        model = set_weights(_build(build, name, row, overrides), name, state, source=str(path))
    if include_preprocessing is False or row is None:
        return model
    return with_preprocessing(model, _standardization(row))


# The converted file's metadata: the contract row, stored as an attribute of the HDF5 root.
_META = "kerascnn_torchvision"


def convert(
    build: Callable[..., keras.Model],
    name: str,
    checkpoint: str | pathlib.Path,
    out: str | pathlib.Path,
    **overrides,
) -> dict:
    """Convert the torchvision ``checkpoint`` for kerascnn's ``name`` (built by ``build``,
    ``kerascnn.zoo.model_info(name).build``) and write the weights of the bare network to
    ``out`` (a Keras ``.weights.h5`` file, with the checkpoint's input contract as metadata),
    so that ``create(name, weights=out)`` needs no PyTorch. Returns the contract row
    (:func:`transforms`). ``kerascnn convert NAME CHECKPOINT OUT``."""
    import h5py

    out = pathlib.Path(out)
    if not str(out).endswith(KERAS_WEIGHTS_SUFFIX):
        raise UserInputError(f"out must end in {KERAS_WEIGHTS_SUFFIX}; received out={str(out)!r}")
    row = transforms(name, checkpoint)
    model = set_weights(
        _build(build, name, row, overrides), name, load_checkpoint(checkpoint), str(checkpoint)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)
    with h5py.File(out, "a") as f:
        f.attrs[_META] = json.dumps({"name": name, **row})
    return row


def load_weights_file(build, name: str, path: pathlib.Path, overrides: dict):
    """``(model, row)``: ``build(**overrides)`` with the Keras weights file ``path``; ``row``
    is the torchvision contract stored by :func:`convert` (None for a file without it: the
    bare network is returned as it is)."""
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with h5py.File(path, "r") as f:
        meta = f.attrs.get(_META)
    row = json.loads(meta) if meta is not None else None
    if row is not None and row.get("name") != name:
        raise UserInputError(
            f"{path} holds the weights of kerascnn's {row.get('name')!r} (converted from "
            f"{row.get('file')!r}); received name={name!r}"
        )
    model = _build(build, name, row or {}, overrides)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise UserInputError(
            f"{path} does not fit kerascnn's {name}: {' '.join(str(error).split())[:300]}"
        ) from None
    return model, row


def convert_command(build, name: str, checkpoint: str, out: str) -> list[str]:
    """``kerascnn convert NAME CHECKPOINT OUT``: :func:`convert`, then the lines it prints
    (what was written and the input the model expects)."""
    row = convert(build, name, checkpoint, out)
    return [
        f"wrote {out}: kerascnn's {name} with the weights of {checkpoint} "
        f"(torchvision's {row['torchvision']} {row['weights']}, top-1 {row['acc@1']} %)",
        f"input: RGB pixels 0..255, the shorter side resized to {row['resize_size']} "
        f"({row['interpolation']}) and the centre {row['crop_size']}x{row['crop_size']} cropped "
        "(kerascnn.zoo.torchvision_weights.preprocess); the model standardizes them itself",
        f"load: kerascnn.zoo.create({name!r}, weights={str(out)!r}) (no PyTorch needed)",
    ]
