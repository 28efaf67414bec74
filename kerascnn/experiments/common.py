"""Conventions shared by every experiment: options, data, training, output files.

Every experiment is ``run(**options) -> dict[label, path]`` plus ``add_arguments(parser)``.
The helpers here give all of them the same command line and the same outputs:

* **options** (:func:`add_common_arguments`): ``--data`` (any source
  :func:`kerascnn.pipelines.load` reads: an ``.npz`` file, an image folder, a tfds name,
  ``cifar10-sample``; or ``synthetic[:N]``, tiny generated images for tests), ``--subset`` /
  ``--val-subset`` (stratified numbers of training / validation images), ``--epochs``,
  ``--batch-size``, ``--seed``, ``--quick`` and ``--out``. Experiment options default to
  ``None`` and :func:`resolve` fills them from the experiment's full-scale or ``--quick``
  defaults, so an explicit option always wins over ``--quick``.
* **data** (:func:`load_data`, or :func:`load_experiment_data` with the resolved options):
  a seeded, stratified train / validation split
  (``validation_fraction``) with optional stratified subsets, batches of raw pixels and the
  task's input layers: standardization with the training part's statistics, augmentation
  (:meth:`ExperimentData.pipelines`).
* **training** (:func:`reset_keras`, :func:`classifier`, then :func:`train`): the network
  as a :class:`kerascnn.tasks.ImageClassifier` with those layers, trained by
  ``kerascnn.training.fit`` with a recipe, no files, and the seconds per epoch
  (:meth:`TrainResult.epoch_rows`).
* **outputs** (:func:`output_dir`, :func:`write_csv` / :func:`write_tables`,
  :func:`save_figure`, :func:`write_run_info`, or both at once with
  :func:`save_figure_and_run_info`): one folder per experiment (default ``runs/experiments/NAME``) with
  ``NAME.csv``, PNG figures and ``run.json`` (the command, data sizes, epochs, hardware,
  versions and wall time: what a figure's caption needs).

A new experiment module (e.g. the regularization experiments)::

    QUICK = {"subset": 2000, "val_subset": 500, "epochs": 2}
    FULL = {"subset": None, "val_subset": None, "epochs": 30}

    def run(**options):
        o = resolve(options, FULL, QUICK)
        out = output_dir(o["out"], "my-exp")
        data = load_experiment_data("my-exp", o)
        train_pipe, val_pipe, layers = data.pipelines(o["batch_size"], seed=o["seed"])
        model = classifier(my_network, layers)
        result = train(model, train_pipe, val_pipe, recipe)
        ...
        png, info = save_figure_and_run_info(fig, out / "my-exp.png", "my-exp", o, data, out, started)
        return {"csv": write_csv(out / "my-exp.csv", rows), "png": png, "run": info}

    def add_arguments(parser):
        add_common_arguments(parser, FULL, QUICK)
        parser.add_argument("--my-option", ...)

and one row in :mod:`kerascnn.experiments.registry` (``_builtin("my-exp", "what it shows",
"my_module", "run", "add_arguments")``); the module is imported only when the experiment runs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import pathlib
import platform
import sys
import textwrap
import time
from collections.abc import Iterable, Mapping

import keras
import numpy as np

from kerascnn.checks import check_choice, check_int, check_int_list
from kerascnn.errors import UserInputError
from kerascnn.plotting import pyplot

__all__ = [
    "accuracy",
    "add_common_arguments",
    "caption",
    "chance_threshold",
    "classifier",
    "command_line",
    "COMMON_OPTIONS",
    "DEFAULT_DATA",
    "DEFAULT_OUT",
    "EpochTimer",
    "ExperimentData",
    "finish_run",
    "hardware",
    "load_data",
    "load_experiment_data",
    "log",
    "output_dir",
    "parse_ints",
    "pyplot",
    "reset_keras",
    "resolve",
    "save_figure",
    "save_figure_and_run_info",
    "SYNTHETIC",
    "synthetic_dataset",
    "train",
    "TrainResult",
    "write_csv",
    "write_run_info",
    "write_tables",
]

DEFAULT_DATA = "cifar10-sample"
DEFAULT_OUT = pathlib.Path("runs") / "experiments"
SYNTHETIC = "synthetic"
#: Options every experiment has (the dest names ``run`` receives).
COMMON_OPTIONS = (
    "data",
    "validation_fraction",
    "subset",
    "val_subset",
    "epochs",
    "batch_size",
    "seed",
    "quick",
    "out",
)


# --------------------------------------------------------------------------- options
def add_common_arguments(parser, full: Mapping, quick: Mapping) -> None:
    """Add the shared options to an argparse ``parser``; ``full`` / ``quick`` hold the
    experiment's defaults (shown in ``--help``)."""

    def shown(key):
        return f"(default {full.get(key)!r}; --quick: {quick.get(key, full.get(key))!r})"

    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="source: an .npz file (e.g. ../shared/data/cifar10/train.npz), an image folder, a "
        "tfds name, cifar10-sample (bundled), or synthetic[:N] (tiny generated images, for tests)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="stratified validation share carved from the training data with --seed",
    )
    parser.add_argument(
        "--subset", type=int, help=f"training images to use, stratified {shown('subset')}"
    )
    parser.add_argument(
        "--val-subset", type=int, help=f"validation images to use {shown('val_subset')}"
    )
    parser.add_argument("--epochs", type=int, help=f"epochs per run {shown('epochs')}")
    parser.add_argument("--batch-size", type=int, help=f"batch size {shown('batch_size')}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, subsets and models")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the reduced scale documented for a 2-core CPU (explicit options still win)",
    )
    parser.add_argument("--out", help=f"output folder (default {DEFAULT_OUT}/NAME)")


