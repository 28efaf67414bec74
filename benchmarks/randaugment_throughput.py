"""Throughput of kerascnn's RandAugment against keras.layers.RandAugment in a tf.data map,
and the cost of flip + pad-crop inside a ResNet-56 training step (one process, side by side).

    .venv/bin/python benchmarks/randaugment_throughput.py [--batches 40] [--repeats 5] [--steps 10]

Both RandAugments see the same uint8 CIFAR-10 batches (128 images), cast to float32 inside
the map function. Each pipeline is one long-lived iterator over the repeated data, as in a
training epoch: the rates are steady-state batches per second after a three-batch warm-up
(tracing, XLA compilation). Making an iterator instantiates and optimizes the map function
again (tens of milliseconds, once per epoch); that one-off cost is recorded separately
(``*_iterator_setup_s``), because an earlier version of this script made a new iterator for
every 10 batches and measured mostly that. The passes are interleaved (ours, ours under
XLA, Keras, then again), so the machine's load is shared; each rate is the median of
``--repeats`` passes of ``--batches`` batches. Keras picks its operations per batch, so its
batches cost very different times: it runs 2x more batches per pass. Keras's RandAugment
has no XLA variant (ImageProjectiveTransformV3 has no XLA kernel), so it runs as a plain
graph map. The ``*_parallel`` rates repeat the comparison with
``num_parallel_calls=AUTOTUNE``.

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


def map_iterator(fn, x, batch, parallel=False):
    """A long-lived iterator of ``fn`` mapped over batches of ``x`` (repeated), warmed up;
    returns ``(iterator, seconds to make it and get the first batch)``."""
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).repeat()
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE if parallel else None)
    t = time.perf_counter()
    it = iter(ds)
    next(it)
    setup = time.perf_counter() - t
    for _ in range(2):
        next(it)
    return it, setup


class CallOnBatches:
    """Not a tf.data map: ``fn`` called from Python on each batch (informational: the same
    program outside tf.data's function runtime)."""

    def __init__(self, fn, x, batch):
        self.fn = fn
        ds = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True)
        self.batches = iter(ds.repeat())
        for _ in range(3):
            fn(next(self.batches))

    def __next__(self):
        return self.fn(next(self.batches))


def interleaved_rates(iterators, repeats, batch=128):
    """Median images/s of each ``name: (iterator, batches per pass)`` over ``repeats``
    interleaved passes."""
    rates = {name: [] for name in iterators}
    for _ in range(repeats):
        for name, (it, n) in iterators.items():
            t = time.perf_counter()
            for _ in range(n):
                next(it)
            rates[name].append(batch * n / (time.perf_counter() - t))
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
    p.add_argument("--batches", type=int, default=40, help="batches per pass (Keras: twice)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    x, source = images(128 * 2 * a.batches)
    ours = L.RandAugment(2, 9, seed=1)
    theirs = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=1)

    def ours_fn(b):
        return ours(tf.cast(b, "float32"), training=True)

    def theirs_fn(b):
        return theirs(tf.cast(b, "float32"), training=True)

    ours_xla = tf.function(ours_fn, jit_compile=True)
    keras_batches = 2 * a.batches
    results = {}
    for suffix, parallel in (("", False), ("_parallel", True)):
        iterators, setups = {}, {}
        for name, fn, n in (
            ("kerascnn_randaugment_tfdata_img_s", ours_fn, a.batches),
            ("kerascnn_randaugment_tfdata_xla_img_s", ours_xla, a.batches),
            ("keras_randaugment_tfdata_img_s", theirs_fn, keras_batches),
        ):
            it, setups[name.replace("_img_s", "_iterator_setup_s")] = map_iterator(
                fn, x, 128, parallel
            )
            iterators[name] = (it, n)
        rates = interleaved_rates(iterators, a.repeats)
        keras_rate = rates["keras_randaugment_tfdata_img_s"]
        best = max(
            rates["kerascnn_randaugment_tfdata_img_s"],
            rates["kerascnn_randaugment_tfdata_xla_img_s"],
        )
        rates["speedup_best_vs_keras"] = best / keras_rate
        rates["speedup_plain_vs_keras"] = rates["kerascnn_randaugment_tfdata_img_s"] / keras_rate
        rates["speedup_xla_vs_keras"] = rates["kerascnn_randaugment_tfdata_xla_img_s"] / keras_rate
        results.update({k + suffix: v for k, v in {**rates, **setups}.items()})
    direct = interleaved_rates(
        {
            "kerascnn_randaugment_xla_called_on_batches_img_s": (
                CallOnBatches(ours_xla, x, 128),
                a.batches,
            ),
            "keras_randaugment_called_on_batches_img_s": (
                CallOnBatches(tf.function(theirs_fn), x, 128),
                keras_batches,
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
    for _ in range(3):
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
