"""The registry of experiments behind ``kerascnn experiment NAME``.

An experiment is a function ``run(**options) -> dict`` that writes its CSV and PNG files
and returns their paths, plus ``add_arguments(parser)`` declaring its command-line options
(argparse ``dest`` names equal ``run``'s keyword arguments).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable[..., dict]
    add_arguments: Callable


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(
    name: str, help: str, run: Callable[..., dict], add_arguments: Callable
) -> Experiment:
    """Register an experiment; a duplicate name raises ``ValueError``."""
    if name in EXPERIMENTS:
        raise ValueError(f"An experiment named {name!r} is already registered")
    EXPERIMENTS[name] = Experiment(name, help, run, add_arguments)
    return EXPERIMENTS[name]
