"""What machine a benchmark ran on: the CPU model, its vector-instruction flags, the load.

Every results file records ``cpu()``, and every figure quoted from it names the machine by
``label(info)`` ("AMD EPYC, 2 cores, AVX2 + FMA + AVX-512 + AVX512_BF16"), because a ratio
measured on an AVX-512 CPU does not hold on an AVX2-only one (oneDNN and PyTorch pick their
kernels by these flags).

``ONEDNN_MAX_CPU_ISA`` (TensorFlow's and PyTorch's oneDNN) and ``ATEN_CPU_CAPABILITY``
(PyTorch's own vectorized kernels) cap the instruction set the frameworks use; a run made
with them set records them here, and ``label`` says "capped at ...".
"""

from __future__ import annotations

import os
import pathlib
import platform

__all__ = ["ISA_CAP_VARIABLES", "cpu", "label"]

ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu() -> dict:
    """CPU model, core count, the flags in ``_FLAGS``, load average, instruction-set caps."""
    info = {
        "cpu_model": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["cpu_model"] = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            info.update({flag: flag in flags for flag in _FLAGS})
            break
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    caps = {name: os.environ[name] for name in ISA_CAP_VARIABLES if os.environ.get(name)}
    if caps:
        info["isa_caps"] = caps
    return info


def label(info: dict) -> str:
    """One line naming the machine of a results file's ``cpu()`` record."""
    names = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_bf16": "AVX512_BF16",
             "amx_tile": "AMX"}  # fmt: skip
    info = {"avx512f": info.get("avx512"), **info}  # results files before 2026-12-01
    flags = [names[f] for f in _FLAGS if info.get(f)]
    missing = [names[f] for f in ("avx512f",) if info.get(f) is False]
    text = f"{info.get('cpu_model')}, {info.get('cpu_count')} cores, " + " + ".join(flags)
    if missing:
        text += ", no " + ", ".join(missing)
    if info.get("isa_caps"):
        text += "; capped at " + ", ".join(f"{k}={v}" for k, v in info["isa_caps"].items())
    return text
