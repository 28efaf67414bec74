"""The lecture's experiments as functions that write CSV tables and PNG plots.

Run them with ``kerascnn experiment NAME [--quick] [options]``; each module registers its
experiments in :data:`EXPERIMENTS` on import.
"""

from kerascnn.experiments.registry import EXPERIMENTS, Experiment, register_experiment  # noqa: F401

# Experiment modules register themselves on import.
from kerascnn.experiments import depth, ode  # noqa: E402,F401
