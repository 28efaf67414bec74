"""The README's main command on a fresh clone, timed as a new user meets it, install included.

    python benchmarks/main_command.py [--commits REV,REV] [--rounds N] [--out DIR]

1. ``git clone`` of this repository at each commit measured (default HEAD) into a temporary
   folder and a new virtual environment there (``python3 -m venv``; pip's download cache is
   the user's, as it would be on a machine that installed packages before: its size is
   recorded);
2. the line after ``<!-- main-command -->`` in README.md, run verbatim by bash in the clone
   with the venv first on PATH, its two halves (``pip install ...`` and ``kerascnn train ...``,
   split at the first ``&&``) timed separately;
3. from the progress bars of ``kerascnn train``: per epoch, the first step's time (Keras's
   bar starts at ``on_epoch_begin``, so it holds the iterator start and any tracing) and the
   steady step time (the bar's mean of the later steps); the epoch-start pause is their
   difference (``epoch_rows``).

``--commits A,B --rounds N`` measures several commits (before / after a change) in turns,
N runs each, and reports each one's median and range.

Writes ``benchmarks/results/<date>-main-command-<commits>.json`` (machine from ``benchmarks.machine``,
the command; per run: commit, load average, times, per-epoch rows, the printed validation
accuracy).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STEP = re.compile(r"^\s*(\d+)/(\d+)\s\S*\s((?:\d+:)*\d+s?)?\s*(\d+(?:\.\d+)?)(us|ms|s)/step")
SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def readme_line(marker: str) -> str:
    """The command line in the code block after ``<!-- marker -->`` in README.md."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"<!-- {marker} -->")
    return next(line for line in lines[start + 1 :] if line and not line.startswith("```"))


def _seconds(text: str) -> float:
    """Keras's ETA text ("7s", "2:46", "1:02:03") in seconds."""
    parts = [float(v) for v in text.rstrip("s").split(":")]
    return sum(v * 60**i for i, v in enumerate(reversed(parts)))


def epoch_rows(output: str) -> list[dict]:
    """Per epoch: first-step, steady-step and pause seconds, from Keras's progress bars.

    Keras's bar prints after step 1 the time since ``on_epoch_begin`` and after step ``k > 1``
    the mean of steps 2..k (keras/src/utils/progbar.py); the last line, printed after the
    validation, is left out. From 1 s up the step time is printed in whole seconds, so the
    first step's time is then read from the ETA, ``eta / (steps - 1)``.
    """
    epochs = []
    for raw in re.split(r"[\r\n]", ANSI.sub("", output)):
        if raw.startswith("Epoch "):
            epochs.append({})
        elif (m := STEP.match(raw)) and epochs:
            k, target = int(m.group(1)), int(m.group(2))
            value = float(m.group(4)) * SECONDS[m.group(5)]
            if k == 1 and m.group(5) == "s" and m.group(3):
                value = _seconds(m.group(3)) / (target - 1)
            if k < target:
                epochs[-1][k] = value
    out = []
    for epoch, times in enumerate(epochs, 1):
        if 1 not in times or len(times) < 2:
            continue
        steady = times[max(times)]
        out.append({
            "epoch": epoch,
            "first_step_s": round(times[1], 3),
            "steady_step_s": round(steady, 4),
            "pause_s": round(times[1] - steady, 3),
        })  # fmt: skip
    return out


def run(command: str, cwd: pathlib.Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {command}"], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {command}")
    return seconds, proc.stdout + proc.stderr


def pip_cache_mb() -> float | None:
    proc = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True,
                          text=True)  # fmt: skip
    folder = pathlib.Path(proc.stdout.strip())
    if proc.returncode or not folder.is_dir():
        return None
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return round(total / 2**20, 1)


def one_run(commit: str, command: str) -> dict:
    """Clone ``commit``, make a venv, run ``command`` (install && train) there; the timings."""
    install, train = (part.strip() for part in command.split("&&", 1))
    work = pathlib.Path(tempfile.mkdtemp(prefix="kerascnn-main-"))
    try:
        clone = work / "kerascnn"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
        setup_s = time.perf_counter() - start
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env["PATH"] = f"{work / 'venv' / 'bin'}:{env['PATH']}"
        load = [round(v, 2) for v in os.getloadavg()]
        install_s, _ = run(install, clone, env)
        train_s, output = run(train, clone, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    epochs = epoch_rows(output)
    accuracy = re.search(r"validation accuracy: ([0-9.]+)", output)
    later = [row["pause_s"] for row in epochs[1:]]
    return {
        "commit": commit,
        "load_average_before": load,
        "clone_and_venv_s": round(setup_s, 1),
        "install_s": round(install_s, 1),
        "train_s": round(train_s, 1),
        "main_command_s": round(install_s + train_s, 1),
        "validation_accuracy": float(accuracy.group(1)) if accuracy else None,
        "max_pause_after_epoch_1_s": max(later) if later else None,
        "epochs": epochs,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--commits",
        default="HEAD",
        help="comma-separated commits to measure, in turns (default HEAD)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each commit")
    args = parser.parse_args(argv)
    command = readme_line("main-command")  # today's README's command, for every commit
    commits = [
        subprocess.run(["git", "rev-parse", "--short", c.strip()], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout.strip()
        for c in args.commits.split(",")
    ]  # fmt: skip
    info = machine.cpu()
    result = {
        "benchmark": "main_command",
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/main_command.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "main_command": command,
        "machine": info,
        "machine_label": machine.label(info),
        "pip_cache_mb_before": pip_cache_mb(),
        "runs": [],
    }
    print(result["machine_label"], flush=True)
    for r in range(args.rounds):
        k = r % len(commits)
        for commit in commits[k:] + commits[:k]:
            row = one_run(commit, command)
            result["runs"].append(row)
            print(f"{commit}: main command {row['main_command_s']} s (install {row['install_s']} s, "
                  f"train {row['train_s']} s); validation accuracy {row['validation_accuracy']}; "
                  f"largest epoch-start pause after epoch 1: {row['max_pause_after_epoch_1_s']} s",
                  flush=True)  # fmt: skip
    result["by_commit"] = {
        commit: {
            "main_command_s_median": statistics.median(r["main_command_s"] for r in rows),
            "main_command_s_range": [min(r["main_command_s"] for r in rows),
                                     max(r["main_command_s"] for r in rows)],
            "max_pause_after_epoch_1_s": max(r["max_pause_after_epoch_1_s"] for r in rows),
        }
        for commit in commits
        if (rows := [r for r in result["runs"] if r["commit"] == commit])
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-main-command-{'-'.join(commits)}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["by_commit"], indent=1))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
