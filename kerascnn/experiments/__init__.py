"""The lecture's experiments as functions that write CSV tables and PNG plots.

Run them with ``kerascnn experiment NAME [--quick] [options]``. :data:`EXPERIMENTS` names
them all (see :mod:`kerascnn.experiments.registry`); an experiment's module (``depth``,
``ode``, ``regularization``) is imported only when it runs, and the figures need matplotlib,
the ``plots`` extra (``pip install 'kerascnn[plots]'``).
"""

from kerascnn.experiments.registry import EXPERIMENTS, Experiment, register_experiment

__all__ = ["EXPERIMENTS", "Experiment", "register_experiment"]
