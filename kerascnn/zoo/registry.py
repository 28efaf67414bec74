"""The model registry: one data row per registered name.

A row (:class:`ModelInfo`) is written once, as a literal in its family's module (the
``ROWS`` at the end of ``resnet.py``, ``vgg.py``, ...): the family builder and the arguments
that make the variant, the data it is defined on (default input shape, number of classes
and, through :data:`DATASETS`, the input statistics), the paper and the default training
recipe. What is measured on the built network is not typed in the rows: the parameter and
multiply-add counts and the strides of the stage outputs come from ``model_table.json``
(``python -m kerascnn.zoo.table`` builds every row and measures them; a test checks them
against freshly built models), and the trained weights with their metadata from
``weights/presets.json`` (:mod:`kerascnn.zoo.presets`). ``kerascnn list``,
docs/models.md and :func:`model_info` read the rows.

:func:`register_rows` adds rows and :func:`register_variant` one; a name is registered once
(as torchvision; timm silently overwrites).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import inspect
import json
import pathlib
import re
import types
import warnings
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
    "register_rows",
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
    """The measurements of ``model_table.json``: name -> trainable_params, macs,
    feature_strides."""
    return json.loads(TABLE_PATH.read_text()) if TABLE_PATH.exists() else {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One registered name: what builds it and what is known about it.

    Written by hand: ``name``, ``builder`` and its ``arguments``, ``family``, ``dataset``
    (default input shape and classes, :data:`DATASETS`; ``input_shape`` overrides the
    shape), ``paper`` and ``recipe`` (``kerascnn.training.RECIPES``). Measured
    (``model_table.json``): :attr:`trainable_params`, :attr:`macs`,
    :attr:`feature_strides`. Shipped: :attr:`weights`.
    """

    name: str
    builder: Callable[..., keras.Model]
    arguments: Mapping[str, object]
    family: str
    dataset: str
    paper: str
    input_shape: tuple[int, int, int] | None = None
    recipe: str | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise UserInputError(
                f"dataset must be one of {', '.join(map(repr, DATASETS))}; "
                f"received dataset={self.dataset!r}"
            )
        object.__setattr__(self, "arguments", types.MappingProxyType(dict(self.arguments)))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))

    def build(self, **overrides) -> keras.Model:
        """``builder(**arguments, name=name, **overrides)``."""
        return self.builder(**{**self.arguments, "name": self.name, **overrides})

    @property
    def default_input_shape(self) -> tuple[int, int, int]:
        """``input_shape``, or the dataset's."""
        return self.input_shape or DATASETS[self.dataset][0]

    @property
    def default_num_classes(self) -> int:
        return DATASETS[self.dataset][1]

    @property
    def weights(self) -> tuple[str, ...]:
        """Names of the trained weights shipped for this name (``kerascnn.zoo.presets``)."""
        from kerascnn.zoo.presets import presets

        return tuple(presets().get(self.name, {}))

    def _measured(self, key: str):
        return load_counts().get(self.name, {}).get(key)

    @property
    def trainable_params(self) -> int | None:
        """Trainable parameters with the defaults (``None`` if not in the measured table)."""
        return self._measured("trainable_params")

    @property
    def macs(self) -> int | None:
        """Multiply-adds of one forward pass with the defaults (``None`` if not measured)."""
        return self._measured("macs")

    @property
    def feature_strides(self) -> tuple[int, ...] | None:
        """The strides of the stage outputs, as :func:`kerascnn.zoo.feature_info` finds them
        in the built graph (``None`` if not measured)."""
        strides = self._measured("feature_strides")
        return None if strides is None else tuple(strides)

    @property
    def input_stats(self):
        """Per-channel ``(mean, std)`` of the training images of :attr:`dataset`, in pixel
        units (``kerascnn.pipelines.PUBLISHED_STATS``)."""
        from kerascnn.pipelines.normalization import PUBLISHED_STATS

        return PUBLISHED_STATS[self.dataset]


_REGISTRY: dict[str, ModelInfo] = {}


