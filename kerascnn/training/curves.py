"""A picture of a run: its training and validation curves, drawn from the run folder's
``log.csv`` into ``curves.png`` (needs matplotlib, the ``kerascnn[plots]`` extra).

    path = kerascnn.training.curves.save_curves("runs/resnet20")   # runs/resnet20/curves.png
"""

from __future__ import annotations

import csv
import os
import pathlib

from kerascnn.training.run_folder import CURVES, LOG

__all__ = ["plot_curves", "read_log", "save_curves"]


def read_log(out_dir) -> list[dict[str, float]]:
    """The rows of ``out_dir/log.csv`` (one per epoch), values as floats."""
    with (pathlib.Path(out_dir) / LOG).open(newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def plot_curves(rows: list[dict[str, float]], title: str = ""):
    """A figure of ``rows``' loss (left) and accuracy (right) per epoch, training and
    validation; returns the matplotlib ``Figure``."""
    from kerascnn.plotting import pyplot

    plt = pyplot()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            points = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_curves(out_dir, title: str = "") -> pathlib.Path:
    """Draw ``out_dir/log.csv`` into ``out_dir/curves.png`` (written to a temporary file and
    renamed into place); returns its path."""
    from kerascnn.plotting import pyplot

    out = pathlib.Path(out_dir)
    fig = plot_curves(read_log(out), title)
    path, tmp = out / CURVES, out / f".{CURVES}.{os.getpid()}.tmp.png"
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        pyplot().close(fig)
        tmp.unlink(missing_ok=True)
    return path
