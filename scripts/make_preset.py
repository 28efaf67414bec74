"""Turn a run folder (``kerascnn train``, or a side of ``benchmarks/reproduce_cifar.py``) into a
preset of the zoo: ``kerascnn/zoo/weights/MODEL-WEIGHTS.npz`` and its entry in ``presets.json``.

    python scripts/make_preset.py runs/resnet20-cifar10 --model resnet20 --weights cifar10 \
        --source ../shared/data/cifar10/train.npz --recipe fast-cifar \
        --command "kerascnn train resnet20 ..."

The run's ``model.keras`` is a :class:`kerascnn.tasks.ImageClassifier` (standardization,
augmentation, backbone, head); the preset keeps the zoo model's weights (backbone + its
classifier ``head_fc``) and the standardization as metadata, as torchvision's weights keep
their transforms. The script checks that the zoo model with the preset loaded, on inputs
standardized with the metadata in NumPy, predicts what the trained task predicts, and
measures the validation accuracy it writes on the run's validation split.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import pathlib
import re
import sys

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # benchmarks/
from benchmarks.machine import cpu, label  # noqa: E402
from kerascnn import pipelines, zoo  # noqa: E402
from kerascnn.inference import evaluate  # noqa: E402
from kerascnn.layers import Standardize  # noqa: E402
from kerascnn.tasks import ImageClassifier  # noqa: E402
from kerascnn.zoo import presets  # noqa: E402


def machine() -> str:
    """The machine label of every results file (``benchmarks.machine``) and the backend."""
    return f"{label(cpu())}, {keras.backend.backend()} backend"


def class_names(run: pathlib.Path, data) -> list[str]:
    """The run's ``class_names.txt`` (``kerascnn train`` writes it), else the data's names."""
    path = run / "class_names.txt"
    return path.read_text().splitlines() if path.exists() else list(data.class_names)


def console_epoch_seconds(text: str) -> list[float]:
    """Per-epoch wall seconds in a run's console output: ``kerascnn train --quiet``'s lines
    (``epoch 3/150 - 85.8 s - ...``; an epoch printed twice across a resume counts once, the
    last time) or Keras's ``verbose=2`` lines (``352/352 - 100s - ...``)."""
    ours = dict(re.findall(r"^epoch (\d+)/\d+ - ([\d.]+) s - ", text, re.M))
    if ours:
        return [float(t) for t in ours.values()]
    return [float(t) for t in re.findall(r"^\d+/\d+ - (\d+)s - ", text, re.M)]


