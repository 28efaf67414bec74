"""Throughput of kerascnn's RandAugment against keras.layers.RandAugment in a tf.data map,
and the cost of flip + pad-crop inside a ResNet-56 training step (one process, side by side).

    .venv/bin/python benchmarks/randaugment_throughput.py [--batches 10] [--repeats 5] [--steps 6]

Both RandAugments see the same uint8 CIFAR-10 batches (128 images), cast to float32 inside
the map function, after a two-batch warm-up (tracing / XLA compilation). The passes over the
data are interleaved (ours, ours under XLA, Keras, then again), so the machine's load is
shared, and each rate is the median of ``--repeats`` passes. Keras's RandAugment has no XLA
variant (ImageProjectiveTransformV3 has no XLA kernel), so it runs as a plain graph map. The
``*_parallel`` rates repeat the comparison with ``num_parallel_calls=AUTOTUNE``.

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


def map_dataset(fn, x, batch, parallel=False):
    """A tf.data pipeline of ``fn`` over batches of ``x``, warmed up (traced / compiled)."""
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE if parallel else None)
    for _ in ds.take(2):
        pass
    return ds


class CallOnBatches:
    """Not a tf.data map: ``fn`` called from Python on each batch of ``x`` (informational, to
    show what the same XLA program costs outside tf.data's function runtime)."""

    def __init__(self, fn, x, batch):
        self.fn = fn
        self.batches = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True)
        for b in self.batches.take(2):
            fn(b)

    def __iter__(self):
        return (self.fn(b) for b in self.batches)


def interleaved_rates(datasets, repeats):
    """Median images/s of each dataset over ``repeats`` interleaved passes."""
    rates = {name: [] for name in datasets}
    for _ in range(repeats):
        for name, ds in datasets.items():
            t = time.perf_counter()
            n = sum(int(b.shape[0]) for b in ds)
            rates[name].append(n / (time.perf_counter() - t))
    return {name: statistics.median(r) for name, r in rates.items()}


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
    p.add_argument("--batches", type=int, default=10)
    p.add_argument(
        "--keras-batches", type=int, default=None, help="fewer batches for Keras (default: same)"
    )
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    x, source = images(128 * a.batches)
    x_keras = x[: 128 * (a.keras_batches or a.batches)]
    ours = L.RandAugment(2, 9, seed=1)
    theirs = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=1)

    def ours_fn(b):
        return ours(tf.cast(b, "float32"), training=True)

    def theirs_fn(b):
        return theirs(tf.cast(b, "float32"), training=True)

    ours_xla = tf.function(ours_fn, jit_compile=True)
    results = {}
    for suffix, parallel in (("", False), ("_parallel", True)):
        rates = interleaved_rates(
            {
                "kerascnn_randaugment_tfdata_img_s": map_dataset(ours_fn, x, 128, parallel),
                "kerascnn_randaugment_tfdata_xla_img_s": map_dataset(ours_xla, x, 128, parallel),
                "keras_randaugment_tfdata_img_s": map_dataset(theirs_fn, x_keras, 128, parallel),
            },
            a.repeats,
        )
        keras_rate = rates["keras_randaugment_tfdata_img_s"]
        best = max(
            rates["kerascnn_randaugment_tfdata_img_s"],
            rates["kerascnn_randaugment_tfdata_xla_img_s"],
        )
        rates["speedup_best_vs_keras"] = best / keras_rate
        rates["speedup_plain_vs_keras"] = rates["kerascnn_randaugment_tfdata_img_s"] / keras_rate
        rates["speedup_xla_vs_keras"] = rates["kerascnn_randaugment_tfdata_xla_img_s"] / keras_rate
        results.update({k + suffix: v for k, v in rates.items()})
    direct = interleaved_rates(
        {
            "kerascnn_randaugment_xla_called_on_batches_img_s": CallOnBatches(ours_xla, x, 128),
            "keras_randaugment_called_on_batches_img_s": CallOnBatches(
                tf.function(theirs_fn), x_keras, 128
            ),
        },
        a.repeats,
    )
    direct["speedup_called_on_batches_not_tfdata_map"] = (
        direct["kerascnn_randaugment_xla_called_on_batches_img_s"]
        / direct["keras_randaugment_called_on_batches_img_s"]
    )
    results.update(direct)
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