def resolve(options: Mapping, full: Mapping, quick: Mapping) -> dict:
    """The options with every ``None`` (or missing) value taken from ``quick`` (when
    ``options["quick"]``) or ``full``; unknown keys pass through unchanged."""
    defaults = {"data": DEFAULT_DATA, "validation_fraction": 0.1, "seed": 0, "quick": False}
    defaults["out"] = None
    resolved = {**defaults, **full}
    if options.get("quick"):
        resolved.update(quick)
    for key, value in options.items():
        if value is not None:
            resolved[key] = value
    return resolved


def parse_ints(value, name: str) -> list[int]:
    """``"1,2,3"`` (or a list) as a list of positive ints; ``UserInputError`` naming ``name``."""
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise UserInputError(
                f"{name} must be comma-separated integers >= 1; received {name}={value!r}"
            ) from None
    return list(check_int_list(name, value))


# --------------------------------------------------------------------------- data
def synthetic_dataset(
    n: int = 96, image_size: int = 16, num_classes: int = 4, seed: int = 0, name: str = SYNTHETIC
):
    """A tiny, learnable image dataset for tests: each class is a fixed random colour pattern
    plus noise, as ``uint8`` images ``(image_size, image_size, 3)`` with balanced labels."""
    from kerascnn.pipelines.dataset import Dataset, DatasetInfo

    rng = np.random.default_rng(seed)
    patterns = rng.uniform(-1, 1, size=(num_classes, image_size, image_size, 3))
    y = np.arange(n) % num_classes
    x = 128 + 60 * patterns[y] + rng.normal(0, 25, size=(n, image_size, image_size, 3))
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    y = y.astype(np.int64)

    def make(indices):
        import tensorflow as tf

        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return tf.data.Dataset.from_tensor_slices((xs, ys.astype(np.int32)))

    info = DatasetInfo(name, "train", tuple(f"class{i}" for i in range(num_classes)), x.shape[1:])
    return Dataset(info, make, y, len(y), arrays=x)