def register_rows(*rows: ModelInfo) -> None:
    """Add rows to the registry; a name already taken is refused."""
    for info in rows:
        if info.name in _REGISTRY:
            raise UserInputError(
                f"A model named {info.name!r} is already registered "
                f"(family {_REGISTRY[info.name].family!r}); names must be unique."
            )
        _REGISTRY[info.name] = info


def register_variant(
    name: str,
    builder: Callable[..., keras.Model],
    *,
    family: str,
    paper: str,
    dataset: str,
    input_shape: tuple[int, int, int] | None = None,
    recipe: str | None = None,
    doc: str | None = None,
    **arguments,
) -> Callable[..., keras.Model]:
    """Add the row ``name``: the family ``builder`` with ``arguments``, defined on ``dataset``
    (:class:`ModelInfo`).

    Returns the variant's function ``name(**overrides)``, which builds
    ``builder(**arguments, name=name, **overrides)``; its docstring is ``doc`` (default
    ``"NAME: ``builder(arguments...)``."``). Raises ``UserInputError`` for a name already
    taken.
    """
    if "feature_strides" in arguments:
        warnings.warn(
            "register_variant(feature_strides=...) is deprecated and ignored: the strides "
            "are found in the built graph (kerascnn.zoo.feature_info)",
            DeprecationWarning,
            stacklevel=2,
        )
        del arguments["feature_strides"]
    info = ModelInfo(
        name, builder, arguments, family=family, dataset=dataset, paper=paper,
        input_shape=input_shape, recipe=recipe,
    )  # fmt: skip
    register_rows(info)

    def variant(**overrides):
        return info.build(**overrides)

    args = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    variant.__name__ = variant.__qualname__ = name
    variant.__doc__ = doc or f"{name}: ``{builder.__name__}({args})``."
    return variant


def register(name: str | None = None, **row):
    """Decorator form of :func:`register_variant` for a model function of your own:
    ``@register("mynet", family="mine", paper="...", dataset="cifar10")``
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
    return load_pretrained(info.build, name, weights, include_preprocessing, **overrides)


def load_pretrained(
    build: Callable[..., keras.Model],
    name: str,
    weights: str,
    include_preprocessing: bool | None = None,
    **overrides,
) -> keras.Model:
    """The one weight loader of the zoo (:func:`create` and every family builder's
    ``weights=``): ``build(**overrides)``, the registered ``name``'s network, with
    ``weights``: a preset of the row (:func:`kerascnn.zoo.presets.pretrained`) or a
    torchvision checkpoint / converted file (:func:`kerascnn.zoo.torchvision_weights.pretrained`),
    and its standardization in front unless ``include_preprocessing=False``."""
    from kerascnn.zoo import presets, torchvision_weights

    if torchvision_weights.is_checkpoint(weights):
        return torchvision_weights.pretrained(
            build, name, weights, include_preprocessing, **overrides
        )
    return presets.pretrained(
        lambda: build(**overrides), name, weights,
        input_shape=overrides.get("input_shape"), num_classes=overrides.get("num_classes"),
        include_top=overrides.get("include_top", True), include_preprocessing=include_preprocessing,
    )  # fmt: skip


def variant_of(builder: Callable[..., keras.Model], arguments: Mapping[str, object]) -> str:
    """The registered name whose row builds ``builder(**arguments)`` (its defaults filled
    in on both sides), e.g. ``resnet20`` for ``resnet`` with ``{"depth": 20}``."""
    signature = inspect.signature(builder)

    def complete(args):
        bound = signature.bind_partial(**{k: v for k, v in args.items() if k != "name"})
        bound.apply_defaults()
        flat = dict(bound.arguments)
        for parameter in signature.parameters.values():  # a builder's **options, unpacked
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                flat.update(flat.pop(parameter.name, {}))
        return flat

    wanted = complete(arguments)
    for info in _REGISTRY.values():
        if info.builder is builder and complete(info.arguments) == wanted:
            return info.name
    raise UserInputError(
        f"no registered model is {builder.__name__}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}), "
        "so it has no trained weights; `kerascnn list` shows the names and their weights"
    )
