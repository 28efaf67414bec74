"""The kerascnn-vs-PyTorch training-time ratio of ``reproduce_cifar.py``, natively and with
AVX2 kernels only, measured in one interleaved run.

A ratio measured on an AVX-512 CPU need not hold on an AVX2-only one: oneDNN (TensorFlow's
and PyTorch's convolutions) and PyTorch's ATen kernels pick their code by the CPU's flags.
This script runs short paired ``reproduce_cifar.py`` invocations (ResNet-20, He et al.'s
recipe, both sides on the same seeded subset, same seeds) alternately natively and with
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``, ``--rounds`` times, and reports per
variant the median epoch wall time of each side (the first epoch, which builds and warms up,
left out) and their ratio. It also records which kernels each variant ran: PyTorch's
``get_cpu_capability()`` and the ISA oneDNN names for one convolution (``ONEDNN_VERBOSE``).

    python benchmarks/reproduce_isa_ratio.py --data ../shared/data/cifar10/train.npz \
        --out benchmarks/results

Writes ``DATE-reproduce-isa-ratio.json`` and ``.md`` to ``--out``. Run it on a quiet
machine: every other process on the cores changes the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import machine  # noqa: E402

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
VARIANTS = {"native": {}, "avx2": AVX2}

# one convolution in each framework with oneDNN's verbose log on: the ISA of the kernels used
_PROBE = r"""
import os, re, subprocess, sys
out = {}
import torch
out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
code = {
    "torch": "import torch; torch.nn.functional.conv2d(torch.ones(8, 16, 32, 32), torch.ones(16, 16, 3, 3))",
    "tensorflow": "import tensorflow as tf; tf.nn.conv2d(tf.ones((8, 32, 32, 16)), tf.ones((3, 3, 16, 16)), 1, 'SAME')",
}
for name, src in code.items():
    log = subprocess.run([sys.executable, "-c", src], env={**os.environ, "ONEDNN_VERBOSE": "1"},
                         capture_output=True, text=True).stdout
    isas = sorted(set(re.findall(r"(?:jit|brg\w*):((?:avx|amx|sse)\w*)", log)))
    out[name + "_onednn_isa"] = isas
print(__import__("json").dumps(out))
"""


def probe(env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_pair(args, env: dict, name: str, tmp: pathlib.Path) -> dict:
    """One paired invocation; returns its results file's ResNet-20 sides."""
    command = [
        sys.executable, str(HERE / "reproduce_cifar.py"), "--data", args.data, "--depths", "20",
        "--epochs", str(args.epochs), "--train-size", str(args.train_size),
        "--val-size", str(args.val_size), "--only", "both", "--no-parallel", "--run", name,
        "--state-dir", str(tmp / "state"), "--out", str(tmp),
    ]  # fmt: skip
    log = tmp / f"{name}.log"
    with log.open("w") as f:
        subprocess.run(command, env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT,
                       check=True)  # fmt: skip
    return json.loads((tmp / f"{name}.json").read_text())["depths"]["20"]


def epoch_seconds(side: dict) -> list[float]:
    return [float(e["wall_s"]) for e in side["epochs"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="train.npz (x/y) of CIFAR-10")
    p.add_argument("--train-size", type=int, default=5120)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3, help="per invocation; the first is dropped")
    p.add_argument("--rounds", type=int, default=2, help="native, avx2 alternately, this often")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)

    info = machine.cpu()
    kernels = {variant: probe(env) for variant, env in VARIANTS.items()}
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, args.rounds + 1):
            for variant, env in VARIANTS.items():
                sides = run_pair(args, env, f"isa-{variant}-r{r}", pathlib.Path(tmp))
                row = {"round": r, "variant": variant}
                for side in ("kerascnn", "torch"):
                    row[f"{side}_epoch_s"] = epoch_seconds(sides[side])
                    row[f"{side}_final_error"] = sides[side]["final_error"]
                rounds.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for variant in VARIANTS:
        rows = [row for row in rounds if row["variant"] == variant]
        med = {
            side: statistics.median(s for row in rows for s in row[f"{side}_epoch_s"][1:])
            for side in ("kerascnn", "torch")
        }
        summary[variant] = {
            "kerascnn_epoch_s_median": round(med["kerascnn"], 2),
            "torch_epoch_s_median": round(med["torch"], 2),
            "torch_over_kerascnn": round(med["torch"] / med["kerascnn"], 2),
        }
    date = datetime.date.today().isoformat()
    result = {
        "benchmark": "reproduce_isa_ratio",
        "date": date,
        "command": "python "
        + " ".join([f"benchmarks/{pathlib.Path(__file__).name}", *(argv or sys.argv[1:])]),
        "machine": info,
        "machine_label": machine.label(info),
        "variants": {k: v for k, v in VARIANTS.items()},
        "kernels": kernels,
        "setup": {
            "model": "resnet20",
            "recipe": "He et al. (reproduce_cifar.py defaults)",
            "train_size": args.train_size,
            "val_size": args.val_size,
            "epochs": args.epochs,
            "rounds": args.rounds,
            "dropped": "each invocation's first epoch (build, warm-up)",
        },  # fmt: skip
        "rounds": rounds,
        "summary": summary,
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{date}-reproduce-isa-ratio.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# kerascnn vs PyTorch epoch time, native and AVX2-only ({date})", "",
        f"Machine: {machine.label(info)}; `{result['command']}`; ResNet-20, He et al.'s recipe, "
        f"{args.train_size} training images, median epoch wall time over {args.rounds} "
        f"interleaved rounds of {args.epochs - 1} epochs (first epoch dropped).", "",
        "| kernels | PyTorch ATen | oneDNN ISA (torch / TF) | kerascnn s/epoch | PyTorch s/epoch | PyTorch / kerascnn |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for variant, s in summary.items():
        k = kernels[variant]
        isa = f"{','.join(k['torch_onednn_isa']) or '-'} / {','.join(k['tensorflow_onednn_isa']) or '-'}"
        lines.append(
            f"| {variant} | {k['torch_cpu_capability']} | {isa} | {s['kerascnn_epoch_s_median']} "
            f"| {s['torch_epoch_s_median']} | **{s['torch_over_kerascnn']}x** |"
        )
    (out / f"{date}-reproduce-isa-ratio.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
