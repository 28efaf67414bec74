"""Throughput of kerascnn's tf.data pipeline, and its cost to a ResNet-20 training step.

    python benchmarks/pipeline_throughput.py [--npz ../shared/data/cifar10/train.npz] [--steps 15]

1. Pipeline alone: images/s of ``build(load(npz), batch_size=128, augment="flip,padcrop")``
   (augmentation in the pipeline, normalization in the pipeline), iterated without a model.
2. ResNet-20 (``kerascnn.zoo.resnet(depth=20)``) ``fit`` step time fed by that pipeline vs fed
   by the same number of already-augmented batches held in memory (``from_tensor_slices`` of
   materialized tensors). Target: the real pipeline adds <= 5 % to the step time.
   Both are timed alternately, ``--repeats`` times, after a warm-up; the medians are reported.

Writes ``benchmarks/results/<date>-pipeline.json`` with the machine, versions and command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerascnn  # noqa: E402
from kerascnn import pipelines  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_NPZ = ROOT.parent / "shared" / "data" / "cifar10" / "train.npz"


def pipeline_images_per_second(ds, batch_size, batches, repeats):
    rates = []
    for r in range(repeats + 1):
        pipe = pipelines.build(ds, batch_size=batch_size, augment="flip,padcrop", seed=r)
        it = iter(pipe.dataset)
        next(it)  # warm-up: tracing, buffers
        t = time.perf_counter()
        n = 0
        for _ in range(batches):
            n += int(next(it)[0].shape[0])
        if r:  # the first round is a warm-up
            rates.append(n / (time.perf_counter() - t))
    return float(np.median(rates)), [round(v, 1) for v in rates]


def step_times(ds, batch_size, steps, repeats):
    pipe = pipelines.build(
        ds, batch_size=batch_size, augment="flip,padcrop", seed=0, drop_remainder=True
    )
    cached = list(pipe.dataset.take(steps))
    xs = tf.concat([x for x, _ in cached], 0)
    ys = tf.concat([y for _, y in cached], 0)
    memory = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(batch_size)

    keras.utils.set_random_seed(0)
    model = kerascnn.zoo.resnet(depth=20, input_shape=ds.image_shape, num_classes=ds.num_classes)
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    real = pipe.dataset.repeat()

    def timed(data):
        t = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        return (time.perf_counter() - t) / steps

    timed(memory)  # warm-up: build, trace, compile
    timed(real)
    res = {"pipeline": [], "memory": []}
    for _ in range(repeats):
        res["memory"].append(timed(memory))
        res["pipeline"].append(timed(real))
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", type=pathlib.Path, default=DEFAULT_NPZ)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=100, help="batches per pipeline-alone round")
    parser.add_argument("--steps", type=int, default=15, help="training steps per timed round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()

    source = os.fspath(args.npz) if args.npz.exists() else "cifar10-sample"
    ds = pipelines.load(source)
    alone, alone_rounds = pipeline_images_per_second(
        ds, args.batch_size, args.batches, args.repeats
    )
    print(f"pipeline alone: {alone:.0f} images/s ({alone_rounds})", flush=True)
    times = step_times(ds, args.batch_size, args.steps, args.repeats)
    p, m = float(np.median(times["pipeline"])), float(np.median(times["memory"]))
    slowdown = 100.0 * (p / m - 1.0)
    print(
        f"ResNet-20 step: pipeline {p * 1000:.1f} ms, in memory {m * 1000:.1f} ms, slowdown {slowdown:+.1f} %"
    )

    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "benchmark": "pipeline_throughput",
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpus": [g.name for g in gpus],
            "note": "CPU shared with other jobs while measuring" if not gpus else "",
        },
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "kerascnn": kerascnn.__version__,
            "numpy": np.__version__,
        },
        "source": source,
        "augment": "flip,padcrop (kerascnn.layers, placement='pipeline')",
        "batch_size": args.batch_size,
        "pipeline_alone_images_per_s": round(alone, 1),
        "pipeline_alone_rounds_images_per_s": alone_rounds,
        "resnet20_step_ms_pipeline": round(p * 1000, 2),
        "resnet20_step_ms_in_memory": round(m * 1000, 2),
        "resnet20_step_ms_rounds": {k: [round(v * 1000, 2) for v in vs] for k, vs in times.items()},
        "slowdown_percent": round(slowdown, 2),
        "target_slowdown_percent": 5.0,
        "meets_target": bool(slowdown <= 5.0),
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"{result['date']}-pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
