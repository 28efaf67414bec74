"""matplotlib, the ``kerascnn[plots]`` extra, for the parts that draw: a training run's
curves (:mod:`kerascnn.training.curves`) and the experiments' figures
(:mod:`kerascnn.experiments`). matplotlib is imported when a figure is drawn, not before."""

from __future__ import annotations

from kerascnn.backends import MissingDependencyError

__all__ = ["PLOTS_HINT", "pyplot", "require_plots"]

PLOTS_HINT = "pip install 'kerascnn[plots]'"


def require_plots(what: str = "this experiment") -> None:
    """Raise :class:`~kerascnn.backends.MissingDependencyError` (one line, naming the
    ``plots`` extra) unless matplotlib can be imported (it is imported here, not before)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            f"{what} draws its figures with matplotlib, which is not installed: {PLOTS_HINT}"
        ) from error


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    require_plots()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
