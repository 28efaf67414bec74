"""The model registry: one data row per named variant.

A row (:class:`ModelInfo`) holds everything known about a name: its family builder and the
arguments that make the variant, the data it is defined on (default input shape, number of
classes and input statistics), the paper, the default training recipe, the trained weights
available, the stage strides of its feature extractor, and (from ``model_table.json``, which
``python -m kerascnn.zoo.table`` measures) its parameter and multiply-add counts.
``kerascnn list`` and docs/models.md are generated from the rows.

``register_variant`` adds a row; a name is registered once (as torchvision; timm silently
overwrites).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import json
import pathlib
import re
import types
from collections.abc import Callable, Mapping

import keras

from kerascnn.errors import UserInputError

__all__ = [
    "DATASETS",
    "ModelInfo",
    "close_matches",
    "create",
    "list_models",
    "load_counts",
    "model_info",
    "register",
    "register_variant",
    "variant_of",
]

# The data a variant is defined on: default input shape and number of classes. LeNet-5's
# "mnist" is the paper's 32x32 padded digits.
DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "cifar10": ((32, 32, 3), 10),
    "imagenet": ((224, 224, 3), 1000),
    "mnist": ((32, 32, 1), 10),
}

TABLE_PATH = pathlib.Path(__file__).with_name("model_table.json")


@functools.cache
def load_counts() -> dict[str, dict]:
    """The measured counts of ``model_table.json``: name -> trainable_params, macs."""
    return json.loads(TABLE_PATH.read_text()) if TABLE_PATH.exists() else {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One registered name: what builds it and what is known about it."""

    name: str
    family: str
    builder: Callable[..., keras.Model]
    arguments: Mapping[str, object]
    dataset: str
    default_input_shape: tuple[int, int, int]
    default_num_classes: int
    paper: str
    feature_strides: tuple[int, ...]
    recipe: str | None = None
    doc: str = ""

    def build(self, **overrides) -> keras.Model:
        """``builder(**arguments, name=name, **overrides)``."""
        return self.builder(**{**self.arguments, "name": self.name, **overrides})

    @property
    def weights(self) -> tuple[str, ...]:
        """Names of the trained weights shipped for this name (``kerascnn.zoo.presets``)."""
        from kerascnn.zoo.presets import presets

        return tuple(presets().get(self.name, {}))

    @property
    def trainable_params(self) -> int | None:
        """Trainable parameters with the defaults (``None`` if not in the measured table)."""
        return load_counts().get(self.name, {}).get("trainable_params")

    @property
    def macs(self) -> int | None:
        """Multiply-adds of one forward pass with the defaults (``None`` if not measured)."""
        return load_counts().get(self.name, {}).get("macs")

    @property
    def input_stats(self):
        """Per-channel ``(mean, std)`` of the training images of :attr:`dataset`, in pixel
        units (``kerascnn.pipelines.PUBLISHED_STATS``)."""
        from kerascnn.pipelines.normalization import PUBLISHED_STATS

        return PUBLISHED_STATS[self.dataset]


_REGISTRY: dict[str, ModelInfo] = {}


def _add(info: ModelInfo) -> None:
    if info.name in _REGISTRY:
        raise UserInputError(
            f"A model named {info.name!r} is already registered "
            f"(family {_REGISTRY[info.name].family!r}); names must be unique."
        )
    if info.dataset not in DATASETS:
        raise UserInputError(
            f"dataset must be one of {', '.join(map(repr, DATASETS))}; "
            f"received dataset={info.dataset!r}"
        )
    _REGISTRY[info.name] = info


def register_variant(
    name: str,
    builder: Callable[..., keras.Model],
    *,
    family: str,
    paper: str,
    dataset: str,
    feature_strides: tuple[int, ...],
    input_shape: tuple[int, int, int] | None = None,
    recipe: str | None = None,
    doc: str | None = None,
    **arguments,
) -> Callable[..., keras.Model]:
    """Add the row ``name``: the family ``builder`` with ``arguments``, defined on ``dataset``
    (default input shape and classes, ``DATASETS``; ``input_shape`` overrides the shape).

    Returns the variant's function ``name(**overrides)``, which builds
    ``builder(**arguments, name=name, **overrides)``; its docstring is ``doc`` (default
    ``"NAME: ``builder(arguments...)``."``). Raises ``ValueError`` for a name already taken.
    """
    args = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    doc = doc or f"{name}: ``{builder.__name__}({args})``."
    shape, classes = DATASETS.get(dataset, (None, None))
    info = ModelInfo(
        name=name,
        family=family,
        builder=builder,
        arguments=types.MappingProxyType(dict(arguments)),
        dataset=dataset,
        default_input_shape=tuple(input_shape or shape or ()),
        default_num_classes=classes,
        paper=paper,
        feature_strides=tuple(feature_strides),
        recipe=recipe,
        doc=doc,
    )
    _add(info)

    def variant(**overrides):
        return info.build(**overrides)

    variant.__name__ = variant.__qualname__ = name
    variant.__doc__ = doc
    return variant