def _stratified_take(dataset, n: int | None, seed: int, what: str):
    if n is None or n >= len(dataset):
        return dataset
    check_int(what, n)
    from kerascnn.pipelines import stratified_split_indices

    _, keep = stratified_split_indices(dataset.labels, n / len(dataset), seed)
    return dataset.subset(keep)


@dataclasses.dataclass
class ExperimentData:
    """The training and validation parts an experiment uses."""

    train: object  # kerascnn.pipelines.Dataset
    val: object
    source: str

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.image_shape)

    def describe(self) -> str:
        h, w, c = self.image_shape
        return (
            f"{self.source}: {len(self.train)} training + {len(self.val)} validation images, "
            f"{h}x{w}x{c}, {self.num_classes} classes"
        )

    def pipelines(self, batch_size: int, seed: int = 0, augment=None):
        """``(train, validation, layers)``: :class:`kerascnn.pipelines.Pipeline` s of raw
        pixels and integer labels, and the task's :class:`~kerascnn.tasks.InputLayers`
        (standardization with the training part's statistics, the augmentation and MixUp /
        CutMix of the spec ``augment``, seeded with ``seed``) for :func:`classifier`."""
        from kerascnn import pipelines
        from kerascnn.tasks import input_layers

        layers = input_layers(self.train, augment or None, seed=seed)
        train = pipelines.build(self.train, batch_size=batch_size, seed=seed, normalize="none")
        val = pipelines.build(self.val, batch_size=batch_size, shuffle=False, normalize="none")
        return train, val, layers

    def arrays(self, split: str = "val"):
        """All images of ``"val"`` or ``"train"``, standardized with the training part's
        statistics (what the network sees inside its task), and their labels, as NumPy
        arrays."""
        from kerascnn.pipelines import resolve_normalization

        check_choice("split", split, ("val", "train"))
        x, y = (self.val if split == "val" else self.train).numpy()
        standardize = resolve_normalization("standardize", self.train)
        return np.asarray(standardize(x.astype(np.float32)), np.float32), y


def load_data(
    data: str = DEFAULT_DATA,
    *,
    subset: int | None = None,
    val_subset: int | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> ExperimentData:
    """Training and validation parts of ``data``, each optionally a stratified subset.

    Args:
        data: any :func:`kerascnn.pipelines.load` source, or ``"synthetic"`` /
            ``"synthetic:N"`` (:func:`synthetic_dataset` with ``N`` images, default 96).
            The bundled ``cifar10-sample`` keeps its own train / validation split.
        subset, val_subset: numbers of training / validation images (``None``: all), drawn
            stratified with ``seed``.
        validation_fraction: share carved from the training data for validation.
        seed: seed of the split and of the subsets.
    """
    from kerascnn import pipelines

    source = os.fspath(data)
    if source == SYNTHETIC or source.startswith(SYNTHETIC + ":"):
        n = int(source.split(":", 1)[1]) if ":" in source else 96
        full = synthetic_dataset(n, seed=seed)
        train, val = pipelines.train_val_split(full, validation_fraction, seed)
    elif source == pipelines.SAMPLE_NAME:
        train, val = pipelines.load(source, "train"), pipelines.load(source, "validation")
    else:
        kwargs = {"validation_fraction": validation_fraction, "seed": seed}
        train = pipelines.load(source, "train", **kwargs)
        val = pipelines.load(source, "validation", **kwargs)
    train = _stratified_take(train, subset, seed, "subset")
    val = _stratified_take(val, val_subset, seed, "val_subset")
    return ExperimentData(train, val, source)


def load_experiment_data(name: str, options: Mapping) -> ExperimentData:
    """:func:`load_data` with the resolved common options (``data``, ``subset``,
    ``val_subset``, ``validation_fraction``, ``seed``); logs the data's description under
    ``name``."""
    data = load_data(
        options["data"],
        subset=options["subset"],
        val_subset=options["val_subset"],
        validation_fraction=options["validation_fraction"],
        seed=options["seed"],
    )
    log(name, data.describe())
    return data


def chance_threshold(num_classes: int, num_val: int) -> float:
    """Validation accuracy that a run must exceed to count as "trained": chance plus three
    binomial standard errors at chance, ``1/K + 3 sqrt((1/K)(1 - 1/K) / n)``."""
    p = 1.0 / num_classes
    return p + 3.0 * math.sqrt(p * (1 - p) / max(1, num_val))


# --------------------------------------------------------------------------- training
class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each training epoch (validation included)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


@dataclasses.dataclass
class TrainResult:
    history: dict
    epoch_seconds: list
    seconds: float

    def last(self, key: str, default=float("nan")) -> float:
        values = self.history.get(key) or [default]
        return float(values[-1])

    def epoch_rows(self) -> list[dict]:
        """One dict per epoch: ``epoch`` (from 1), ``train_loss``, ``train_accuracy``,
        ``val_loss``, ``val_accuracy`` and ``epoch_seconds``."""
        h = self.history
        return [
            {
                "epoch": e + 1,
                "train_loss": h["loss"][e],
                "train_accuracy": h["accuracy"][e],
                "val_loss": h["val_loss"][e],
                "val_accuracy": h["val_accuracy"][e],
                "epoch_seconds": self.epoch_seconds[e],
            }
            for e in range(len(h["loss"]))
        ]


def reset_keras(seed: int) -> None:
    """Clear Keras's global state (names, graphs; memory is kept) and seed every random
    generator with ``seed``: each model of a comparison then starts alike."""
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)


