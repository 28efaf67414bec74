"""The lecture's experiments as functions that write CSV tables and PNG plots.

Run them with ``kerascnn experiment NAME [--quick] [options]``; each module registers its
experiments in :data:`EXPERIMENTS` on import.
"""

# Experiment modules register themselves on import (issue 7: depth, ode; issue 8: regularization).
from kerascnn.experiments import depth, ode, regularization  # noqa: F401
from kerascnn.experiments.registry import EXPERIMENTS, Experiment, register_experiment  # noqa: F401
