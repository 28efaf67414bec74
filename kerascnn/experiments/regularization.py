"""The lecture's regularization techniques, measured.

``kerascnn experiment NAME [--quick]`` for NAME in ``augmentation``, ``dropout``,
``weight-decay``, ``l1``, ``normalization``, ``mc-dropout``, ``early-stopping``,
``memorization``. Each writes CSV tables and one PNG figure to ``--out`` (default
``runs/experiments/NAME``) and returns their paths. See ``docs/regularization.md`` for the
figures of real runs and what they show.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from kerascnn import layers as kl
from kerascnn import zoo
from kerascnn.errors import UserInputError
from kerascnn.experiments import common
from kerascnn.experiments import reg_common as rc
from kerascnn.training import DropoutSchedule

__all__ = [
    "add_augmentation_arguments",
    "add_dropout_arguments",
    "add_early_stopping_arguments",
    "add_l1_arguments",
    "add_mc_dropout_arguments",
    "add_memorization_arguments",
    "add_normalization_arguments",
    "add_weight_decay_arguments",
    "AUG_FULL",
    "AUG_QUICK",
    "AUG_SETTINGS",
    "corruptions",
    "DROP_FULL",
    "DROP_QUICK",
    "DROP_SETTINGS",
    "ES_FULL",
    "ES_QUICK",
    "expected_calibration_error",
    "L1_FULL",
    "L1_QUICK",
    "MC_FULL",
    "MC_QUICK",
    "MEM_CONDITIONS",
    "MEM_FULL",
    "MEM_QUICK",
    "NET_FULL",
    "NET_QUICK",
    "NORM_FULL",
    "NORM_QUICK",
    "NORMS",
    "PIPELINE_SETTING",
    "PLACEMENT_SETTING",
    "run_augmentation",
    "run_dropout",
    "run_early_stopping",
    "run_l1",
    "run_mc_dropout",
    "run_memorization",
    "run_normalization",
    "run_weight_decay",
    "SAMPLE_COUNTS",
    "WD_FULL",
    "WD_QUICK",
    "WD_SETTINGS",
]


def _finish(name, o, data, out, started, paths, fig, extra=""):
    """Save the figure (captioned with command, data, scale and hardware) and ``run.json``;
    return the paths as strings."""
    paths["figure"], paths["run"] = common.save_figure_and_run_info(
        fig, out / f"{name.replace('-', '_')}.png", name, o, data, out, started, extra
    )
    return {k: str(v) for k, v in paths.items()}


NET_FULL = dict(filters=32, convs_per_block=2)
NET_QUICK = dict(filters=16, convs_per_block=1)


def _net(o):
    """The VGG-like net's width and depth options."""
    return {"filters": o["filters"], "convs_per_block": o["convs_per_block"]}


def _vgg_task(data, o, name: str, pipe_options=None, **net):
    """Seeded with ``o["seed"]``: the pipelines (:func:`rc.pipes <kerascnn.experiments.
    reg_common.pipes>` with ``pipe_options``) and the VGG-like net of the options ``o``
    (``net``: more :func:`~kerascnn.experiments.reg_common.small_vgg` arguments) as a task
    named ``name``; returns ``(model, pipe, val)``."""
    keras.utils.set_random_seed(o["seed"])
    pipe, val, layers = rc.pipes(data, o["batch_size"], o["seed"], **(pipe_options or {}))
    core = rc.small_vgg(data.image_shape, data.num_classes, **_net(o), seed=o["seed"], **net)
    return common.classifier(core, layers, name=name), pipe, val


def _net_args(parser):
    parser.add_argument(
        "--filters",
        type=int,
        help="filters of the first block of the VGG-like net (default 32; --quick: 16, early-stopping: 32)",
    )
    parser.add_argument(
        "--convs-per-block",
        type=int,
        help="3x3 convs per block of the VGG-like net (default 2; --quick: 1, early-stopping: 2)",
    )


def _vgg_experiment_args(parser, full, quick, **options):
    """The common options (defaults ``full`` / ``quick``), the VGG-like net's, then
    ``options``: ``name=(type, help)`` for each option ``--name`` of the experiment."""
    common.add_common_arguments(parser, full, quick)
    _net_args(parser)
    for name, (kind, text) in options.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=text)


def _select(all_names, value, what: str = "settings") -> list:
    """The names in ``value`` (a comma-separated string or a list; ``None``: all), in
    ``all_names`` order; ``UserInputError`` naming an unknown one."""
    if value is None:
        return list(all_names)
    chosen = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    unknown = [v for v in chosen if v not in all_names]
    if unknown or not chosen:
        raise UserInputError(
            f"{what} must be a comma-separated list of {', '.join(map(repr, all_names))}; "
            f"received {what}={value!r}"
        )
    return [n for n in all_names if n in chosen]


