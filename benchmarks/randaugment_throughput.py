"""Throughput of kerascnn's RandAugment against keras.layers.RandAugment in a tf.data map,
and the cost of flip + pad-crop inside a ResNet-56 training step (one process, side by side).

    .venv/bin/python benchmarks/randaugment_throughput.py [--batches 20] [--steps 6]

Writes benchmarks/results/<date>-randaugment.json.
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kerascnn import layers as L  # noqa: E402
from kerascnn.zoo import resnet  # noqa: E402

CIFAR = (
    pathlib.Path(os.environ.get("KERASCNN_SHARED", ROOT.parent / "shared"))
    / "data/cifar10/train.npz"
)


def images(n):
    if CIFAR.exists():
        return np.load(CIFAR)["x"][:n], "cifar10 train.npz"
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3)).astype("uint8"), "random"


def map_rate(fn, x, batch, repeats):
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).map(fn)
    for _ in ds.take(2):
        pass
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = sum(int(b.shape[0]) for b in ds)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def train_step_time(augment, steps, batch=128):
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for layer in augment:
        x = layer(x)
    net = resnet(depth=56, input_shape=(32, 32, 3), num_classes=10)
    model = keras.Model(inputs, net(x))
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    xb = np.random.default_rng(0).normal(size=(batch, 32, 32, 3)).astype("float32")
    yb = np.arange(batch) % 10
    for _ in range(2):
        model.train_on_batch(xb, yb)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(xb, yb)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--keras-batches", type=int, default=6)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    x, source = images(128 * a.batches)
    ours = L.RandAugment(2, 9, seed=1)
    theirs = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=1)
    ours_xla = tf.function(lambda b: ours(tf.cast(b, "float32"), training=True), jit_compile=True)
    results = {
        "kerascnn_randaugment_tfdata_img_s": map_rate(
            lambda b: ours(tf.cast(b, "float32"), training=True), x, 128, a.repeats
        ),
        "kerascnn_randaugment_tfdata_xla_img_s": map_rate(ours_xla, x, 128, a.repeats),
        "keras_randaugment_tfdata_img_s": map_rate(
            lambda b: theirs(tf.cast(b, "float32"), training=True),
            x[: 128 * a.keras_batches],
            128,
            a.repeats,
        ),
    }
    best = max(
        results["kerascnn_randaugment_tfdata_img_s"],
        results["kerascnn_randaugment_tfdata_xla_img_s"],
    )
    results["speedup_best_vs_keras"] = best / results["keras_randaugment_tfdata_img_s"]
    results["speedup_plain_vs_keras"] = (
        results["kerascnn_randaugment_tfdata_img_s"] / results["keras_randaugment_tfdata_img_s"]
    )
    # interleave the two training-step measures to share the machine's noise
    plain, aug = [], []
    for _ in range(2):
        plain.append(train_step_time([], a.steps))
        aug.append(train_step_time([L.RandomFlip(seed=1), L.RandomPadCrop(4, seed=1)], a.steps))
    results["resnet56_train_step_s"] = statistics.median(plain)
    results["resnet56_flip_padcrop_train_step_s"] = statistics.median(aug)
    results["flip_padcrop_overhead_pct"] = 100 * (
        results["resnet56_flip_padcrop_train_step_s"] / results["resnet56_train_step_s"] - 1
    )
    record = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.processor() or 'cpu'}), shared with other jobs",
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
        "data": source,
        "settings": {
            "batch": 128,
            "image": "32x32x3",
            "randaugment": "num_ops=2, magnitude=9 (keras factor=0.9)",
            **vars(a),
        },
        "results": results,
    }
    out = ROOT / "benchmarks" / "results" / f"{record['date']}-randaugment.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
