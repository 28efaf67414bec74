"""The lecture's depth experiments: the VGG depth sweep, plain vs residual degradation, and
residual networks as ensembles.

* ``vgg-depth``: VGG-like nets over a grid of blocks x convs per block (each block 3x3 convs
  then 2x2 max pooling, filters doubling per block, global average pooling + one linear
  layer), Adam, a few epochs, repeated; CSV + accuracy and parameter heatmaps (the lecture's
  Figures 4 and 5).
* ``degradation``: plain-20 / plain-56 vs ResNet-20 / ResNet-56, training and validation
  error per epoch (He et al. 2016, Figure 1).
* ``ensembles``: delete one block at a time from a trained ResNet and a trained plain net
  at test time and measure validation accuracy (Veit et al. 2016, Figure 3).
"""

from __future__ import annotations

import time

import keras
import numpy as np

from kerascnn.errors import UserInputError
from kerascnn.experiments import common

__all__ = [
    "add_degradation_arguments",
    "add_ensembles_arguments",
    "add_vgg_depth_arguments",
    "DEG_COLUMNS",
    "DEG_FULL",
    "DEG_QUICK",
    "delete_block",
    "ENS_COLUMNS",
    "ENS_FULL",
    "ENS_QUICK",
    "grid_matrix",
    "run_degradation",
    "run_ensembles",
    "run_vgg_depth",
    "VGG_COLUMNS",
    "VGG_FULL",
    "vgg_model",
    "VGG_QUICK",
]

# --------------------------------------------------------------------------- vgg-depth
VGG_FULL = {
    "blocks": "1,2,3,4,5",
    "convs": "1,2,3,4",
    "filters": 64,
    "repetitions": 3,
    "epochs": 3,
    "batch_size": 128,
    "lr": 1e-3,
    "subset": None,
    "val_subset": None,
}
VGG_QUICK = {
    "blocks": "1,2,3,4",
    "convs": "1,2,3",
    "filters": 16,
    "repetitions": 2,
    "epochs": 3,
    "batch_size": 64,
    "subset": 3000,
    "val_subset": 1000,
}
VGG_COLUMNS = [
    "num_blocks",
    "convs_per_block",
    "conv_layers",
    "params",
    "repetitions",
    "val_accuracy_mean",
    "val_accuracy_std",
    "train_accuracy_mean",
    "train_loss_mean",
    "train_seconds_mean",
    "trained_runs",
    "trained",
]


def vgg_model(num_blocks: int, convs_per_block: int, filters: int, input_shape, num_classes):
    """The sweep's model: ``kerascnn.zoo.vgg(num_blocks=, convs_per_block=, head="gap")``."""
    from kerascnn import zoo

    return zoo.vgg(
        num_blocks=num_blocks,
        convs_per_block=convs_per_block,
        filters=filters,
        head="gap",
        input_shape=input_shape,
        num_classes=num_classes,
    )


def grid_matrix(rows, key: str, blocks, convs) -> np.ndarray:
    """The ``(len(blocks), len(convs))`` matrix of ``row[key]`` that the heatmaps draw
    (rows: number of blocks, columns: convs per block; NaN for a missing cell)."""
    matrix = np.full((len(blocks), len(convs)), np.nan)
    for row in rows:
        i = blocks.index(int(row["num_blocks"]))
        j = convs.index(int(row["convs_per_block"]))
        matrix[i, j] = float(row[key])
    return matrix


def _heatmap(matrix, blocks, convs, title, fmt, cmap, caption, path, mask=None):
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(1.3 * len(convs) + 2.6, 0.9 * len(blocks) + 1.8))
    image = ax.imshow(matrix, cmap=cmap, origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.85)
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(blocks)):
        for j in range(len(convs)):
            value = matrix[i, j]
            if not np.isfinite(value):
                continue
            text = fmt(value) + ("\n(did not train)" if mask is not None and mask[i, j] else "")
            color = "white" if value < middle else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(convs)), [str(c) for c in convs])
    ax.set_yticks(range(len(blocks)), [str(b) for b in blocks])
    ax.set_xlabel("3x3 conv layers per block")
    ax.set_ylabel("blocks (each ends in 2x2 max pooling)")
    ax.set_title(title, fontsize=10)
    return common.save_figure(fig, path, caption)


