"""Training: named recipes, the fit loop with default callbacks, callbacks, BatchNorm
recalibration.

    recipe = kerascnn.training.get_recipe("resnet-cifar", epochs=30)
    result = kerascnn.training.fit(model, train, val, recipe, out_dir="runs/resnet56")
    run = kerascnn.training.train(kerascnn.training.RunConfig("resnet20", out_dir="runs/r20"))
"""

from kerascnn.training.batchnorm import recalibrate_batchnorm
from kerascnn.training.callbacks import DropoutSchedule
from kerascnn.training.config import RunConfig
from kerascnn.training.loop import FitResult, StopOnNaN, TrainingDiverged, fit, resolve_jit_compile
from kerascnn.training.recipes import RECIPES, CoupledSGD, OneCycle, Recipe, get_recipe
from kerascnn.training.run import TrainedRun, train, train_from_names

__all__ = [
    "CoupledSGD",
    "DropoutSchedule",
    "fit",
    "FitResult",
    "get_recipe",
    "OneCycle",
    "recalibrate_batchnorm",
    "Recipe",
    "RECIPES",
    "resolve_jit_compile",
    "RunConfig",
    "StopOnNaN",
    "train",
    "train_from_names",
    "TrainedRun",
    "TrainingDiverged",
]