def register(name: str | None = None, **row):
    """Decorator form of :func:`register_variant` for a model function of your own:
    ``@register("mynet", family="mine", paper="...", dataset="cifar10", feature_strides=(1, 2))``
    over ``def mynet(**overrides)``, which must accept ``name=`` and the usual overrides."""

    def decorator(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        register_variant(name or fn.__name__, fn, doc=fn.__doc__, **row)
        return fn

    return decorator


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, in natural order
    (``resnet20`` before ``resnet110``)."""
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=_natural_key)


def close_matches(name: str, n: int = 3) -> list[str]:
    """Registered names close to ``name`` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, list(_REGISTRY), n=n, cutoff=0.5)


def model_info(name: str) -> ModelInfo:
    """The row of a registered name; ``ValueError`` with suggestions otherwise."""
    if name not in _REGISTRY:
        suggestions = close_matches(name)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise UserInputError(
            f"Unknown model name={name!r}.{hint} "
            "`kerascnn.zoo.list_models()` lists the registered names."
        )
    return _REGISTRY[name]


def create(
    name: str,
    weights: str | None = None,
    include_preprocessing: bool | None = None,
    **overrides,
) -> keras.Model:
    """Build the registered model ``name``; ``overrides`` go to its family builder,
    e.g. ``create("resnet56", num_classes=100, shortcut="B")`` or
    ``create("resnet50", include_top=False, pooling="avg")``.

    ``weights`` names trained weights of the row (``model_info(name).weights``, e.g.
    ``"cifar10"``): they are loaded after their SHA-256 is checked; weights that do not exist,
    or arguments they cannot serve (another number of classes), are refused by name. The
    model then takes raw 0..255 pixels, uint8 or float: its first layer is the weights' own
    standardization (a :class:`kerascnn.zoo.pixels.PixelModel`).
    ``include_preprocessing=False`` returns the bare network instead, whose input is
    ``kerascnn.zoo.presets.standardize(pixels, name, weights)``.

    ``weights`` may also be a file: a torchvision checkpoint (``.pth``, ``.pt``,
    ``.safetensors``), converted into the model
    (:mod:`kerascnn.zoo.torchvision_weights`, which says what the caller resizes and crops),
    or a ``.weights.h5`` file that ``kerascnn convert`` wrote; the model then takes raw 0..255
    pixels standardized as torchvision's weights expect, and its input shape is by default
    the checkpoint's crop size.
    """
    info = model_info(name)
    if weights is None:
        from kerascnn.zoo.pixels import check_no_preprocessing

        check_no_preprocessing(include_preprocessing)
        return info.build(**overrides)
    from kerascnn.zoo import presets, torchvision_weights

    if torchvision_weights.is_checkpoint(weights):
        return torchvision_weights.pretrained(
            info.build, name, weights, include_preprocessing, **overrides
        )

    return presets.pretrained(
        lambda: info.build(**overrides), name, weights,
        input_shape=overrides.get("input_shape"), num_classes=overrides.get("num_classes"),
        include_top=overrides.get("include_top", True), include_preprocessing=include_preprocessing,
    )  # fmt: skip


def variant_of(builder: Callable[..., keras.Model], arguments: Mapping[str, object]) -> str:
    """The registered name whose row builds ``builder(**arguments)`` (its defaults filled
    in on both sides), e.g. ``resnet20`` for ``resnet`` with ``{"depth": 20}``."""
    import inspect

    signature = inspect.signature(builder)

    def complete(args):
        bound = signature.bind_partial(**{k: v for k, v in args.items() if k != "name"})
        bound.apply_defaults()
        return bound.arguments

    wanted = complete(arguments)
    for info in _REGISTRY.values():
        if info.builder is builder and complete(info.arguments) == wanted:
            return info.name
    raise UserInputError(
        f"no registered model is {builder.__name__}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}), "
        "so it has no trained weights; `kerascnn list` shows the names and their weights"
    )
