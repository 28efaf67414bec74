"""The backend-neutral input path: NumPy loader throughput and the pause at each epoch's start.

    python benchmarks/loader_throughput.py                 # on the running KERAS_BACKEND
    KERAS_BACKEND=jax python benchmarks/loader_throughput.py --loaders numpy

1. Loader alone: images/s of ``BatchLoader`` (``pipelines.build(..., normalize="none",
   loader="numpy")``: augmentation in the model) over CIFAR-10 (``--npz``, default ``../shared/data/cifar10/train.npz``),
   uint8 batches of 128, whole epochs, with each epoch's first-batch time.
2. In ``kerascnn.training.fit``: CIFAR ResNet-20 with flip + pad-crop in the model on the
   bundled sample (2,000 images, 16 steps of 128), ``--epochs`` epochs; per epoch, the time
   from ``on_epoch_begin`` to the end of its first step, against the median of the other
   steps. The pause is the difference. On TensorFlow both loaders (``numpy`` and
   ``tf.data``) run, interleaved by epoch count, in one process.

Writes ``benchmarks/results/<date>-loader-<backend>.json`` (machine, versions, command).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

import kerascnn  # noqa: E402
from benchmarks import machine  # noqa: E402
from kerascnn import pipelines  # noqa: E402

DEFAULT_NPZ = ROOT.parent / "shared" / "data" / "cifar10" / "train.npz"


def loader_alone(npz: pathlib.Path, batch_size: int, epochs: int) -> dict:
    data = pipelines.load(npz)
    # augmentation in the model: the loader only shuffles and batches raw pixels
    pipe = pipelines.build(data, batch_size=batch_size, normalize="none", loader="numpy")
    loader = pipe.dataset
    rows = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        first = None
        images = 0
        for i in range(len(loader)):
            x, _ = loader[i]
            images += len(x)
            if first is None:
                first = time.perf_counter() - start
        seconds = time.perf_counter() - start
        rows.append({"epoch": epoch, "images": images, "seconds": round(seconds, 4),
                     "images_per_second": round(images / seconds), "first_batch_s": round(first, 5)})  # fmt: skip
    return {"batch_size": batch_size, "dtype": str(x.dtype), "epochs": rows,
            "median_images_per_second": statistics.median(r["images_per_second"] for r in rows)}  # fmt: skip


class StepTimes(keras.callbacks.Callback):
    """Per epoch: seconds from ``on_epoch_begin`` to the end of each training step."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self._last = time.perf_counter()
        self.epochs.append([])

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.epochs[-1].append(now - self._last)
        self._last = now


def epoch_pauses(loader: str, epochs: int) -> dict:
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    train = pipelines.load("cifar10-sample", "train")
    layers = kerascnn.tasks.input_layers(train, "flip,padcrop")
    pipe = pipelines.build(train, batch_size=128, normalize="none", loader=loader)
    model = kerascnn.tasks.ImageClassifier.from_preset("resnet20", **layers.task_options())
    recipe = kerascnn.training.get_recipe("quick", epochs=epochs, early_stopping=0, batch_size=128)
    times = StepTimes()
    start = time.perf_counter()
    kerascnn.training.fit(model, pipe, None, recipe, callbacks=[times], verbose=0)
    total = time.perf_counter() - start
    rows = []
    for epoch, steps in enumerate(times.epochs):
        median = statistics.median(steps[1:])
        rows.append({"epoch": epoch, "first_step_s": round(steps[0], 4),
                     "median_step_s": round(median, 4), "pause_s": round(steps[0] - median, 4)})  # fmt: skip
    later = [r["pause_s"] for r in rows[1:]]
    return {"loader": loader, "fit_seconds": round(total, 2), "epochs": rows,
            "max_pause_after_epoch_1_s": max(later) if later else None}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", type=pathlib.Path, default=DEFAULT_NPZ)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--loader-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="fit epochs per loader")
    parser.add_argument("--loaders", default=None, help="comma list (default: both on TF)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    loaders = (args.loaders or ("numpy,tf.data" if backend == "tensorflow" else "numpy")).split(",")

    result = {
        "benchmark": "loader_throughput",
        "date": datetime.date.today().isoformat(),
        "command": " ".join([f"KERAS_BACKEND={backend}", "python", *sys.argv]),
        "machine": machine.cpu(),
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": backend,
            "kerascnn": kerascnn.__version__,
        },  # fmt: skip
        "loader_alone": loader_alone(args.npz, args.batch_size, args.loader_epochs),
        "fit": [epoch_pauses(loader, args.epochs) for loader in loaders],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-loader-{backend}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    alone = result["loader_alone"]
    print(f"loader alone: {alone['median_images_per_second']:,} images/s (median of "
          f"{len(alone['epochs'])} epochs, {alone['dtype']} batches of {alone['batch_size']})")  # fmt: skip
    for run in result["fit"]:
        pauses = ", ".join(f"{r['pause_s']:+.3f}" for r in run["epochs"])
        print(f"fit, loader={run['loader']}: first-step pause per epoch (s): {pauses}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