def run_vgg_depth(**options) -> dict:
    """The VGG depth sweep; writes ``vgg-depth.csv``, ``vgg-depth-runs.csv``,
    ``vgg-depth-accuracy.png``, ``vgg-depth-params.png`` and ``run.json``."""
    from kerascnn.training import get_recipe

    name = "vgg-depth"
    started = time.time()
    o = common.resolve(options, VGG_FULL, VGG_QUICK)
    blocks = common.parse_ints(o["blocks"], "blocks")
    convs = common.parse_ints(o["convs"], "convs")
    common.parse_ints([o["repetitions"], o["epochs"], o["filters"]], "repetitions/epochs/filters")
    out = common.output_dir(o["out"], name)
    data = common.load_experiment_data(name, o)
    shape, classes = data.image_shape, data.num_classes
    for nb in blocks:  # fail before training if a configuration cannot be built
        if shape[0] < 2**nb or shape[1] < 2**nb:
            raise UserInputError(
                f"blocks={nb} down-samples {shape[0]}x{shape[1]} images below 1x1; "
                f"use at most {int(np.log2(min(shape[:2])))} blocks"
            )
    recipe = get_recipe("vgg-sweep", epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"])
    threshold = common.chance_threshold(classes, len(data.val))
    train_pipe, val_pipe, layers = data.pipelines(o["batch_size"], seed=o["seed"])

    runs, cells = [], []
    for nb in blocks:
        for nc in convs:
            reps = []
            for rep in range(o["repetitions"]):
                common.reset_keras(o["seed"] + rep)
                model = vgg_model(nb, nc, o["filters"], shape, classes)
                task = common.classifier(model, layers)
                result = common.train(task, train_pipe, val_pipe, recipe)
                row = {
                    "num_blocks": nb,
                    "convs_per_block": nc,
                    "repetition": rep,
                    "params": model.count_params(),
                    "val_accuracy": result.last("val_accuracy"),
                    "train_accuracy": result.last("accuracy"),
                    "train_loss": result.last("loss"),
                    "train_seconds": result.seconds,
                    "trained": result.last("val_accuracy") > threshold,
                }
                reps.append(row)
                common.log(
                    name,
                    f"blocks={nb} convs={nc} rep {rep + 1}/{o['repetitions']}: "
                    f"val acc {row['val_accuracy']:.3f}, {row['params']:,} params, "
                    f"{row['train_seconds']:.1f} s",
                )
            runs += reps
            acc = np.array([r["val_accuracy"] for r in reps])
            trained = sum(r["trained"] for r in reps)
            cells.append(
                {
                    "num_blocks": nb,
                    "convs_per_block": nc,
                    "conv_layers": nb * nc,
                    "params": reps[0]["params"],
                    "repetitions": len(reps),
                    "val_accuracy_mean": float(acc.mean()),
                    "val_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                    "train_accuracy_mean": float(np.mean([r["train_accuracy"] for r in reps])),
                    "train_loss_mean": float(np.mean([r["train_loss"] for r in reps])),
                    "train_seconds_mean": float(np.mean([r["train_seconds"] for r in reps])),
                    "trained_runs": trained,
                    "trained": trained == len(reps),
                }
            )

    csv_path = common.write_csv(out / f"{name}.csv", cells, VGG_COLUMNS)
    runs_path = common.write_csv(out / f"{name}-runs.csv", runs)
    note = (
        f"filters {o['filters']} doubling per block, Adam lr {o['lr']}, mean of "
        f"{o['repetitions']} runs; 'did not train' = not all runs above chance + 3 s.e. "
        f"({threshold:.3f})"
    )
    cap = common.caption(name, o, data, note)
    acc = grid_matrix(cells, "val_accuracy_mean", blocks, convs)
    untrained = grid_matrix(cells, "trained", blocks, convs) == 0
    acc_path = _heatmap(
        acc,
        blocks,
        convs,
        f"Validation accuracy after {o['epochs']} epochs (mean of {o['repetitions']})",
        lambda v: f"{v:.3f}",
        "viridis",
        cap,
        out / f"{name}-accuracy.png",
        untrained,
    )
    params = grid_matrix(cells, "params", blocks, convs)
    params_path = _heatmap(
        params,
        blocks,
        convs,
        "Parameters (count_params of each built model)",
        lambda v: f"{int(v):,}",
        "magma",
        cap,
        out / f"{name}-params.png",
    )
    info = common.write_run_info(out, name, o, data, started)
    return {
        "csv": csv_path,
        "runs_csv": runs_path,
        "accuracy_png": acc_path,
        "params_png": params_path,
        "run_info": info,
    }


def add_vgg_depth_arguments(parser) -> None:
    common.add_common_arguments(parser, VGG_FULL, VGG_QUICK)
    parser.add_argument("--blocks", help="numbers of blocks, e.g. 1,2,3,4,5")
    parser.add_argument("--convs", help="3x3 convs per block, e.g. 1,2,3,4")
    parser.add_argument("--filters", type=int, help="filters of the first block (doubling)")
    parser.add_argument("--repetitions", type=int, help="runs per configuration")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")


# --------------------------------------------------------------------------- degradation
# the CIFAR nets' training of degradation and ensembles (the resnet-cifar recipe)
_CIFAR_FULL = {
    "epochs": 30,
    "batch_size": 128,
    "lr": 0.1,
    "augment": "padcrop,flip",
    "subset": None,
    "val_subset": None,
}
_CIFAR_QUICK = {"epochs": 5, "batch_size": 64, "lr": 0.05, "augment": ""}
DEG_FULL = {"depths": "20,56", **_CIFAR_FULL}
DEG_QUICK = {"depths": "20,56", **_CIFAR_QUICK, "subset": 2000, "val_subset": 1000}
DEG_COLUMNS = [
    "model",
    "depth",
    "residual",
    "params",
    "epoch",
    "train_error",
    "val_error",
    "train_loss",
    "val_loss",
    "epoch_seconds",
]


def _cifar_net(depth: int, residual: bool, shape, classes):
    from kerascnn import zoo

    return zoo.resnet(
        depth=depth,
        layout="cifar",
        residual=residual,
        input_shape=shape,
        num_classes=classes,
        name=f"{'resnet' if residual else 'plain'}{depth}",
    )


def _recipe(o):
    from kerascnn.training import get_recipe

    return get_recipe(
        "resnet-cifar",
        epochs=o["epochs"],
        batch_size=o["batch_size"],
        lr=o["lr"],
        augment=o["augment"] or "",
    )


def _add_recipe_arguments(parser) -> None:
    """The options of :func:`_recipe` besides the common ones: ``--lr`` and ``--augment``."""
    parser.add_argument("--lr", type=float, help="SGD peak learning rate")
    parser.add_argument("--augment", help="augmentation spec, e.g. 'padcrop,flip' ('' for none)")


def _train_cifar_net(depth: int, residual: bool, data, pipes, recipe, seed: int):
    """A freshly seeded CIFAR ResNet (``residual``) or plain net of ``depth``, trained as a
    task with ``recipe`` on ``pipes`` (training, validation, the task's input layers);
    returns ``(model, TrainResult)``: the bare network, trained."""
    common.reset_keras(seed)
    model = _cifar_net(depth, residual, data.image_shape, data.num_classes)
    train_pipe, val_pipe, layers = pipes
    return model, common.train(common.classifier(model, layers), train_pipe, val_pipe, recipe)


def run_degradation(**options) -> dict:
    """Plain vs residual nets of two depths; writes ``degradation.csv``, ``degradation.png``
    and ``run.json``."""
    name = "degradation"
    started = time.time()
    o = common.resolve(options, DEG_FULL, DEG_QUICK)
    depths = common.parse_ints(o["depths"], "depths")
    out = common.output_dir(o["out"], name)
    data = common.load_experiment_data(name, o)
    recipe = _recipe(o)
    pipes = data.pipelines(o["batch_size"], seed=o["seed"], augment=o["augment"])
    rows, curves = [], {}
    for residual in (False, True):
        for depth in depths:
            model, result = _train_cifar_net(depth, residual, data, pipes, recipe, o["seed"])
            label = model.name
            h = result.history
            curves[label] = (residual, depth, h)
            rows += [
                {
                    "model": label,
                    "depth": depth,
                    "residual": residual,
                    "params": model.count_params(),
                    "train_error": 1 - epoch["train_accuracy"],
                    "val_error": 1 - epoch["val_accuracy"],
                    **epoch,
                }
                for epoch in result.epoch_rows()
            ]
            common.log(
                name,
                f"{label}: final train error {1 - h['accuracy'][-1]:.3f}, "
                f"val error {1 - h['val_accuracy'][-1]:.3f} ({result.seconds:.1f} s)",
            )
    csv_path = common.write_csv(out / f"{name}.csv", rows, DEG_COLUMNS)

    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = dict(zip(depths, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, residual in zip(axes, (False, True), strict=True):
        for label, (res, depth, h) in curves.items():
            if res != residual:
                continue
            epochs = np.arange(1, len(h["loss"]) + 1)
            ax.plot(epochs, 1 - np.array(h["accuracy"]), "--", color=colors[depth], lw=1)
            ax.plot(
                epochs, 1 - np.array(h["val_accuracy"]), "-", color=colors[depth], lw=2, label=label
            )
        ax.set_title(("ResNet" if residual else "plain") + " (dashed: training, bold: validation)")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error")
    note = f"SGD momentum 0.9, lr {o['lr']} (/10 at 50% and 75%), wd 1e-4, augment {o['augment'] or 'none'!r}"
    return common.finish_run(fig, name, o, data, out, started, note, csv=csv_path)


def add_degradation_arguments(parser) -> None:
    common.add_common_arguments(parser, DEG_FULL, DEG_QUICK)
    parser.add_argument("--depths", help="CIFAR depths 6n+2, e.g. 20,56")
    _add_recipe_arguments(parser)


# --------------------------------------------------------------------------- ensembles
def _blocks(model: keras.Model, like: keras.Model | None = None):
    from kerascnn.zoo.features import blocks

    return blocks(model, like=like)


def delete_block(model: keras.Model, block: str, like: keras.Model | None = None) -> keras.Model:
    """A model sharing ``model``'s layers and weights with ``block`` deleted (Veit et al.).

    Residual nets keep the skip path: the block's addition returns its shortcut input, so
    the block computes ``shortcut(x)`` (the identity, or the down-sampling shortcut of the
    first block of a stage) followed by the block's output activation, as in the model.
    A plain net (its blocks read from its residual twin ``like``) has no skip path; its
    block is replaced by the parameter-free shortcut of option A (the identity, or stride-2
    subsampling with zero-padded channels), the same operation the residual net keeps.
    """
    from kerascnn.layers import ZeroPadShortcut

    found = {b.name: b for b in _blocks(model, like)}
    if block not in found:
        raise UserInputError(f"block={block!r} is not in {model.name}; its blocks: {list(found)}")
    chosen = found[block]
    members = {id(layer) for layer in chosen.layers}
    first, last = chosen.layers[0], chosen.layers[-1]
    state = {}

    def call_function(layer, *args, **kwargs):
        if layer is chosen.add:
            return args[0][chosen.shortcut]
        if chosen.add is None and id(layer) in members:
            if layer is first:
                state["input"] = args[0]
            if layer is last:
                x = state["input"]
                strides = x.shape[1] // layer.output.shape[1]
                out_channels = layer.output.shape[-1]
                if strides == 1 and x.shape[-1] == out_channels:
                    return x
                return ZeroPadShortcut(strides, out_channels, name=f"{block}_deleted")(x)
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model,
        clone_function=lambda layer: layer,
        call_function=call_function,
    )


ENS_FULL = {"depth": 56, **_CIFAR_FULL}
ENS_QUICK = {"depth": 20, **_CIFAR_QUICK, "subset": 3000, "val_subset": 1000}
ENS_COLUMNS = ["model", "residual", "deleted_block", "block_index", "downsampling", "val_accuracy"]


def run_ensembles(**options) -> dict:
    """Delete each block of a trained ResNet and plain net; writes ``ensembles.csv``,
    ``ensembles.png`` and ``run.json``."""
    name = "ensembles"
    started = time.time()
    o = common.resolve(options, ENS_FULL, ENS_QUICK)
    (depth,) = common.parse_ints([o["depth"]], "depth")
    out = common.output_dir(o["out"], name)
    data = common.load_experiment_data(name, o)
    recipe = _recipe(o)
    pipes = data.pipelines(o["batch_size"], seed=o["seed"], augment=o["augment"])
    x_val, y_val = data.arrays("val")
    rows, results, twin = [], {}, None
    # the residual net first: the plain net's blocks are those of its residual twin
    for residual in (True, False):
        model, result = _train_cifar_net(depth, residual, data, pipes, recipe, o["seed"])
        twin = twin or model
        base = common.accuracy(model, x_val, y_val)
        label = model.name
        rows.append(
            {
                "model": label,
                "residual": residual,
                "deleted_block": "none",
                "block_index": 0,
                "downsampling": False,
                "val_accuracy": base,
            }
        )
        common.log(name, f"{label}: trained in {result.seconds:.1f} s, val acc {base:.3f}")
        accs = []
        for index, block in enumerate(_blocks(model, like=twin), start=1):
            acc = common.accuracy(delete_block(model, block.name, like=twin), x_val, y_val)
            rows.append(
                {
                    "model": label,
                    "residual": residual,
                    "deleted_block": block.name,
                    "block_index": index,
                    "downsampling": block.downsampling,
                    "val_accuracy": acc,
                }
            )
            accs.append((index, block.name, block.downsampling, acc))
            common.log(name, f"{label} without {block.name}: val acc {acc:.3f}")
        results[label] = (residual, base, accs)
    csv_path = common.write_csv(out / f"{name}.csv", rows, ENS_COLUMNS)

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    chance = 1 / data.num_classes
    for (label, (_residual, base, accs)), color in zip(results.items(), ("C0", "C3"), strict=True):
        idx = [a[0] for a in accs]
        ax.plot(idx, [a[3] for a in accs], "o-", color=color, label=f"{label}, one block deleted")
        ax.axhline(base, color=color, ls="--", lw=1, label=f"{label}, intact ({base:.3f})")
    ax.axhline(chance, color="0.5", ls=":", lw=1, label="chance")
    first = next(iter(results.values()))[2]
    for index, _, downsampling, _ in first:
        if downsampling:
            ax.axvspan(index - 0.4, index + 0.4, color="0.9", zorder=0)
    ax.set_xticks([a[0] for a in first], [a[1][5:].replace("_block", ".") for a in first])
    ax.set_xlabel("deleted block (stage.block; shaded: down-sampling blocks)")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    ax.set_title("Deleting single blocks at test time (Veit et al. 2016)")
    note = f"SGD lr {o['lr']}, augment {o['augment'] or 'none'!r}"
    return common.finish_run(fig, name, o, data, out, started, note, csv=csv_path)


def add_ensembles_arguments(parser) -> None:
    common.add_common_arguments(parser, ENS_FULL, ENS_QUICK)
    parser.add_argument("--depth", type=int, help="CIFAR depth 6n+2 of both nets")
    _add_recipe_arguments(parser)