def classifier(net: keras.Model, layers, name: str | None = None):
    """``net`` (a functional classifier) as an :class:`~kerascnn.tasks.ImageClassifier`
    taking raw pixels: its own top kept (the same layers and parameters: training the task
    trains ``net``), with ``layers`` (:meth:`ExperimentData.pipelines`'
    :class:`~kerascnn.tasks.InputLayers`: standardization, in-model augmentation, MixUp /
    CutMix)."""
    from kerascnn.tasks import ImageClassifier

    return ImageClassifier.from_model(net, **layers.task_options(), name=name or net.name)


def train(model, train_pipe, val_pipe, recipe, *, verbose=0) -> TrainResult:
    """Fit ``model`` (an :class:`~kerascnn.tasks.ImageClassifier`: :func:`classifier`) with
    ``recipe`` (via :func:`kerascnn.training.fit`, writing no files) and return its history
    (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` per epoch) and timings."""
    from kerascnn.training import fit

    timer = EpochTimer()
    start = time.perf_counter()
    result = fit(model, train_pipe, val_pipe, recipe, callbacks=[timer], verbose=verbose)
    return TrainResult(result.history, timer.seconds, time.perf_counter() - start)


def accuracy(model, x, y, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (inference mode) on the arrays ``x`` (what the model
    takes: raw pixels for the experiments' classifiers) and integer labels ``y``."""
    predictions = []
    for i in range(0, len(x), batch_size):
        logits = model(np.asarray(x[i : i + batch_size], np.float32), training=False)
        predictions.append(np.argmax(keras.ops.convert_to_numpy(logits), axis=-1))
    return float(np.mean(np.concatenate(predictions) == np.asarray(y)))


def log(name: str, message: str) -> None:
    """One progress line on stdout: ``[name] message``."""
    print(f"[{name}] {message}", flush=True)


# --------------------------------------------------------------------------- outputs
def output_dir(out, name: str) -> pathlib.Path:
    """The experiment's folder (``out``, default ``runs/experiments/NAME``), created."""
    path = pathlib.Path(out) if out else DEFAULT_OUT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_csv(path, rows: Iterable[Mapping], columns: list[str] | None = None) -> pathlib.Path:
    """Write ``rows`` (dicts) as CSV with a header; columns in first-seen order unless given.
    Floats are written with full precision."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    path = pathlib.Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    return path


def write_tables(out, **tables: Iterable[Mapping]) -> dict[str, pathlib.Path]:
    """Write each table (rows of dicts) as ``out/KEY.csv`` with :func:`write_csv`, in the
    order given; return the paths by key."""
    return {key: write_csv(pathlib.Path(out) / f"{key}.csv", rows) for key, rows in tables.items()}


def _cell(value):
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def save_figure(fig, path, caption: str | None = None) -> pathlib.Path:
    """Save ``fig`` as PNG (with ``caption`` in small print at the bottom) and close it."""
    plt = pyplot()
    if caption:
        # Below everything drawn so far (tick labels, axis labels), in figure coordinates.
        bottom = fig.get_tightbbox(fig.canvas.get_renderer()).y0 / fig.get_figheight()
        text = textwrap.fill(caption, 160)
        fig.text(0.0, bottom - 0.02, text, fontsize=6, color="0.35", ha="left", va="top")
    path = pathlib.Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def hardware() -> str:
    """A one-line description of the machine: CPU cores, GPUs, backend and versions."""
    cpus = os.cpu_count()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = cpus
    gpus = []
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = [
            tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")
        ]
    cpu = _cpu_model()
    device = f"GPU: {', '.join(gpus)}" if gpus else f"CPU only ({affinity} of {cpus} cores usable)"
    return f"{device}, {cpu}; Keras {keras.__version__} ({keras.backend.backend()} backend)"


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def command_line() -> str:
    """The command that is running, as typed (``kerascnn experiment ...`` for the CLI)."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("kerascnn") or argv[0].endswith("cli.py")):
        argv[0] = "kerascnn"
    return " ".join(argv)


def caption(name: str, options: Mapping, data: ExperimentData, extra: str = "") -> str:
    """A figure caption: the data and scale, epochs, hardware."""
    command = command_line()
    if not command.startswith(f"kerascnn experiment {name}"):
        command = f"kerascnn experiment {name}" + (" --quick" if options.get("quick") else "")
    parts = [
        command,
        data.describe(),
        f"{options.get('epochs')} epochs, batch {options.get('batch_size')}, seed {options.get('seed')}",
    ]
    if extra:
        parts.append(extra)
    parts.append(hardware())
    return " | ".join(parts)


def write_run_info(
    out, name: str, options: Mapping, data: ExperimentData, started: float, **extra
) -> pathlib.Path:
    """``run.json``: command, resolved options, data sizes, hardware, versions, wall time."""
    info = {
        "experiment": name,
        "command": command_line(),
        "options": {k: v for k, v in options.items() if _jsonable(v)},
        "data": data.describe(),
        "train_images": len(data.train),
        "validation_images": len(data.val),
        "hardware": hardware(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "wall_seconds": round(time.time() - started, 1),
        # The machine may be shared: the 1-minute load average when the run finished.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
    path = pathlib.Path(out) / "run.json"
    path.write_text(json.dumps(info, indent=1) + "\n")
    return path


def save_figure_and_run_info(
    fig, path, name: str, options: Mapping, data: ExperimentData, out, started: float, note=""
) -> tuple[pathlib.Path, pathlib.Path]:
    """A run's last outputs: ``fig`` saved at ``path`` with the :func:`caption` of the run
    (``note`` added), then ``run.json`` (:func:`write_run_info`, so its wall time includes
    the figure). Returns both paths."""
    figure = save_figure(fig, path, caption(name, options, data, note))
    return figure, write_run_info(out, name, options, data, started)


def finish_run(
    fig, name: str, options: Mapping, data: ExperimentData, out, started: float, note="", **files
) -> dict:
    """The end of a run: ``fig`` saved as ``out/NAME.png`` and ``run.json``
    (:func:`save_figure_and_run_info`); returns ``files`` (e.g. ``csv=...``) with the
    ``png`` and ``run_info`` paths."""
    png, info = save_figure_and_run_info(
        fig, pathlib.Path(out) / f"{name}.png", name, options, data, out, started, note
    )
    return {**files, "png": png, "run_info": info}


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
