"""Fault tolerance: a run killed with SIGKILL mid-epoch resumes with the same command."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np


def _write_npz(path, n=768, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("uint8")
    x = (rng.uniform(0, 60, size=(n, 32, 32, 3)) + 40 * y[:, None, None, None]).astype("uint8")
    np.savez(path, x=x, y=y)


def _command(data, out):
    return [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(data),
        "--recipe", "vgg-sweep", "--epochs", "4", "--batch-size", "4", "--augment", "",
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def _epochs_logged(out):
    log = out / "log.csv"
    if not log.exists():
        return []
    with log.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_sigkill_mid_epoch_then_rerun_resumes(tmp_path):
    data = tmp_path / "tiny.npz"
    _write_npz(data)
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        _command(data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while len(_epochs_logged(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    time.sleep(1.0)  # well inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _epochs_logged(out)
    assert 2 <= len(done_before) < 4, done_before
    assert (out / "backup").exists()

    resumed = subprocess.run(
        _command(data, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = _epochs_logged(out)
    assert epochs == [0, 1, 2, 3], epochs  # each epoch exactly once: resumed, not restarted
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 4
    assert not (out / "backup").exists()
    assert "validation accuracy" in resumed.stdout