def _settings_arg(parser, names):
    parser.add_argument(
        "--settings", help=f"comma-separated subset of: {', '.join(names)} (default: all)"
    )


def _last(rows, key, default=float("nan")):
    return rows[-1].get(key, default) if rows else default


def _best(rows, key):
    values = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return max(values) if values else float("nan")


def _mean_epoch_seconds(rows):
    secs = [r["train_seconds"] for r in rows]
    secs = secs[1:] if len(secs) > 1 else secs  # the first epoch includes tracing
    return float(np.mean(secs)) if secs else float("nan")


def _curves(ax, runs, key, title, ylabel):
    for label, rows in runs.items():
        ax.plot(
            [r["epoch"] for r in rows], [r.get(key, np.nan) for r in rows], marker=".", label=label
        )
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


# =========================================================================== augmentation
AUG_QUICK = dict(subset=1000, val_subset=500, epochs=5, batch_size=64)
AUG_FULL = dict(subset=None, val_subset=None, epochs=30, batch_size=128, depth=20)
AUG_SETTINGS = (
    ("none", ""),
    ("flip+padcrop", "flip,padcrop"),
    ("+cutout", "flip,padcrop,cutout:0.5"),
    ("+mixup", "flip,padcrop,mixup:0.2"),
    ("+cutmix", "flip,padcrop,cutmix:1.0"),
    ("+randaugment", "flip,padcrop,randaugment:2:9"),
)
PLACEMENT_SETTING = "flip+padcrop"
PIPELINE_SETTING = f"{PLACEMENT_SETTING} (pipeline)"


def run_augmentation(**options) -> dict:
    """ResNet-``depth`` with each augmentation setting (cumulative over flip + pad-crop),
    plus flip + pad-crop placed in the ``tf.data`` pipeline instead of the model.

    Writes ``epochs.csv`` (per setting and epoch), ``summary.csv`` (final and best validation
    accuracy, clean training accuracy, the train - validation gap, seconds per epoch) and
    ``augmentation.png``. The recipe is kerascnn's ``quick`` one (AdamW, one-cycle).
    """
    from kerascnn.training import get_recipe

    o, data, arr, out, started = rc.setup("augmentation", options, AUG_FULL, AUG_QUICK)
    depth = o["depth"]
    runs = [(label, spec, "model") for label, spec in AUG_SETTINGS]
    runs.append((PIPELINE_SETTING, dict(AUG_SETTINGS)[PLACEMENT_SETTING], "pipeline"))
    chosen = _select([r[0] for r in runs], o.get("settings"))
    runs = [r for r in runs if r[0] in chosen]
    epochs_rows, summary, curves = [], [], {}
    for label, spec, placement in runs:
        keras.utils.set_random_seed(o["seed"])
        pipe, val, layers = rc.pipes(data, o["batch_size"], o["seed"], spec, placement)
        core = zoo.resnet(depth=depth, input_shape=data.image_shape, num_classes=data.num_classes)
        model = common.classifier(core, layers, name=f"resnet{depth}")
        recipe = get_recipe(
            "quick", epochs=o["epochs"], batch_size=o["batch_size"], early_stopping=0, augment=""
        )
        rows = rc.train(model, pipe, val, epochs=o["epochs"], recipe=recipe)
        train_acc = common.accuracy(model, arr.x_train, arr.y_train)
        val_acc = _last(rows, "val_accuracy")
        curves[label] = rows
        epochs_rows += [
            {"setting": label, "augment": spec, "placement": placement, **r} for r in rows
        ]
        summary.append(
            {
                "setting": label,
                "augment": spec or "none",
                "placement": placement,
                "val_accuracy": val_acc,
                "best_val_accuracy": _best(rows, "val_accuracy"),
                "train_accuracy": train_acc,
                "gap": train_acc - val_acc,
                "seconds_per_epoch": _mean_epoch_seconds(rows),
            }
        )
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary)
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _curves(axes[0], curves, "val_accuracy", f"ResNet-{depth}: validation accuracy", "accuracy")
    axes[0].legend(fontsize=7)
    labels = [s["setting"] for s in summary]
    pos = np.arange(len(labels))
    axes[1].bar(pos - 0.2, [s["val_accuracy"] for s in summary], 0.4, label="val accuracy")
    axes[1].bar(pos + 0.2, [s["gap"] for s in summary], 0.4, label="train - val gap")
    for p, s in zip(pos, summary, strict=True):
        axes[1].text(
            p,
            0.01,
            f"{s['seconds_per_epoch']:.1f}s/ep",
            rotation=90,
            fontsize=7,
            ha="center",
            va="bottom",
            color="white",
        )
    axes[1].set_xticks(pos, labels, rotation=30, ha="right", fontsize=8)
    axes[1].set_title("final validation accuracy and generalization gap")
    axes[1].legend(fontsize=8)
    axes[1].grid(axis="y", alpha=0.3)
    return _finish("augmentation", o, data, out, started, paths, fig)


