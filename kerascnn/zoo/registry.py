"""The model registry: named variants over the family builders.

``register`` refuses a duplicate name (as torchvision does; timm silently overwrites).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable

import keras


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one named variant."""

    name: str
    family: str
    builder: Callable[..., keras.Model]
    default_input_shape: tuple[int, int, int]
    default_num_classes: int
    paper: str


_REGISTRY: dict[str, ModelInfo] = {}


def register(
    name: str | None = None,
    *,
    family: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    paper: str,
):
    """Decorator registering a zero-argument-default model function under ``name``.

    The decorated function must accept ``**overrides`` that it forwards to its family
    builder. Raises ``ValueError`` if the name is already registered.
    """

    def decorator(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(
                f"A model named {key!r} is already registered "
                f"(family {_REGISTRY[key].family!r}); names must be unique."
            )
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family,
            builder=fn,
            default_input_shape=tuple(input_shape),
            default_num_classes=num_classes,
            paper=paper,
        )
        return fn

    return decorator


def register_variant(
    name: str,
    builder: Callable[..., keras.Model],
    *,
    family: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    paper: str,
    doc: str | None = None,
    **fixed,
) -> Callable[..., keras.Model]:
    """Register ``name`` as the family ``builder`` with the arguments ``fixed``: the returned
    function builds ``builder(**fixed, name=name, **overrides)``. ``doc`` is its docstring
    (default ``"NAME: ``builder(fixed...)``."``)."""

    def build(**overrides):
        return builder(**{**fixed, "name": name, **overrides})

    build.__name__ = build.__qualname__ = name
    args = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    build.__doc__ = doc or f"{name}: ``{builder.__name__}({args})``."
    return register(
        name, family=family, input_shape=input_shape, num_classes=num_classes, paper=paper
    )(build)


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
    """The ``ModelInfo`` of a registered name; ``ValueError`` with suggestions otherwise."""
    if name not in _REGISTRY:
        suggestions = close_matches(name)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise ValueError(
            f"Unknown model name={name!r}.{hint} "
            "`kerascnn.zoo.list_models()` lists the registered names."
        )
    return _REGISTRY[name]


def create(name: str, **overrides) -> keras.Model:
    """Build the registered model ``name``; ``overrides`` go to its family builder,
    e.g. ``create("resnet56", num_classes=100, shortcut="B")``."""
    return model_info(name).builder(**overrides)
