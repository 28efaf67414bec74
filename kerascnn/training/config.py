"""One run's configuration: what to train, on what, how, where it goes.

A :class:`RunConfig` is built once, by the command line (``kerascnn train``) or by a user,
checked when it is made, and passed down whole to :func:`kerascnn.training.run.train`:

>>> config = RunConfig("resnet20", recipe="quick", recipe_overrides={"epochs": 2},
...                    out_dir="runs/resnet20")
>>> config.describe()["recipe_overrides"]
{'epochs': 2}

The run folder records it (``command.json``, with the data's fingerprint and the recipe as
the run scaled it), so a rerun knows whether an unfinished run there is its own.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kerascnn.checks import (
    check_bool,
    check_choice,
    check_float,
    check_jit_compile,
    check_pair,
    check_seed,
)
from kerascnn.errors import UserInputError
from kerascnn.training.recipes import Recipe

__all__ = ["RunConfig", "RECIPE_OVERRIDES", "PAPER_RECIPE", "resolve_recipe"]

#: the recipe fields a run may override (``kerascnn train --epochs ...``)
RECIPE_OVERRIDES = tuple(
    f.name for f in dataclasses.fields(Recipe) if f.name not in ("name", "description")
)
PLACEMENTS = ("model", "pipeline")
PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
LR_SCALINGS = ("linear", "sqrt", "none")
ON_BAD_FILE = ("error", "skip")
#: the recipe name that means "the model's own": the recipe its registry row names
PAPER_RECIPE = "paper"


def resolve_recipe(recipe: str, model: str) -> str:
    """``recipe``, or for ``"paper"`` the recipe named by ``model``'s registry row (the
    ``recipe`` column of ``kerascnn list``)."""
    if recipe != PAPER_RECIPE:
        return recipe
    from kerascnn.training.recipes import RECIPES
    from kerascnn.zoo import model_info

    named = model_info(model).recipe
    if named is None:
        raise UserInputError(
            f"recipe={PAPER_RECIPE!r}: the row of {model!r} names no recipe of its paper "
            f"(kerascnn list shows the recipe column); choose one of {', '.join(RECIPES)}"
        )
    return named


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run is made of.

    Args:
        model: a registered model name (``kerascnn list``), e.g. ``"resnet20"``.
        dataset: ``"cifar10-sample"`` (bundled), a tensorflow-datasets name, an ``.npz`` file
            or an image folder (:func:`kerascnn.pipelines.load`).
        recipe: a recipe name (:data:`kerascnn.training.RECIPES`), or ``"paper"``: the one
            the model's registry row names (:func:`resolve_recipe`; recorded resolved).
        recipe_overrides: recipe fields to change (:data:`RECIPE_OVERRIDES`), e.g.
            ``{"epochs": 30, "lr": 0.05}``; None values are ignored.
        model_overrides: more arguments of the zoo builder (``l2``, ``dropout``, ``width`` ...).
        out_dir: the run folder (None: nothing written).
        seed: seed of the split, the shuffle and the initial weights.
        validation_fraction: the part of the training data held out (stratified) when the
            source has no validation split of its own.
        data_dir: tensorflow-datasets data directory.
        image_size: ``(height, width)`` to resize every image to (None: the data's size).
        on_bad_file: ``"error"`` or ``"skip"``: what an image folder's undecodable files do.
        placement: ``"model"`` (augmentation inside the model) or ``"pipeline"``.
        jit_compile: ``True``, ``False`` or ``"auto"`` (JAX: jit; TensorFlow: XLA with a GPU
            only; PyTorch: eager; :func:`kerascnn.training.resolve_jit_compile`).
        mixed_precision: None, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        strategy: ``"auto"``, ``"none"``, ``"mirrored"``, ``"multiworker"`` or a
            ``tf.distribute.Strategy`` (:mod:`kerascnn.training.distribute`).
        lr_scaling: ``"linear"``, ``"sqrt"`` or ``"none"``: the learning rate with N replicas.
        overwrite: replace a finished run in ``out_dir``.
        export: a SavedModel folder to export the trained model to (TensorFlow backend;
            its target and signature are checked before training).
        allow_new_signature: publish an export whose image shape or classes differ from
            that folder's latest version.
    """

    model: str
    dataset: str = "cifar10-sample"
    recipe: str = "quick"
    recipe_overrides: dict = dataclasses.field(default_factory=dict)
    model_overrides: dict = dataclasses.field(default_factory=dict)
    out_dir: str | os.PathLike | None = None
    seed: int = 0
    validation_fraction: float = 0.1
    data_dir: str | os.PathLike | None = None
    image_size: tuple[int, int] | None = None
    on_bad_file: str = "error"
    placement: str = "model"
    jit_compile: Any = "auto"
    mixed_precision: str | None = None
    strategy: Any = "auto"
    lr_scaling: str = "linear"
    overwrite: bool = False
    export: str | os.PathLike | None = None
    allow_new_signature: bool = False

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise UserInputError(
                f"model must be a registered model name; received model={self.model!r}"
            )
        if not isinstance(self.dataset, (str, os.PathLike)):
            raise UserInputError(
                "dataset must be 'cifar10-sample', a tfds name, an .npz file or an image folder; "
                f"received dataset={self.dataset!r}"
            )
        object.__setattr__(self, "recipe", resolve_recipe(self.recipe, self.model))
        overrides = {k: v for k, v in dict(self.recipe_overrides or {}).items() if v is not None}
        unknown = sorted(set(overrides) - set(RECIPE_OVERRIDES))
        if unknown:
            raise UserInputError(
                f"recipe_overrides has unknown field(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(RECIPE_OVERRIDES)}"
            )
        object.__setattr__(self, "recipe_overrides", overrides)
        object.__setattr__(self, "model_overrides", dict(self.model_overrides or {}))
        check_seed(self.seed)
        if self.seed is None:
            raise UserInputError("seed must be an integer; received seed=None")
        check_float("validation_fraction", self.validation_fraction, 0.0, 1.0)
        if self.image_size is not None:
            object.__setattr__(self, "image_size", check_pair("image_size", self.image_size))
        check_choice("on_bad_file", self.on_bad_file, ON_BAD_FILE)
        check_choice("placement", self.placement, PLACEMENTS)
        check_jit_compile(self.jit_compile)
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_choice("lr_scaling", self.lr_scaling, LR_SCALINGS)
        check_bool("overwrite", self.overwrite)
        check_bool("allow_new_signature", self.allow_new_signature)

    @classmethod
    def from_options(cls, model: str, dataset: str = "cifar10-sample", **options) -> RunConfig:
        """A config from keyword options, recipe fields among them (``epochs=2, lr=0.05``):
        the form of :func:`kerascnn.training.run.train_from_names`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        recipe_overrides = dict(options.pop("recipe_overrides", None) or {})
        for key in list(options):
            if key not in fields:
                if key not in RECIPE_OVERRIDES:
                    raise UserInputError(
                        f"unknown run option {key!r}; allowed: "
                        f"{', '.join(sorted(fields - {'model', 'dataset', 'recipe_overrides'}))} "
                        f"and the recipe fields {', '.join(RECIPE_OVERRIDES)}"
                    )
                recipe_overrides[key] = options.pop(key)
        return cls(model, dataset, recipe_overrides=recipe_overrides, **options)

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """The config as JSON-ready values (what ``command.json`` records of it)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif not isinstance(value, (str, int, float, bool, dict, list, type(None))):
                value = repr(value)  # a tf.distribute.Strategy object
            out[field.name] = value
        return out
