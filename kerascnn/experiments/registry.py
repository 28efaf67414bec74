"""The registry of experiments behind ``kerascnn experiment NAME``.

An experiment is a function ``run(**options) -> dict`` that writes its CSV and PNG files
and returns their paths, plus ``add_arguments(parser)`` declaring its command-line options
(argparse ``dest`` names equal ``run``'s keyword arguments).

The registry is data: each experiment's name and one-line help, and where its two functions
live (``"module:function"``). A module is imported only when one of its experiments runs or
its options are parsed, so ``kerascnn list``, ``kerascnn experiment --help`` and
``import kerascnn.experiments`` import none of them (nor Keras training code or matplotlib).
A new built-in experiment adds a row to :data:`EXPERIMENTS` below; code outside kerascnn can
call :func:`register_experiment` with the functions themselves.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from kerascnn.errors import UserInputError
from kerascnn.plotting import require_plots

__all__ = ["EXPERIMENTS", "Experiment", "register_experiment", "require_plots"]


def _resolve(target: str | Callable) -> Callable:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: ``name`` and ``help`` (one line) are data; ``run_target`` and
    ``arguments_target`` are ``"module:function"`` strings imported on first use (or the
    functions themselves). ``plots``: the experiment draws with matplotlib, so it refuses to
    start without it (before any training)."""

    name: str
    help: str
    run_target: str | Callable[..., dict]
    arguments_target: str | Callable
    plots: bool = True

    def run(self, **options) -> dict:
        """Run the experiment; returns ``{label: path}`` of the files it wrote."""
        if self.plots:
            require_plots(f"experiment {self.name!r}")
        return _resolve(self.run_target)(**options)

    def add_arguments(self, parser) -> None:
        """Declare the experiment's command-line options on ``parser``."""
        _resolve(self.arguments_target)(parser)


def _builtin(name: str, help: str, module: str, run: str, arguments: str) -> Experiment:
    module = f"kerascnn.experiments.{module}"
    return Experiment(name, help, f"{module}:{run}", f"{module}:{arguments}")


_BUILTIN = [
    # depth
    _builtin(
        "vgg-depth",
        "VGG-like depth sweep: accuracy and parameter heatmaps over blocks x convs per block",
        "depth",
        "run_vgg_depth",
        "add_vgg_depth_arguments",
    ),
    _builtin(
        "degradation",
        "plain vs residual nets of two depths: training and validation error per epoch "
        "(He et al. Fig. 1)",
        "depth",
        "run_degradation",
        "add_degradation_arguments",
    ),
    _builtin(
        "ensembles",
        "delete single blocks from a trained ResNet and plain net at test time (Veit et al. 2016)",
        "depth",
        "run_ensembles",
        "add_ensembles_arguments",
    ),
    # neural ODEs
    _builtin(
        "ode-vs-resnet",
        "a ResNet with T blocks vs an ODE block with T steps, and one widened to equal parameters",
        "ode",
        "run",
        "add_arguments",
    ),
    # regularization
    _builtin(
        "augmentation",
        "ResNet-20 with no augmentation, flip + pad-crop, + Cutout, + MixUp, "
        "+ CutMix, + RandAugment; and pipeline vs in-model placement",
        "regularization",
        "run_augmentation",
        "add_augmentation_arguments",
    ),
    _builtin(
        "dropout",
        "no dropout vs dropout, spatial dropout, DropConnect, Cutout, early and late "
        "dropout on a VGG-like net",
        "regularization",
        "run_dropout",
        "add_dropout_arguments",
    ),
    _builtin(
        "weight-decay",
        "Adam + L2 vs AdamW and SGD + L2 vs decoupled decay: accuracy and weight norms",
        "regularization",
        "run_weight_decay",
        "add_weight_decay_arguments",
    ),
    _builtin(
        "l1",
        "no penalty vs L1 penalty vs Hadamard reparameterization: weight histograms",
        "regularization",
        "run_l1",
        "add_l1_arguments",
    ),
    _builtin(
        "normalization",
        "none / batch / layer / instance / group normalization at a normal and a tiny batch size",
        "regularization",
        "run_normalization",
        "add_normalization_arguments",
    ),
    _builtin(
        "mc-dropout",
        "Monte-Carlo dropout: accuracy vs samples, calibration, entropy on corrupted and noise "
        "images",
        "regularization",
        "run_mc_dropout",
        "add_mc_dropout_arguments",
    ),
    _builtin(
        "early-stopping",
        "validation loss per epoch with the patience window, stop and restored epochs",
        "regularization",
        "run_early_stopping",
        "add_early_stopping_arguments",
    ),
    _builtin(
        "memorization",
        "Zhang et al. 2016: true labels vs random labels vs random pixels",
        "regularization",
        "run_memorization",
        "add_memorization_arguments",
    ),
]

#: Every experiment by name, in the order ``kerascnn experiment --help`` lists them.
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in _BUILTIN}


def register_experiment(
    name: str,
    help: str,
    run: str | Callable[..., dict],
    add_arguments: str | Callable,
    plots: bool = True,
) -> Experiment:
    """Register an experiment (its functions, or ``"module:function"`` strings imported on
    first use); a duplicate name raises ``UserInputError``."""
    if name in EXPERIMENTS:
        raise UserInputError(
            f"name must be a new experiment name; received name={name!r}, which is already "
            f"registered (registered: {', '.join(EXPERIMENTS)})"
        )
    EXPERIMENTS[name] = Experiment(name, help, run, add_arguments, plots)
    return EXPERIMENTS[name]