def add_augmentation_arguments(parser):
    common.add_common_arguments(parser, AUG_FULL, AUG_QUICK)
    parser.add_argument("--depth", type=int, help="ResNet depth, 6n+2 (default 20)")
    _settings_arg(parser, [label for label, _ in AUG_SETTINGS] + [PIPELINE_SETTING])


# =========================================================================== dropout
DROP_QUICK = dict(**NET_QUICK, subset=2000, val_subset=1000, epochs=12, batch_size=64)
DROP_FULL = dict(**NET_FULL, subset=None, val_subset=None, epochs=60, batch_size=128, rate=0.3)
DROP_SETTINGS = ("none", "dropout", "spatial", "dropconnect", "cutout", "early", "late")


def run_dropout(**options) -> dict:
    """The VGG-like net without dropout, with dropout, spatial dropout, DropConnect, Cutout,
    early dropout (on for the first quarter of the epochs) and late dropout (on from the
    middle); Adam 1e-3. Writes ``epochs.csv``, ``summary.csv`` and ``dropout.png``."""
    o, data, arr, out, started = rc.setup("dropout", options, DROP_FULL, DROP_QUICK)
    rate = o["rate"]
    epochs = o["epochs"]
    schedules = {
        "early": DropoutSchedule("early", cutoff_epoch=max(1, epochs // 4)),
        "late": DropoutSchedule("late", cutoff_epoch=max(1, epochs // 2)),
    }
    epochs_rows, summary, curves = [], [], {}
    for setting in _select(DROP_SETTINGS, o.get("settings")):
        drop = "dropout" if setting in schedules else setting
        model, pipe, val = _vgg_task(data, o, f"vgg_{setting}", drop=drop, rate=rate)
        callbacks = [schedules[setting]] if setting in schedules else []
        rows = rc.train(model, pipe, val, epochs=epochs, lr=1e-3, callbacks=callbacks)
        train_acc = common.accuracy(model, arr.x_train, arr.y_train)
        curves[setting] = rows
        epochs_rows += [{"setting": setting, **r} for r in rows]
        summary.append(
            {
                "setting": setting,
                "rate": 0.0 if setting == "none" else rate,
                "val_accuracy": _last(rows, "val_accuracy"),
                "best_val_accuracy": _best(rows, "val_accuracy"),
                "final_train_loss": _last(rows, "loss"),
                "train_accuracy": train_acc,
                "gap": train_acc - _last(rows, "val_accuracy"),
            }
        )
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary)
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _curves(axes[0], curves, "val_accuracy", "validation accuracy", "accuracy")
    _curves(axes[1], curves, "loss", "training loss (with the regularizer on)", "cross-entropy")
    axes[1].legend(fontsize=8)
    return _finish("dropout", o, data, out, started, paths, fig, f"rate {rate}")


def add_dropout_arguments(parser):
    _vgg_experiment_args(parser, DROP_FULL, DROP_QUICK,
                         rate=(float, "drop rate of every variant (0.3)"))  # fmt: skip
    _settings_arg(parser, DROP_SETTINGS)


# =========================================================================== weight decay
WD_SETTINGS = ("adam", "adam + L2", "adamw", "sgd", "sgd + L2", "sgd decoupled")
WD_QUICK = dict(**NET_QUICK, subset=2000, val_subset=1000, epochs=10, batch_size=64)
WD_FULL = dict(
    **NET_FULL,
    subset=None,
    val_subset=None,
    epochs=60,
    batch_size=128,
    adam_decay=0.5,
    sgd_decay=5e-3,
    adam_lr=1e-3,
    sgd_lr=0.05,
)


def run_weight_decay(**options) -> dict:
    """Adam + L2 penalty vs AdamW, SGD + L2 penalty vs SGD with decoupled decay, at matched
    strength (the penalty ``d/2 * sum(w**2)`` has gradient ``d * w``; the decoupled decay
    subtracts ``lr * d * w``), with undecayed Adam and SGD for reference.

    Writes ``epochs.csv`` (with the global kernel norm per epoch), ``summary.csv`` and
    ``weight_decay.png``."""
    o, data, arr, out, started = rc.setup("weight-decay", options, WD_FULL, WD_QUICK)
    adam_decay, sgd_decay, adam_lr, sgd_lr = (
        o["adam_decay"],
        o["sgd_decay"],
        o["adam_lr"],
        o["sgd_lr"],
    )
    settings = (
        ("adam", "adam", adam_lr, 0.0, 0.0),
        ("adam + L2", "adam", adam_lr, adam_decay / 2, 0.0),
        ("adamw", "adamw", adam_lr, 0.0, adam_decay),
        ("sgd", "sgd", sgd_lr, 0.0, 0.0),
        ("sgd + L2", "sgd", sgd_lr, sgd_decay / 2, 0.0),
        ("sgd decoupled", "sgd", sgd_lr, 0.0, sgd_decay),
    )
    chosen = _select([row[0] for row in settings], o.get("settings"))
    epochs_rows, summary, curves = [], [], {}
    for label, optimizer, lr, l2, decay in [row for row in settings if row[0] in chosen]:
        model, pipe, val = _vgg_task(data, o, "vgg", l2=l2)
        start = {"epoch": 0, "weight_norm": rc.kernel_norm(model)}
        rows = rc.train(
            model,
            pipe,
            val,
            epochs=o["epochs"],
            lr=lr,
            optimizer=optimizer,
            weight_decay=decay,
            norm=True,
        )
        rows = [start, *rows]
        curves[label] = rows
        epochs_rows += [{"setting": label, **r} for r in rows]
        summary.append(
            {
                "setting": label,
                "optimizer": optimizer,
                "lr": lr,
                "l2_penalty": l2,
                "decoupled_decay": decay,
                "val_accuracy": _last(rows, "val_accuracy"),
                "best_val_accuracy": _best(rows, "val_accuracy"),
                "initial_weight_norm": start["weight_norm"],
                "final_weight_norm": _last(rows, "weight_norm"),
            }
        )
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary)
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, rows in curves.items():
        style = "--" if label.startswith("sgd") else "-"
        for ax, key in zip(axes, ("val_accuracy", "weight_norm"), strict=True):
            pts = [(r["epoch"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*pts, strict=True), style, marker=".", label=label)
    axes[0].set_title("validation accuracy")
    axes[1].set_title("global L2 norm of the kernels")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    return _finish(
        "weight-decay",
        o,
        data,
        out,
        started,
        paths,
        fig,
        (f"Adam lr {adam_lr} decay {adam_decay}, SGD lr {sgd_lr} decay {sgd_decay}"),
    )


def add_weight_decay_arguments(parser):
    _vgg_experiment_args(parser, WD_FULL, WD_QUICK)
    _settings_arg(parser, WD_SETTINGS)
    parser.add_argument(
        "--adam-decay",
        type=float,
        help="decay strength d for Adam + L2 (d/2 * |w|^2) and AdamW (0.5)",
    )
    parser.add_argument(
        "--sgd-decay", type=float, help="decay strength d for SGD + L2 and SGD decoupled (5e-3)"
    )
    parser.add_argument("--adam-lr", type=float)
    parser.add_argument("--sgd-lr", type=float, help="SGD lr, momentum 0.9 (0.05)")


# =========================================================================== L1
L1_QUICK = dict(**NET_QUICK, subset=2000, val_subset=1000, epochs=20, batch_size=64, l1=0.02)
L1_FULL = dict(
    **NET_FULL,
    subset=None,
    val_subset=None,
    epochs=60,
    batch_size=128,
    l1=1e-3,
    lr=0.05,
    threshold=1e-3,
)


def run_l1(**options) -> dict:
    """No penalty vs an ``L1(l1)`` penalty vs the Hadamard reparameterization with the same
    strength, SGD with momentum 0.9 for all three.

    Writes ``epochs.csv``, ``summary.csv`` (accuracy, fraction of kernel weights with
    ``|w| < threshold``), ``histogram.csv`` (counts of log10|w|) and ``l1.png``."""
    o, data, arr, out, started = rc.setup("l1", options, L1_FULL, L1_QUICK)
    l1, lr, threshold = (o["l1"], o["lr"], o["threshold"])
    epochs_rows, summary, weights = [], [], {}
    edges = np.linspace(-10, 1, 67)
    for setting in rc.CONV_KINDS:
        model, pipe, val = _vgg_task(
            data, o, f"vgg_{setting}", conv=setting, l1=0.0 if setting == "plain" else l1
        )
        rows = rc.train(model, pipe, val, epochs=o["epochs"], lr=lr, optimizer="sgd")
        w = np.concatenate([k.ravel() for k in rc.kernels(model)])
        weights[setting] = w
        epochs_rows += [{"setting": setting, **r} for r in rows]
        summary.append(
            {
                "setting": setting,
                "l1": 0.0 if setting == "plain" else l1,
                "val_accuracy": _last(rows, "val_accuracy"),
                "train_accuracy": common.accuracy(model, arr.x_train, arr.y_train),
                "weights": w.size,
                "threshold": threshold,
                "fraction_below_threshold": float(np.mean(np.abs(w) < threshold)),
                "fraction_below_1e-6": float(np.mean(np.abs(w) < 1e-6)),
                "mean_abs_weight": float(np.mean(np.abs(w))),
            }
        )
    hist_rows = []
    for setting, w in weights.items():
        counts, _ = np.histogram(_log_abs(w, edges), edges)
        hist_rows += [
            {
                "setting": setting,
                "log10_abs_low": float(lo),
                "log10_abs_high": float(hi),
                "count": int(c),
            }
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary, histogram=hist_rows)
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in summary:
        w = weights[s["setting"]]
        axes[0].hist(
            _log_abs(w, edges),
            edges,
            histtype="step",
            lw=1.5,
            label=f"{s['setting']}: {100 * s['fraction_below_threshold']:.1f}% < {threshold:g}",
        )
    axes[0].axvline(np.log10(threshold), color="k", ls=":", lw=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("log10 |w| (all kernels; end bins hold |w| < 1e-10 and > 10)")
    axes[0].set_ylabel("weights")
    axes[0].set_title("final weights")
    axes[0].legend(fontsize=8)
    curves = {s: [r for r in epochs_rows if r["setting"] == s] for s in rc.CONV_KINDS}
    _curves(axes[1], curves, "val_accuracy", "validation accuracy", "accuracy")
    axes[1].legend(fontsize=8)
    return _finish("l1", o, data, out, started, paths, fig, f"SGD lr {lr}, l1 {l1}")


def _log_abs(w, edges):
    """log10|w| clipped into the histogram's range (the end bins collect the rest)."""
    return np.clip(np.log10(np.maximum(np.abs(w), 1e-300)), edges[0], edges[-1])


def add_l1_arguments(parser):
    _vgg_experiment_args(
        parser, L1_FULL, L1_QUICK, l1=(float, "L1 strength (default 1e-3; --quick: 0.02)"),
        lr=(float, "SGD learning rate, momentum 0.9"),
        threshold=(float, "|w| counted as zero below it"),
    )  # fmt: skip


# =========================================================================== normalization
NORM_QUICK = dict(**NET_QUICK, subset=1000, val_subset=1000, epochs=4, batch_size=64)
NORM_FULL = dict(
    **NET_FULL, subset=None, val_subset=None, epochs=30, batch_size=128, small_batch=2, groups=8
)
NORMS = ("none", "batch", "layer", "instance", "group")


def _norm_layer(kind, groups):
    if kind == "none":
        return None
    extra = {"groups": groups} if kind == "group" else {}
    if kind == "layer":
        extra = {"param_axes": [-1]}  # one scale and shift per channel, like the others

    def make(name):
        return kl.normalization(kind, epsilon=1e-5, name=name, **extra)

    return make


def run_normalization(**options) -> dict:
    """The zoo's VGG-like net (3 blocks of 2 convs, GAP) with no, batch, layer, instance and
    group normalization after every conv, trained with Adam 1e-3 at ``--batch-size`` and at
    ``--small-batch``. Writes ``epochs.csv``, ``summary.csv`` and ``normalization.png``."""
    o, data, arr, out, started = rc.setup("normalization", options, NORM_FULL, NORM_QUICK)
    norms = _select(NORMS, o.get("norms"), "norms")
    small_batch, groups = (o["small_batch"], o["groups"])
    epochs_rows, summary, curves = [], [], {}
    for batch in (o["batch_size"], small_batch):
        for kind in norms:
            keras.utils.set_random_seed(o["seed"])
            pipe, val, layers = rc.pipes(data, batch, o["seed"])
            core = zoo.vgg(
                num_blocks=3,
                **_net(o),
                head="gap",
                input_shape=data.image_shape,
                num_classes=data.num_classes,
                norm=_norm_layer(kind, groups),
            )
            model = common.classifier(core, layers, name=f"vgg_{kind}")
            start = time.perf_counter()
            rows = rc.train(model, pipe, val, epochs=o["epochs"], lr=1e-3)
            curves[(batch, kind)] = rows
            epochs_rows += [{"norm": kind, "batch_size": batch, **r} for r in rows]
            summary.append(
                {
                    "norm": kind,
                    "batch_size": batch,
                    "val_accuracy": _last(rows, "val_accuracy"),
                    "best_val_accuracy": _best(rows, "val_accuracy"),
                    "final_train_loss": _last(rows, "loss"),
                    "train_accuracy": common.accuracy(model, arr.x_train, arr.y_train),
                    "seconds": round(time.perf_counter() - start, 2),
                }
            )
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary)
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    for col, batch in enumerate((o["batch_size"], small_batch)):
        runs = {k: curves[(batch, k)] for k in norms}
        _curves(
            axes[0, col],
            runs,
            "val_accuracy",
            f"batch size {batch}: validation accuracy",
            "accuracy",
        )
        _curves(axes[1, col], runs, "loss", f"batch size {batch}: training loss", "cross-entropy")
    axes[0, 1].legend(fontsize=8)
    return _finish("normalization", o, data, out, started, paths, fig, f"small batch {small_batch}")


def add_normalization_arguments(parser):
    common.add_common_arguments(parser, NORM_FULL, NORM_QUICK)
    parser.add_argument(
        "--norms", help=f"comma-separated subset of {', '.join(NORMS)} (default: all)"
    )
    _net_args(parser)
    parser.add_argument("--small-batch", type=int, help="the small batch size (2)")
    parser.add_argument("--groups", type=int, help="groups of group normalization (8)")


# =========================================================================== MC dropout
MC_QUICK = dict(**NET_QUICK, subset=2000, val_subset=1000, epochs=10, batch_size=64)
MC_FULL = dict(
    **NET_FULL, subset=None, val_subset=None, epochs=60, batch_size=128, rate=0.3, samples=100
)
SAMPLE_COUNTS = (2, 5, 10, 20, 50, 100)


def expected_calibration_error(probs, labels, bins: int = 15):
    """ECE (Guo et al. 2017) and the per-bin rows of a reliability diagram."""
    conf = probs.max(-1)
    correct = probs.argmax(-1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece, rows = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            acc, c = float(correct[sel].mean()), float(conf[sel].mean())
            ece += sel.mean() * abs(acc - c)
            rows.append(
                {
                    "bin_low": lo,
                    "bin_high": hi,
                    "count": int(sel.sum()),
                    "accuracy": acc,
                    "confidence": c,
                }
            )
    return float(ece), rows


def corruptions(x, seed: int = 0):
    """In-distribution images ``x`` (uint8) with Gaussian noise (sigma 40), blurred (5x5 box),
    and uniform random noise images of the same shape."""
    rng = np.random.default_rng(seed)
    xf = x.astype(np.float32)
    noisy = np.clip(xf + rng.normal(0, 40, x.shape), 0, 255)
    pad = np.pad(xf, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    blur = sum(pad[:, i : i + h, j : j + w] for i in range(5) for j in range(5)) / 25.0
    noise = rng.uniform(0, 255, x.shape)
    return {"noise-corrupted": noisy, "blurred": blur, "random noise": noise}


def _entropy(p):
    return -np.sum(p * np.log(np.clip(p, 1e-12, 1.0)), axis=-1)


def run_mc_dropout(**options) -> dict:
    """Train the VGG-like net with dropout, then predict with Monte-Carlo dropout
    (:func:`kerascnn.layers.mc_predict`): accuracy and ECE vs the number of samples N,
    a reliability diagram (deterministic vs N = ``samples``), and the predictive entropy on
    training, validation, noise-corrupted, blurred and random-noise images.

    Writes ``epochs.csv``, ``accuracy.csv``, ``calibration.csv``, ``entropy.csv`` and
    ``mc_dropout.png``."""
    o, data, arr, out, started = rc.setup("mc-dropout", options, MC_FULL, MC_QUICK)
    rate, samples = (o["rate"], o["samples"])
    model, pipe, val = _vgg_task(data, o, "vgg_dropout", drop="dropout", rate=rate)
    rows = rc.train(model, pipe, val, epochs=o["epochs"], lr=1e-3)

    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(-1, keepdims=True)

    def det(x):
        return softmax(model.predict(np.asarray(x, np.float32), batch_size=256, verbose=0))

    x_val = arr.x_val.astype(np.float32)
    mc = kl.mc_predict(
        model, x_val, samples=samples, batch_size=64, from_logits=True, return_samples=True
    )
    p_det = det(x_val)
    ece_det, rel_det = expected_calibration_error(p_det, arr.y_val)
    acc_rows = [
        {
            "samples": 0,
            "method": "deterministic (dropout off)",
            "accuracy": float(np.mean(p_det.argmax(-1) == arr.y_val)),
            "ece": ece_det,
        }
    ]
    for n in [c for c in SAMPLE_COUNTS if c < samples] + [samples]:
        p = mc.samples[:n].mean(0)
        ece, rel = expected_calibration_error(p, arr.y_val)
        acc_rows.append(
            {
                "samples": n,
                "method": "mc dropout",
                "accuracy": float(np.mean(p.argmax(-1) == arr.y_val)),
                "ece": ece,
            }
        )
    cal_rows = [{"method": "deterministic", **r} for r in rel_det]
    cal_rows += [{"method": f"mc dropout N={samples}", **r} for r in rel]

    n_train = min(len(arr.x_train), len(x_val))
    inputs = {"train": arr.x_train[:n_train].astype(np.float32), "validation": x_val}
    inputs.update(corruptions(arr.x_val, o["seed"]))
    entropies, ent_rows = {}, []
    for kind, x in inputs.items():
        pred = (
            mc
            if kind == "validation"
            else kl.mc_predict(
                model, np.asarray(x, np.float32), samples=samples, batch_size=64, from_logits=True
            )
        )
        entropies[kind] = pred.entropy
        ent_rows.append(
            {
                "input": kind,
                "images": len(x),
                "samples": samples,
                "mean_entropy": float(pred.entropy.mean()),
                "median_entropy": float(np.median(pred.entropy)),
                "mean_mutual_information": float(pred.mutual_information.mean()),
                "deterministic_mean_entropy": float(_entropy(det(x)).mean()),
            }
        )
    paths = common.write_tables(
        out, epochs=rows, accuracy=acc_rows, calibration=cal_rows, entropy=ent_rows
    )
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    mc_rows = [r for r in acc_rows if r["samples"]]
    axes[0].plot(
        [r["samples"] for r in mc_rows], [r["accuracy"] for r in mc_rows], "o-", label="MC dropout"
    )
    axes[0].axhline(acc_rows[0]["accuracy"], color="k", ls="--", label="deterministic")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("Monte-Carlo samples N")
    axes[0].set_ylabel("validation accuracy")
    axes[0].set_title("accuracy vs N")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for label, rel_rows, ece in (
        ("deterministic", rel_det, ece_det),
        (f"MC N={samples}", rel, acc_rows[-1]["ece"]),
    ):
        axes[1].plot(
            [r["confidence"] for r in rel_rows],
            [r["accuracy"] for r in rel_rows],
            "o-",
            label=f"{label} (ECE {ece:.3f})",
        )
    axes[1].plot([0, 1], [0, 1], "k:", lw=1)
    axes[1].set_xlabel("confidence (mean per bin)")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("reliability diagram")
    axes[1].legend(fontsize=8)
    top = np.log(data.num_classes)
    for kind, ent in entropies.items():
        axes[2].hist(
            ent,
            np.linspace(0, top, 31),
            histtype="step",
            lw=1.5,
            density=True,
            label=f"{kind} (mean {ent.mean():.2f})",
        )
    axes[2].set_xlabel(f"predictive entropy, nats (max log {data.num_classes} = {top:.2f})")
    axes[2].set_title(f"MC-dropout entropy, N={samples}")
    axes[2].legend(fontsize=8)
    return _finish("mc-dropout", o, data, out, started, paths, fig, f"rate {rate}")


def add_mc_dropout_arguments(parser):
    _vgg_experiment_args(parser, MC_FULL, MC_QUICK, rate=(float, "dropout rate (0.3)"),
                         samples=(int, "largest N (100)"))  # fmt: skip


# =========================================================================== early stopping
ES_QUICK = dict(**NET_FULL, subset=1000, val_subset=1000, epochs=30, batch_size=64)
ES_FULL = dict(**NET_FULL, subset=None, val_subset=None, epochs=100, batch_size=128, patience=4)


def run_early_stopping(**options) -> dict:
    """Train the VGG-like net (no regularization, Adam 1e-3) with ``EarlyStopping`` on the
    validation loss (``patience``, best weights restored); ``--epochs`` is the maximum.
    Writes ``epochs.csv``, ``summary.csv`` (best and stop epoch, the restored model's
    validation loss) and ``early_stopping.png``."""
    o, data, arr, out, started = rc.setup("early-stopping", options, ES_FULL, ES_QUICK)
    patience = o["patience"]
    model, pipe, val = _vgg_task(data, o, "vgg")
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    rows = rc.train(model, pipe, val, epochs=o["epochs"], lr=1e-3, callbacks=[stopper])
    val_losses = [r["val_loss"] for r in rows]
    best_epoch = int(np.argmin(val_losses)) + 1
    stop_epoch = stopper.stopped_epoch + 1 if stopper.stopped_epoch else None
    restored = model.evaluate(val.dataset, verbose=0, return_dict=True)
    summary = [
        {
            "patience": patience,
            "max_epochs": o["epochs"],
            "epochs_run": len(rows),
            "stopped_early": stop_epoch is not None,
            "stop_epoch": stop_epoch or "",
            "best_epoch": best_epoch,
            "best_val_loss": min(val_losses),
            "last_epoch_val_loss": val_losses[-1],
            "restored_val_loss": float(restored["loss"]),
            "restored_val_accuracy": float(restored["accuracy"]),
        }
    ]
    paths = common.write_tables(out, epochs=rows, summary=summary)
    plt = common.pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(8, 4.5))
    ep = [r["epoch"] for r in rows]
    ax.plot(ep, val_losses, "o-", label="validation loss")
    ax.plot(ep, [r["loss"] for r in rows], ".-", color="0.6", label="training loss")
    ax.axvline(best_epoch, color="g", ls="--", label=f"best epoch {best_epoch} (restored)")
    if stop_epoch is not None:
        ax.axvspan(
            best_epoch,
            stop_epoch,
            color="orange",
            alpha=0.15,
            label=f"patience window ({patience} epochs)",
        )
        ax.axvline(stop_epoch, color="r", ls="--", label=f"stopped after epoch {stop_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("early stopping on the validation loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(
        "early-stopping",
        o,
        data,
        out,
        started,
        paths,
        fig,
        f"epochs is the maximum, patience {patience}",
    )


def add_early_stopping_arguments(parser):
    _vgg_experiment_args(parser, ES_FULL, ES_QUICK,
                         patience=(int, "epochs without improvement (4)"))  # fmt: skip


# =========================================================================== memorization
MEM_QUICK = dict(**NET_QUICK, subset=1000, val_subset=1000, epochs=40, batch_size=64)
MEM_FULL = dict(
    **NET_FULL, subset=10000, val_subset=None, epochs=150, batch_size=128, lr=1e-3, hidden=512
)
MEM_CONDITIONS = ("true labels", "random labels", "random pixels")


def run_memorization(**options) -> dict:
    """Zhang et al. 2016: the VGG-like net (no regularization, Adam) on ``--subset`` images
    with their true labels, with labels drawn uniformly at random, and with Gaussian random
    pixels (the data's per-channel mean and std) instead of the images. Validation uses the
    true validation images and labels. Writes ``epochs.csv``, ``summary.csv`` and
    ``memorization.png``."""
    o, data, arr, out, started = rc.setup("memorization", options, MEM_FULL, MEM_QUICK)
    lr, hidden = (o["lr"], o["hidden"])
    rng = np.random.default_rng(o["seed"])
    x, y = arr.x_train, arr.y_train
    mean = x.reshape(-1, x.shape[-1]).mean(0)
    std = x.reshape(-1, x.shape[-1]).std(0)
    variants = {
        "true labels": (x, y),
        "random labels": (x, rng.integers(0, data.num_classes, len(y))),
        "random pixels": (np.clip(rng.normal(mean, std, x.shape), 0, 255).astype(np.uint8), y),
    }
    epochs_rows, summary, curves = [], [], {}
    for condition, (xc, yc) in variants.items():
        model, pipe, val = _vgg_task(
            data, o, "vgg", {"x_train": xc, "y_train": yc}, hidden=hidden, pool="flatten"
        )
        start = time.perf_counter()
        rows = rc.train(model, pipe, val, epochs=o["epochs"], lr=lr)
        curves[condition] = rows
        epochs_rows += [{"condition": condition, **r} for r in rows]
        summary.append(
            {
                "condition": condition,
                "train_images": len(yc),
                "train_accuracy": common.accuracy(model, xc, yc),
                "val_accuracy": _last(rows, "val_accuracy"),
                "chance": 1.0 / data.num_classes,
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    paths = common.write_tables(out, epochs=epochs_rows, summary=summary)
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _curves(axes[0], curves, "loss", "training loss", "cross-entropy")
    axes[0].legend(fontsize=8)
    colors = {}
    for condition, rows in curves.items():
        ep = [r["epoch"] for r in rows]
        (line,) = axes[1].plot(ep, [r["accuracy"] for r in rows], "-", label=f"{condition}: train")
        colors[condition] = line.get_color()
        axes[1].plot(
            ep,
            [r["val_accuracy"] for r in rows],
            "--",
            color=colors[condition],
            label=f"{condition}: validation",
        )
    axes[1].axhline(1.0 / data.num_classes, color="k", ls=":", lw=1, label="chance")
    axes[1].set_title("accuracy (solid: training, dashed: validation)")
    axes[1].set_xlabel("epoch")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _finish("memorization", o, data, out, started, paths, fig, f"Adam lr {lr}")


def add_memorization_arguments(parser):
    _vgg_experiment_args(parser, MEM_FULL, MEM_QUICK, lr=(float, "Adam learning rate (1e-3)"),
                         hidden=(int, "units of the hidden layer (512)"))  # fmt: skip
