"""Data parallelism on JAX (``keras.distribution.DataParallel`` through kerascnn's
``fit_distributed``): training steps/s and images/s at 1, 2, 4, ... devices, and the scaling
efficiency ``images/s(N) / (N * images/s(1))``.

    python benchmarks/data_parallel_scaling.py                        # GPUs: 1, 2, 4, ... of them
    python benchmarks/data_parallel_scaling.py --cpu-virtual 1,2,4    # the CPU split into N devices
    python benchmarks/data_parallel_scaling.py --model resnet56 --batch 128 --steps 20

What is timed: the zoo model (default ``resnet20``, 32x32x3, 10 classes) with in-model
augmentation (``RandomPadCrop(4)``, ``RandomFlip``), SGD, sparse cross-entropy, trained by
``kerascnn.training.distribute.fit_distributed`` under ``jax_parallel.data_parallel`` (per-device
batch norm, ``--sync-bn`` for the global batch's) on random float32 images. Weak scaling: each
device gets ``--batch`` images, the global batch is ``--batch * N``. Every N runs in its own
child process (``XLA_FLAGS=--xla_force_host_platform_device_count=N`` must be set before JAX
starts; on GPUs the child uses the first N of them). One warm-up epoch (trace and compilation,
reported as ``compile_s``), then ``--rounds`` timed epochs of ``--steps`` steps; a callback reads
each step's loss (which waits for the step) and a round's rate is its steps after the first over
the time from the end of the first step to the end of the last. Reported: the median round.

On the CPU's virtual devices all N devices share the same cores: the numbers show that the
program runs and what the partitioning costs, not a speed-up. Speed-ups need real devices.

Results: ``benchmarks/results/<date>-data-parallel-<kind>.json`` and ``.md`` (``--name``
changes the stem), with the machine (``benchmarks/machine.py``), versions and the command.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402  (no Keras import in the parent)

CHILD = r"""
import json, sys, time
import keras
import numpy as np

import kerascnn
from kerascnn.training import get_recipe
from kerascnn.training.distribute import fit_distributed
from kerascnn.training.jax_parallel import data_parallel

n, model_name, batch, steps, rounds, sync = json.loads(sys.argv[1])
devices = keras.distribution.list_devices()[:n]
assert len(devices) == n, (devices, n)
dist = data_parallel(devices, batch_norm="global" if sync else "replica")
global_batch = batch * n
rng = np.random.default_rng(0)
x = rng.uniform(0, 1, (global_batch, 32, 32, 3)).astype("float32")
y = rng.integers(0, 10, global_batch).astype("int32")


class Batches(keras.utils.PyDataset):
    def __init__(self, length):
        super().__init__()
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return x, y


class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])  # waits for the step
        self.ends.append(time.perf_counter())


def build():
    return keras.Sequential([
        keras.Input((32, 32, 3)), kerascnn.layers.RandomPadCrop(4), kerascnn.layers.RandomFlip(),
        kerascnn.zoo.create(model_name, input_shape=(32, 32, 3), num_classes=10),
    ])


recipe = get_recipe("vgg-sweep", optimizer="sgd", lr=0.01, schedule="constant", epochs=1,
                    batch_size=global_batch, weight_decay=0.0, early_stopping=0)
with dist.scope():
    model = build()
clock = Clock()
start = time.perf_counter()
fit_distributed(model, Batches(steps), None, recipe, strategy=dist, callbacks=[clock], verbose=0)
warm = clock.ends[-1] - start
pace = (clock.ends[-1] - clock.ends[0]) / max(1, len(clock.ends) - 1)
rates = []
for _ in range(rounds):
    with dist.scope():
        model.fit(Batches(steps), epochs=1, callbacks=[clock], verbose=0, shuffle=False)
    rates.append((len(clock.ends) - 1) / (clock.ends[-1] - clock.ends[0]))
