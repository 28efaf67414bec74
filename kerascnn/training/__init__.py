"""Training: named recipes, the fit loop with default callbacks, callbacks, BatchNorm
recalibration.

    recipe = kerascnn.training.get_recipe("resnet-cifar", epochs=30)
    result = kerascnn.training.fit(model, train, val, recipe, out_dir="runs/resnet56")
"""

from kerascnn.training.batchnorm import recalibrate_batchnorm  # noqa: F401
from kerascnn.training.callbacks import DropoutSchedule  # noqa: F401
from kerascnn.training.loop import FitResult, StopOnNaN, TrainingDiverged, fit, resolve_jit_compile  # noqa: F401
from kerascnn.training.recipes import RECIPES, CoupledSGD, OneCycle, Recipe, get_recipe  # noqa: F401
from kerascnn.training.run import TrainedRun, train_from_names  # noqa: F401