def epoch_seconds(results: pathlib.Path, model: str) -> list[float]:
    """Per-epoch wall seconds of the kerascnn side training ``model`` (``resnetN``) in a
    ``benchmarks/reproduce_cifar.py`` results file."""
    depth = model.removeprefix("resnet")
    rows = json.loads(results.read_text())["depths"][depth]["kerascnn"]["epochs"]
    return [float(row["wall_s"]) for row in rows]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=pathlib.Path)
    parser.add_argument("--model", required=True, help="registered name, e.g. resnet20")
    parser.add_argument("--weights", required=True, help="the weights' name, e.g. cifar10")
    parser.add_argument("--source", required=True, help="the data the run trained on")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", required=True, help="the recipe of the run, e.g. fast-cifar")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--console-log", type=pathlib.Path, default=None,
                        help="the run's console output with --quiet (one Keras line per epoch, "
                        "'352/352 - 100s - ...'): the training time is summed from it")  # fmt: skip
    parser.add_argument("--epochs-json", type=pathlib.Path, default=None,
                        help="a results file of benchmarks/reproduce_cifar.py whose side trained "
                        "the run: the training time is summed from its per-epoch wall seconds")  # fmt: skip
    parser.add_argument("--note", default=None, help="a remark for the metadata")
    args = parser.parse_args(argv)

    task = keras.models.load_model(args.run / "model.keras")
    if not isinstance(task, ImageClassifier):
        raise SystemExit(f"{args.run / 'model.keras'} is not an ImageClassifier")
    standardize = [layer for layer in task.preprocessing if isinstance(layer, Standardize)]
    if len(standardize) != 1 or len(task.preprocessing) != 1:
        raise SystemExit("expected exactly one Standardize layer as the task's preprocessing")
    mean, std = standardize[0].mean, standardize[0].std
    result = json.loads((args.run / "result.json").read_text())
    log = (args.run / "log.csv").read_text().splitlines()

    model = zoo.create(args.model, input_shape=task.input_shape[1:], num_classes=task.num_classes)
    arrays = presets.arrays_of(task.backbone)
    if task.head is not None:  # the zoo model's own top (head="zoo"): head_fc inside it
        arrays.update(presets.arrays_of(task.head))
    else:  # runs of before the task kept the zoo top: a "predictions" Dense on the task
        arrays.update(presets.arrays_of(task, {"predictions": "head_fc"}))
    wanted = {f"{layer.name}/{i}" for layer in model.layers for i in range(len(layer.weights))}
    missing = wanted - set(arrays)
    if missing:
        raise SystemExit(f"the run has no weights for {sorted(missing)[:5]} ...")
    arrays = {k: arrays[k] for k in sorted(wanted)}

    out = presets.WEIGHTS_DIR / f"{args.model}-{args.weights}.npz"
    out.parent.mkdir(exist_ok=True)
    np.savez(out, **arrays)

    val = pipelines.load(
        args.source, "validation", validation_fraction=args.validation_fraction, seed=args.seed
    )
    x, y = val.read(np.arange(len(val))), val.labels
    task_pred = task.predict(x, batch_size=500, verbose=0)
    val_batches = pipelines.build(val, batch_size=500, shuffle=False, normalize="none")
    meta = {
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "input_shape": list(task.input_shape[1:]),
        "num_classes": int(task.num_classes),
        "class_names": class_names(args.run, val),
        "mean": mean,
        "std": std,
        "data": args.source,
        "split": (
            f"{len(val)} validation images carved from it by kerascnn.pipelines.load("
            f"source, 'validation', validation_fraction={args.validation_fraction}, "
            f"seed={args.seed}); trained on the rest"
        ),
        "recipe": args.recipe,
        "command": args.command,
        "epochs": int(result["epochs_run"]),
        "val_accuracy": float(np.mean(task_pred.argmax(-1) == y)),
        "run_val_accuracy": result["val_accuracy"],
        "val_accuracy_tta_flip": evaluate(task, val_batches, tta="flip")[1],
        "log_header": log[0],
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
    }
    if args.console_log is not None:
        seconds = console_epoch_seconds(args.console_log.read_text())
        meta["training_seconds"] = round(sum(seconds))
        meta["epoch_seconds_median"] = float(np.median(seconds)) if seconds else None
    if args.epochs_json is not None:
        seconds = epoch_seconds(args.epochs_json, args.model)
        meta["training_seconds"] = round(sum(seconds))
        meta["epoch_seconds_median"] = float(np.median(seconds))
    if args.note:
        meta["note"] = args.note
    table = dict(presets.presets())
    table.setdefault(args.model, {})[args.weights] = meta
    (presets.WEIGHTS_DIR / "presets.json").write_text(json.dumps(table, indent=1) + "\n")
    presets.presets.cache_clear()

    # the zoo model with the preset predicts as the task: on raw pixels, and bare on inputs
    # standardized in NumPy
    pixel_pred = zoo.create(args.model, weights=args.weights).predict(x, verbose=0)
    bare = zoo.create(args.model, weights=args.weights, include_preprocessing=False)
    zoo_pred = bare.predict(presets.standardize(x, args.model, args.weights), verbose=0)
    gap = max(float(np.max(np.abs(p - task_pred))) for p in (pixel_pred, zoo_pred))
    print(json.dumps({k: meta[k] for k in ("file", "sha256", "epochs", "val_accuracy")}))
    print(f"zoo model vs task: max |logit difference| {gap:.2e}")
    if gap > 1e-3:
        raise SystemExit("the zoo model with the preset does not reproduce the task")


if __name__ == "__main__":
    main()
