"""The ratios the README quotes, as one table made from a ``benchmarks.run`` results file.

    python -m benchmarks.run --summary                      # measure now, then print the table
    python -m benchmarks.run --summary results/FILE.json    # the table of an earlier run

The README's speed table is ``markdown(result, path)`` of the results file it names, pasted
between ``<!-- speed-table: PATH -->`` and ``<!-- /speed-table -->``; a test regenerates it
from that file and compares, so the README cannot quote a figure its file does not hold.
This module needs neither TensorFlow nor PyTorch: it only reads results.
"""

from __future__ import annotations

import json
import pathlib

from benchmarks import machine

__all__ = ["BENCHMARKS", "TARGETS", "markdown", "rows"]

# what run.py must measure for the summary
BENCHMARKS = ("peak", "train_cifar", "inference", "augment")
# the speed targets: (row, minimum ratio kerascnn / PyTorch)
TARGETS = {
    "ResNet-56 training: kerascnn / PyTorch channels_last": 1.0,
    "ResNet-56 inference: serving_export / PyTorch eval channels_last": 1.2,
}


def _median(res: dict, name: str) -> float | None:
    entry = res.get(name)
    return entry["median"] if entry else None


def _ratio(res: dict, top: str, bottom: str):
    a, b = _median(res, top), _median(res, bottom)
    if a is None or b is None:
        return None
    return (
        f"{a / b:.2f}x",
        f"{a:.0f} / {b:.0f} images/s [{_range(res[top])} / {_range(res[bottom])}]",
    )


def _range(entry: dict) -> str:
    return f"{entry['min']:.0f}..{entry['max']:.0f}"


def rows(result: dict) -> list[tuple[str, str, str]]:
    """``(quantity, value, detail)`` for every figure the README quotes from ``result``."""
    b = result["benchmarks"]
    out = []

    def add(name, pair):
        if pair is not None:
            out.append((name, *pair))

    peak = b.get("peak", {}).get("best_gflops")
    if peak:
        sizes = "/".join(k.split("_")[1] for k in b["peak"] if k.startswith("matmul_"))
        out.append(("float32 matrix product peak", f"{peak:.0f} GFLOP/s", f"best of n = {sizes}"))
    for depth in (56, 20):
        e = b.get("train_cifar", {}).get(f"resnet{depth}")
        if not e or "images_per_s" not in e:
            continue
        res = e["images_per_s"]
        name = f"ResNet-{depth} training"
        add(
            f"{name}: kerascnn / PyTorch channels_last",
            _ratio(res, "kerascnn", "torch_channels_last"),
        )
        add(f"{name}: kerascnn / PyTorch NCHW", _ratio(res, "kerascnn", "torch_nchw"))
        add(f"{name}: kerascnn / plain Keras", _ratio(res, "kerascnn", "plain_keras"))
        if peak and _median(res, "kerascnn"):
            used = _median(res, "kerascnn") * e["train_gflop_per_image"]
            out.append((f"{name}: kerascnn's share of the peak", f"{100 * used / peak:.0f} %",
                        f"{used:.0f} GFLOP/s of {peak:.0f}"))  # fmt: skip
    e = b.get("inference")
    if e and "images_per_s" in e:
        res = e["images_per_s"]
        name = "ResNet-56 inference"
        add(f"{name}: serving_export / PyTorch eval channels_last",
            _ratio(res, "serving_export", "torch_eval_channels_last"))  # fmt: skip
        add(
            f"{name}: serving_export / model.predict",
            _ratio(res, "serving_export", "model_predict"),
        )
        lat = e.get("batch1_latency", {})
        if "serving_export" in lat and "torch_eval_channels_last" in lat:
            out.append((f"{name}, batch 1: p50 latency, serving_export / PyTorch channels_last",
                        f"{lat['serving_export']['p50_ms']:.1f} / "
                        f"{lat['torch_eval_channels_last']['p50_ms']:.1f} ms",
                        f"p99 {lat['serving_export']['p99_ms']:.1f} / "
                        f"{lat['torch_eval_channels_last']['p99_ms']:.1f} ms"))  # fmt: skip
    e = b.get("augment")
    if e and "images_per_s" in e:
        res = e["images_per_s"]
        # the zoo's default batch norm (fused) where the run has it
        with_aug, without = ("flip_padcrop_fused_bn", "none_fused_bn")
        if with_aug not in res:
            with_aug, without = ("flip_padcrop", "none")
        a, n = _median(res, with_aug), _median(res, without)
        if a and n:
            out.append((f"ResNet-{e['depth']} training: step time added by in-model flip + pad-crop",
                        f"{100 * (n / a - 1):.1f} %",
                        f"{a:.0f} vs {n:.0f} images/s [{_range(res[with_aug])} / "
                        f"{_range(res[without])}]"))  # fmt: skip
    return out


def markdown(result: dict, path: str | pathlib.Path) -> str:
    """The README's speed table for the results file ``path`` holding ``result``."""
    info = result["machine"]
    lines = [
        f"Measured by `{result['command']}` on {machine.label(info)}, load average "
        f"{round(info.get('load_average_at_start', [float('nan')])[0], 1)} at the start, {result['date']} "
        f"(`{pathlib.Path(path).as_posix()}`; medians of interleaved rounds, [min..max]):",
        "",
        "| quantity | value | detail |",
        "|---|---|---|",
    ]
    for name, value, detail in rows(result):
        target = TARGETS.get(name)
        if target is not None:
            met = float(value.rstrip("x")) >= target
            value += f" (target {target}x: {'met' if met else 'not met'})"
        lines.append(f"| {name} | {value} | {detail} |")
    return "\n".join(lines)


def load(path: str | pathlib.Path) -> dict:
    return json.loads(pathlib.Path(path).read_text())
