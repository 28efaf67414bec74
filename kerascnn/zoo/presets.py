"""Trained weights shipped with the package, as torchvision's ``Weights`` and timm's
pretrained configs: ``kerascnn.zoo.create("resnet20", weights="cifar10")``.

Each preset is a ``.npz`` file of the model's weights by layer name in
``kerascnn/zoo/weights/`` and an entry of ``presets.json`` there: the data and split it was
trained and validated on, the recipe and command, epochs, validation accuracy, date, the
input standardization it expects (per-channel mean and std of raw 0..255 pixels) and the
file's SHA-256, which is checked on every load. ``scripts/make_preset.py`` writes both from a
``kerascnn train`` run folder.

A model created with weights takes raw pixels: :func:`pretrained` puts the preset's
standardization in front of the network (:mod:`kerascnn.zoo.pixels`), unless
``include_preprocessing=False`` asks for the bare network, whose input is
:func:`standardize`'s output.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from collections.abc import Callable

import keras
import numpy as np

from kerascnn.errors import UserInputError

__all__ = [
    "WEIGHTS_DIR",
    "load_weights",
    "preprocessing",
    "preset",
    "presets",
    "pretrained",
    "standardize",
]

WEIGHTS_DIR = pathlib.Path(__file__).with_name("weights")


@functools.cache
def presets() -> dict[str, dict[str, dict]]:
    """Model name -> weights name -> metadata, from ``weights/presets.json``."""
    path = WEIGHTS_DIR / "presets.json"
    return json.loads(path.read_text()) if path.exists() else {}


def preset(name: str, weights: str) -> dict:
    """The metadata of ``name``'s weights ``weights``; ``UserInputError`` listing those that exist."""
    available = presets().get(name, {})
    if weights not in available:
        listed = ", ".join(repr(w) for w in available) or "none yet"
        raise UserInputError(
            f"weights={weights!r} are not available for {name!r}; available: {listed}"
        )
    return available[weights]


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_compatible(name: str, weights: str, input_shape, num_classes, include_top) -> None:
    """Refuse builder arguments the weights cannot serve (a different number of classes with
    the top, or a different number of input channels)."""
    meta = preset(name, weights)
    shape = tuple(meta["input_shape"])
    if input_shape is not None and tuple(input_shape)[-1] != shape[-1]:
        raise UserInputError(
            f"weights={weights!r} of {name!r} take {shape[-1]}-channel images "
            f"(input_shape={shape}); received input_shape={tuple(input_shape)!r}"
        )
    if include_top and num_classes is not None and num_classes != meta["num_classes"]:
        raise UserInputError(
            f"weights={weights!r} of {name!r} have a classifier of {meta['num_classes']} classes; "
            f"received num_classes={num_classes!r} (pass include_top=False to use the "
            "features with a new head)"
        )


def load_weights(model: keras.Model, name: str, weights: str) -> keras.Model:
    """Set ``model``'s layers from the preset, by layer name (a model built with
    ``include_top=False`` takes the backbone's); the file's SHA-256 is checked first."""
    meta = preset(name, weights)
    path = WEIGHTS_DIR / meta["file"]
    if not path.is_file():
        raise FileNotFoundError(f"the weights file of {name!r} {weights!r} is missing: {path}")
    digest = _sha256(path)
    if digest != meta["sha256"]:
        raise UserInputError(
            f"{path} has SHA-256 {digest}, not the {meta['sha256']} of presets.json: the file "
            "is damaged or was replaced; reinstall kerascnn"
        )
    with np.load(path) as stored:
        arrays = dict(stored)
    for layer in model.layers:
        if not layer.weights:
            continue
        values = [arrays.get(f"{layer.name}/{i}") for i in range(len(layer.weights))]
        if any(v is None for v in values):
            raise UserInputError(
                f"weights={weights!r} of {name!r} have no weights for layer {layer.name!r}; "
                "was the model built with other architecture arguments?"
            )
        layer.set_weights(values)
    return model


def preprocessing(name: str, weights: str) -> list[keras.Layer]:
    """The layers that turn raw 0..255 pixels into the input ``name``'s weights ``weights``
    were trained on: one :class:`~kerascnn.layers.Standardize` (layer ``standardize``)."""
    from kerascnn.layers import Standardize

    meta = preset(name, weights)
    return [Standardize(meta["mean"], meta["std"], name="standardize")]


def pretrained(
    build: Callable[[], keras.Model],
    name: str,
    weights: str,
    *,
    input_shape=None,
    num_classes=None,
    include_top: bool = True,
    include_preprocessing: bool | None = None,
) -> keras.Model:
    """``build()`` with the weights ``weights`` of the registered ``name`` (after refusing
    arguments they cannot serve) and, unless ``include_preprocessing`` is False, the preset's
    :func:`preprocessing` in front: a :class:`~kerascnn.zoo.pixels.PixelModel` that takes raw
    0..255 pixels. With ``include_preprocessing=False``: the bare network, whose input is
    :func:`standardize`'s output."""
    from kerascnn.checks import check_bool
    from kerascnn.zoo.pixels import with_preprocessing

    if include_preprocessing is not None:
        check_bool("include_preprocessing", include_preprocessing)
    check_compatible(name, weights, input_shape, num_classes, include_top)
    model = load_weights(build(), name, weights)
    if include_preprocessing is False:
        return model
    return with_preprocessing(model, preprocessing(name, weights))


def standardize(images, name: str, weights: str) -> np.ndarray:
    """Raw 0..255 pixels standardized as the preset was trained: ``(x - mean) / std``, the
    input of the bare network (``include_preprocessing=False``)."""
    meta = preset(name, weights)
    mean = np.asarray(meta["mean"], "float32")
    std = np.asarray(meta["std"], "float32")
    return (np.asarray(images, "float32") - mean) / std


def arrays_of(model: keras.Model, rename: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{"layer/i": weight}`` of every layer with weights (``rename`` maps a layer name of
    ``model`` to the name it has in the zoo model): the preset file's content."""
    rename = rename or {}
    return {
        f"{rename.get(layer.name, layer.name)}/{i}": keras.ops.convert_to_numpy(w)
        for layer in model.layers
        for i, w in enumerate(layer.weights)
    }
