"""How closely kerascnn's converted models compute torchvision's: one row per model that
torchvision's checkpoints convert into.

Each row is the measurement of ``tests/zoo/test_torchvision_conversion.py``'s family test
(its ``agreement`` function, imported from there, not copied): torchvision's model with random
weights and random BatchNorm statistics, saved with ``torch.save``, converted by
``kerascnn.zoo.create(name, weights=path)``, both run in inference mode on two random images;
the figure is max |kerascnn - torchvision| / max |torchvision| of the logits (and of Inception
v3's auxiliary logits). The README's table cites the results file.

    python benchmarks/torchvision_agreement.py                     # every model, ~20 min on 2 cores
    python benchmarks/torchvision_agreement.py resnet18 vgg11      # some
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "2026-12-04-torchvision-agreement.json"


def _test_module():
    path = ROOT / "tests" / "zoo" / "test_torchvision_conversion.py"
    spec = importlib.util.spec_from_file_location("test_torchvision_conversion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="kerascnn model names (default: every row)")
    parser.add_argument("--out", default=str(OUT), help=f"results file (default {OUT.name})")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import keras
    import numpy
    import torch

    from benchmarks import machine
    from kerascnn.zoo import torchvision_weights as tw

    tests = _test_module()
    tvm = tests.torchvision_models()
    names = args.names or list(tw.TORCHVISION_WEIGHTS)
    results = {}
    print(f"{'kerascnn model':24} {'torchvision':20} {'input':>5} {'max rel. diff':>13} {'s':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            start = time.perf_counter()
            measured = tests.agreement(name, pathlib.Path(folder))
            seconds = time.perf_counter() - start
            row = tw.transforms(name)
            results[name] = {
                "torchvision": row["torchvision"],
                "input_size": tests.input_size(name),
                "max_relative_difference": max(measured.values()),
                **{f"max_relative_difference_{k}": v for k, v in measured.items()},
                "seconds": round(seconds, 1),
            }
            for f in pathlib.Path(folder).iterdir():
                f.unlink()
            print(f"{name:24} {row['torchvision']:20} {tests.input_size(name):5d} "
                  f"{max(measured.values()):13.2e} {seconds:6.1f}", flush=True)  # fmt: skip
    import torchvision

    record = {
        "what": "max |kerascnn - torchvision| / max |torchvision| of the logits, random "
        "torchvision weights and BatchNorm statistics converted from a torch.save checkpoint, "
        "inference mode, two random N(0, 1) images",
        "tolerance_of_the_tests": tests.TOLERANCE,
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/torchvision_agreement.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine.cpu(),
        "label": machine.label(machine.cpu()),
        "versions": {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": numpy.__version__,
        },  # fmt: skip
        "torchvision_models_available": len(tvm.list_models(module=tvm)),
        "results": results,
    }
    out = pathlib.Path(args.out)
    if out.exists() and args.names:  # a partial run adds to the file
        old = json.loads(out.read_text())
        record["results"] = {**old.get("results", {}), **results}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
