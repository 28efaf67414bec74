"""Where XLA helps on the CPU: model.fit images/s with jit_compile on vs off, per backend and model.

    python benchmarks/xla_cpu.py                      # full: 3 backends x 3 models, ~25 min on 2 cores
    python benchmarks/xla_cpu.py --quick              # ResNet-20 on TensorFlow, few steps (~2 min)
    python benchmarks/xla_cpu.py --backends jax --models resnet56 --rounds 3

What is timed: the README's Layers example, ``keras.Sequential([keras.Input((32, 32, 3)),
kerascnn.layers.RandomPadCrop(4), kerascnn.layers.RandomFlip(), kerascnn.zoo.create(name)])``
compiled with Adam and sparse cross-entropy from logits, trained by ``model.fit`` (batch 128,
``verbose=0``, no shuffle) on a fixed in-memory set of float32 32x32x3 images in [0, 1) with
random labels. ``jit_compile=True`` means XLA on TensorFlow, ``jax.jit`` on JAX (off: Keras runs
the step op by op) and ``torch.compile`` on PyTorch (off: eager). Models: ``resnet20``,
``resnet56`` (zoo defaults, kerascnn's fused batch norm) and ``mobilenet_v2`` built at 32x32
with 10 classes (depthwise convolutions; a non-ResNet family).

How: every (backend, model, jit) cell is its own child process (``KERAS_BACKEND`` is read
when Keras is imported). The two cells of a (backend, model) pair start one after the other;
each builds its model, compiles it and runs one warm-up ``fit`` (its first step is the trace
and compilation; torch.compile also recompiles in the next steps: reported as ``compile_s``,
the warm-up ``fit``'s time beyond its steps at the timed rounds' median pace, apart from the
throughput), then waits. The parent then asks them for timed rounds in turns, on/off, off/on,
on/off, ... so that other jobs' load falls on both alike. A round is one ``fit`` call of
``steps + 1`` steps; a callback reads each step's loss (which waits for the step) and the
round's images/s is ``128 * steps`` over the time from the end of its first step to the end of
its last (the first step of every ``fit`` call also sets up Keras's data adapter). Reported per
cell: median images/s, min, max, every round; per pair: the on/off ratio of the medians. A
cell whose compilation fails or runs past ``--compile-timeout`` is recorded with the error's
first line, and its pair has no ratio.

Results: ``benchmarks/results/<date>-xla-cpu.json`` and ``.md`` (``--name`` changes the
stem), with the machine (``benchmarks/machine.py``), versions, load average and the command.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402  (no Keras import in the parent)

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("resnet20", "resnet56", "mobilenet_v2")
BATCH = 128
# steps per timed round (on and off alike), per backend and model: JAX (jit on and off) and
# PyTorch step 3-5x slower than TensorFlow here and torch.compile takes minutes, so they get
# fewer, to keep the full run near 25 minutes on 2 shared cores
STEPS = {
    "tensorflow": {"resnet20": 6, "resnet56": 3, "mobilenet_v2": 6},
    "jax": {"resnet20": 2, "resnet56": 1, "mobilenet_v2": 3},
    "torch": {"resnet20": 3, "resnet56": 2, "mobilenet_v2": 3},
}
QUICK_STEPS = 2
DISTINCT_BATCHES = 4  # the in-memory set cycles through this many different batches
MODEL_OVERRIDES = {"mobilenet_v2": {"input_shape": (32, 32, 3), "num_classes": 10}}
VERSION_PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "torch", "numpy")


# --------------------------------------------------------------------------- child process
def worker(backend: str, model_name: str, jit: bool, steps: int) -> None:
    """One cell: build, compile, warm up, then one timed ``fit`` round per ``run`` line on
    stdin; each answer is one JSON line on stdout."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # PyTorch's GNU OpenMP threads spin while they wait (benchmarks/README.md); set first.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # the protocol gets its own copy of stdout; fd 1 (Python's and native libraries' prints)
    # goes to stderr, so nothing else reaches the parent's channel
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def say(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        import keras
        import numpy as np

        import kerascnn

        class StepClock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.begin = time.perf_counter()
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.loss = float(logs["loss"])  # waits for the step
                self.ends.append(time.perf_counter())

        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        net = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                kerascnn.layers.RandomPadCrop(4),
                kerascnn.layers.RandomFlip(),
                kerascnn.zoo.create(model_name, **MODEL_OVERRIDES.get(model_name, {})),
            ]
        )
        net.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        build_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        n = BATCH * DISTINCT_BATCHES
        x = rng.random((n, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, n).astype("int32")
        reps = -(-(steps + 1) // DISTINCT_BATCHES)
        x = np.concatenate([x] * reps)[: BATCH * (steps + 1)]
        y = np.concatenate([y] * reps)[: BATCH * (steps + 1)]
        clock = StepClock()

        def fit():
            net.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
            gaps = [b - a for a, b in zip(clock.ends[:-1], clock.ends[1:], strict=False)]
            return clock.ends[0] - clock.begin, gaps

        t = time.perf_counter()
        first, gaps = fit()  # warm-up: trace and compile (torch.compile also recompiles later)
        say({
            "ready": True,
            "jit_compile_in_effect": bool(net.jit_compile),
            "params": int(net.count_params()),
            "build_s": round(build_s, 2),
            "first_step_s": round(first, 2),
            "warmup_fit_s": round(time.perf_counter() - t, 2),
            "warmup_steps": steps + 1,
            "warmup_step_s": [round(g, 3) for g in gaps],
            "loss": clock.loss,
            "backend_version": _backend_version(backend),
        })  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - reported, one line
        say({"ready": False, "error": _one_line(exc)})
        return
    for line in sys.stdin:
        if line.strip() != "run":
            break
        try:
            _, gaps = fit()
            say({
                "images_per_s": round(BATCH * len(gaps) / sum(gaps), 2),
                "step_s": round(statistics.median(gaps), 4),
                "loss": clock.loss,
                "load_average": round(os.getloadavg()[0], 2),
            })  # fmt: skip
        except BaseException as exc:  # noqa: BLE001
            say({"error": _one_line(exc)})
            return


def _backend_version(backend: str) -> str:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return sys.modules[module].__version__ if module in sys.modules else "?"


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --------------------------------------------------------------------------- parent
class Cell:
    """A child process measuring one (backend, model, jit) cell."""

    def __init__(self, backend, model, jit, steps, timeout):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))  # fmt: skip
        self.name = f"{backend} {model} jit={'on' if jit else 'off'}"
        self.steps = steps
        self.timeout = timeout
        self.log = tempfile.TemporaryFile("w+")  # the child's stderr, read back on failure
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", backend, model, "on" if jit else "off",
             str(steps)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, env=env, cwd=ROOT,
        )  # fmt: skip

    def read(self, timeout) -> dict:
        """The child's next JSON line, or an error with the last line of its stderr."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                return {"error": f"no answer within {timeout:.0f} s (stopped)"}
        line = self.proc.stdout.readline()
        if line:
            return json.loads(line)
        self.proc.wait()
        self.log.seek(0)
        tail = [s for s in self.log.read().splitlines() if s.strip()][-1:] or [""]
        return {"error": f"exited with {self.proc.returncode}: {tail[0][:300]}"}

    def ask(self, timeout) -> dict:
        try:
            self.proc.stdin.write("run\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {"error": "the child process had ended"}
        return self.read(timeout)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()  # our own child, by its handle
                self.proc.wait()


def summarize(values: list[float]) -> dict | None:
    if not values:
        return None
    med = statistics.median(values)
    return {"median": round(med, 2), "min": round(min(values), 2), "max": round(max(values), 2),
            "runs": [round(v, 2) for v in values]}  # fmt: skip


def measure_pair(backend, model, steps, rounds, compile_timeout, round_timeout, log) -> dict:
    """Both cells of (backend, model): warm-up one after the other, then interleaved rounds."""
    cells, warm = {}, {}
    for jit in (True, False):
        n = steps[jit]
        cell = Cell(backend, model, jit, n, compile_timeout)
        warm[jit] = cell.read(compile_timeout)
        if warm[jit].get("ready"):
            cells[jit] = cell
            log(f"  {cell.name}: compiled, first step {warm[jit]['first_step_s']} s "
                f"(jit in effect: {warm[jit]['jit_compile_in_effect']})")  # fmt: skip
        else:
            cell.stop()
            log(f"  {cell.name}: FAILED: {warm[jit].get('error')}")
    rates = {True: [], False: []}
    rounds_log = []
    for r in range(rounds):
        order = [True, False] if r % 2 == 0 else [False, True]
        for jit in order:
            if jit not in cells:
                continue
            answer = cells[jit].ask(round_timeout)
            if "images_per_s" in answer:
                rates[jit].append(answer["images_per_s"])
            else:
                warm[jit]["error"] = answer.get("error")
                cells.pop(jit).stop()
            rounds_log.append({"round": r + 1, "jit": "on" if jit else "off", **answer})
    for cell in cells.values():
        cell.stop()
    result = {"backend": backend, "model": model, "batch": BATCH, "rounds": rounds_log}
    for jit in (True, False):
        key = "on" if jit else "off"
        info = {k: v for k, v in warm[jit].items() if k != "ready"}
        result[key] = {"steps_per_round": steps[jit], **info,
                       "images_per_s": summarize(rates[jit])}  # fmt: skip
        # compilation: what the warm-up fit took beyond its steps at the timed rounds' pace
        # (the first step's trace and compile, and any recompilation in the next steps)
        steps_s = [r["step_s"] for r in rounds_log if r["jit"] == key and "step_s" in r]
        if "warmup_fit_s" in info and steps_s:
            steady = statistics.median(steps_s)
            result[key]["compile_s"] = round(
                info["warmup_fit_s"] - info["warmup_steps"] * steady, 1
            )
    on, off = result["on"]["images_per_s"], result["off"]["images_per_s"]
    result["ratio_on_off"] = round(on["median"] / off["median"], 3) if on and off else None
    return result


def _fmt_rate(cell: dict) -> str:
    s = cell.get("images_per_s")
    if not s:
        return "failed"
    return f"{s['median']:,.1f} [{s['min']:,.1f}..{s['max']:,.1f}]"


def markdown(result: dict, path: str) -> str:
    """The results file as a markdown table (what README.md and benchmarks/README.md quote)."""
    label = machine.label(result["machine"])
    load = result["machine"].get("load_average_at_start")
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [
        f"# XLA on the CPU: `jit_compile` on vs off, {result['date']}",
        "",
        f"Machine: {label}; load average at start {load}, at end {result.get('load_average_at_end')}.",
        f"Versions: {versions}.",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s). Results file: `{path}`.",
        "",
        "`model.fit` train steps of the README's Layers example (RandomPadCrop(4) + RandomFlip + "
        "the zoo model), batch 128, float32, Adam; images/s: median [min..max] of interleaved "
        "rounds, each cell in its own process; compile = the warm-up `fit` beyond its steps at the "
        "timed pace (trace, compilation, recompilation). "
        "on = XLA (TensorFlow), jax.jit (JAX), torch.compile (PyTorch).",
        "",
        "| backend | model | off: images/s | on: images/s | on / off | compile s (off / on) | rounds x steps (off / on) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for pair in result["pairs"]:
        on, off = pair["on"], pair["off"]
        ratio = f"**{pair['ratio_on_off']:.2f}x**" if pair["ratio_on_off"] else "-"
        comp = f"{off.get('compile_s', '-')} / {on.get('compile_s', '-')}"
        shape = (f"{len((off.get('images_per_s') or {}).get('runs', []))}x{off['steps_per_round']}"
                 f" / {len((on.get('images_per_s') or {}).get('runs', []))}x{on['steps_per_round']}")  # fmt: skip
        lines.append(f"| {pair['backend']} | {pair['model']} | {_fmt_rate(off)} | {_fmt_rate(on)} "
                     f"| {ratio} | {comp} | {shape} |")  # fmt: skip
    errors = [(p, k) for p in result["pairs"] for k in ("off", "on") if p[k].get("error")]
    if errors:
        lines += ["", "Failures:", ""]
        for pair, key in errors:
            lines.append(f"- {pair['backend']} {pair['model']} jit {key}: `{pair[key]['error']}`")
    for pair in result["pairs"]:
        if pair["on"].get("jit_compile_in_effect") is False:
            lines.append(f"- {pair['backend']} {pair['model']}: Keras turned jit_compile off")
    if result.get("notes"):  # written by hand into the JSON after the run
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        backend, model, jit, steps = sys.argv[2:6]
        worker(backend, model, jit == "on", int(steps))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="ResNet-20 on one backend (default tensorflow), 2 rounds of 2 steps")  # fmt: skip
    parser.add_argument("--backends", default=None, help=f"comma list of {', '.join(BACKENDS)}")
    parser.add_argument("--models", default=None, help=f"comma list (default {','.join(MODELS)})")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per cell (default 3)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per round (default per model)"
    )
    parser.add_argument("--compile-timeout", type=float, default=None,
                        help="seconds a cell may take to build, compile and warm up (default 600)")  # fmt: skip
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default=None, help="file stem (default <date>-xla-cpu[-quick])")
    args = parser.parse_args(argv)
    backends = (args.backends or ("tensorflow" if args.quick else ",".join(BACKENDS))).split(",")
    models = (args.models or ("resnet20" if args.quick else ",".join(MODELS))).split(",")
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"--backends: {b!r} is not one of {', '.join(BACKENDS)}")
    if args.quick and (len(backends) > 1 or models != ["resnet20"]):
        parser.error("--quick measures resnet20 on one backend")
    rounds = args.rounds or (2 if args.quick else 3)
    if rounds < 2:
        parser.error("--rounds must be at least 2 (interleaved on/off, off/on)")
    compile_timeout = args.compile_timeout or (240 if args.quick else 600)

    date = datetime.date.today().isoformat()
    command = " ".join(
        ["python", "benchmarks/xla_cpu.py", *(sys.argv[1:] if argv is None else argv)]
    )
    result = {
        "benchmark": "xla_cpu",
        "date": date,
        "command": command,
        "machine": machine.cpu(),
        "versions": versions(),
        "batch": BATCH,
        "rounds": rounds,
        "quick": args.quick,
        "pairs": [],
    }
    stem = args.name or f"{date}-xla-cpu" + ("-quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.json"
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    log(
        f"machine: {machine.label(result['machine'])}, load {result['machine'].get('load_average_at_start')}"
    )
    start = time.perf_counter()
    for backend in backends:
        for model in models:
            if args.steps:
                steps = {True: args.steps, False: args.steps}
            elif args.quick:
                steps = {True: QUICK_STEPS, False: QUICK_STEPS}
            else:
                n = STEPS[backend].get(model, 2)
                steps = {True: n, False: n}
            log(f"{backend} {model}: steps per round on {steps[True]}, off {steps[False]}")
            pair = measure_pair(backend, model, steps, rounds, compile_timeout,
                                round_timeout=max(120.0, compile_timeout), log=log)  # fmt: skip
            pair["seconds"] = round(time.perf_counter() - start, 1)
            result["pairs"].append(pair)
            on, off = pair["on"].get("images_per_s"), pair["off"].get("images_per_s")
            log(f"  off {off and off['median']} images/s, on {on and on['median']} images/s, "
                f"on/off {pair['ratio_on_off']}")  # fmt: skip
            # written after every pair: an interrupted run keeps what it measured
            result["seconds"] = round(time.perf_counter() - start, 1)
            result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
            path.write_text(json.dumps(result, indent=1) + "\n")
            path.with_suffix(".md").write_text(markdown(result, str(shown)))
    log(markdown(result, str(shown)))
    log(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