print(json.dumps({
    "devices": n, "device_names": devices, "global_batch": global_batch,
    "steps_per_s": rates, "compile_s": warm - pace * len(clock.ends),
    "jit_compile": bool(model.jit_compile),
}))
"""


def run_child(n: int, args, kind: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    if kind == "cpu-virtual":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        env["JAX_PLATFORMS"] = "cpu"
    spec = json.dumps([n, args.model, args.batch, args.steps, args.rounds, args.sync_bn])
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, spec], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=args.timeout)  # fmt: skip
    if proc.returncode:
        return {"devices": n, "error": proc.stderr.strip().splitlines()[-1][:300]}
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    out["wall_s"] = round(time.time() - start, 1)
    out["steps_per_s_median"] = statistics.median(out["steps_per_s"])
    out["images_per_s"] = out["steps_per_s_median"] * out["global_batch"]
    return out


def versions() -> dict:
    names = ("keras", "jax", "jaxlib", "numpy")
    return {"python": platform.python_version(),
            **{n: importlib.metadata.version(n) for n in names}}  # fmt: skip


def gpu_count() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import jax; print(len(jax.devices('gpu')))"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    return int(out.stdout.strip() or 0) if out.returncode == 0 else 0


def markdown(result: dict, path: str) -> str:
    lines = [
        f"# Data parallelism on JAX ({result['kind']}), {result['date']}", "",
        f"Machine: {machine.label(result['machine'])}; load average at start "
        f"{result['machine'].get('load_average_at_start')}, at end "
        f"{result['machine'].get('load_average_at_end')}.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.", "",
        f"Command: `{result['command']}` ({result['seconds']} s). Results file: `{path}`.", "",
        f"`fit_distributed` under `jax_parallel.data_parallel` ({result['batch_norm']} batch "
        f"norm), {result['model']} + RandomPadCrop(4) + RandomFlip, SGD, {result['batch']} "
        "images per device (weak scaling); median of the timed rounds.", "",
        "| devices | global batch | steps/s | images/s | scaling efficiency | compile s | jit |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['devices']} | - | error: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {row['devices']} | {row['global_batch']} | {row['steps_per_s_median']:.3f} | "
            f"{row['images_per_s']:.1f} | {row.get('efficiency', float('nan')):.2f} | "
            f"{row['compile_s']:.1f} | {row['jit_compile']} |"
        )
    lines += ["", "Notes:", ""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-virtual", help="device counts on the CPU split into virtual "
                        "devices, e.g. 1,2,4 (default: GPUs, 1, 2, 4, ... of them)")  # fmt: skip
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=32, help="images per device")
    parser.add_argument("--steps", type=int, default=6, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync-bn", action="store_true", help="the global batch's statistics")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--name", help="results file stem")
    parser.add_argument("--note", action="append", help="a note for the results file")
    args = parser.parse_args(argv)
    if args.cpu_virtual:
        kind, counts = "cpu-virtual", [int(n) for n in args.cpu_virtual.split(",")]
    else:
        kind, total = "gpu", gpu_count()
        if not total:
            parser.error("no GPU visible to JAX; use --cpu-virtual 1,2,4 on a CPU")
        counts = sorted({2**i for i in range(total.bit_length()) if 2**i <= total} | {total})
    date = datetime.date.today().isoformat()
    start = time.time()
    info = machine.cpu()
    rows = []
    for n in counts:
        row = run_child(n, args, kind)
        print(json.dumps(row), flush=True)
        rows.append(row)
    base = next((r for r in rows if r.get("devices") == 1 and "error" not in r), None)
    for row in rows:
        if base and "error" not in row:
            row["efficiency"] = row["images_per_s"] / (row["devices"] * base["images_per_s"])
    notes = list(args.note or [])
    if kind == "cpu-virtual":
        notes.append(
            f"The {info.get('cpu_count')} CPU cores split into N virtual XLA devices "
            "(XLA_FLAGS=--xla_force_host_platform_device_count=N): every device shares the "
            "same cores, so the efficiency shows the cost of partitioning, not a speed-up. "
            "GPU scaling is not measured here: run this script without --cpu-virtual there."
        )
    result = {
        "kind": kind, "date": date, "model": args.model, "batch": args.batch,
        "steps": args.steps, "rounds": args.rounds,
        "batch_norm": "global" if args.sync_bn else "per-device",
        "command": "python benchmarks/data_parallel_scaling.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": info, "versions": versions(), "rows": rows, "notes": notes,
        "seconds": round(time.time() - start),
    }  # fmt: skip
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    stem = args.name or f"{date}-data-parallel-{kind}"
    path = ROOT / "benchmarks" / "results" / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    md = path.with_suffix(".md")
    md.write_text(markdown(result, str(path.relative_to(ROOT))))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
