"""Fault tolerance: a run killed with SIGKILL mid-epoch resumes with the same command, to
the log and the weights of an uninterrupted run with the same seed."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
from conftest import epochs_logged, write_class_npz

from kerascnn import cli


def _arguments(data, out):
    return [
        "train", "lenet5", "--dataset", str(data), "--recipe", "vgg-sweep", "--epochs", "4",
        "--batch-size", "4", "--augment", "", "--out", str(out), "--quiet",
    ]  # fmt: skip


def _command(data, out):
    return [sys.executable, "-m", "kerascnn.cli", *_arguments(data, out)]


def _log(out) -> list[dict]:
    with open(out / "log.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _wait_for_epochs(out, proc, count, timeout=300):
    """Poll ``log.csv`` until ``count`` epochs are logged; return when each row appeared."""
    logged_at = []
    deadline = time.time() + timeout
    while len(logged_at) < count and time.time() < deadline:
        assert proc.poll() is None, (
            f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        )
        logged_at += [time.time()] * (len(epochs_logged(out)) - len(logged_at))
        time.sleep(0.01)
    assert len(logged_at) >= count, f"{count} epochs not logged within {timeout} s"
    return logged_at


def test_sigkill_mid_epoch_then_rerun_resumes(tmp_path):
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 768)
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        _command(data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    logged_at = _wait_for_epochs(out, proc, 2)
    # Epoch durations vary by machine: kill half an epoch (as long as epoch 2 took) into epoch 3.
    time.sleep((logged_at[1] - logged_at[0]) / 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = epochs_logged(out)
    assert 2 <= len(done_before) < 4, done_before
    assert (out / "backup").exists()

    resumed = subprocess.run(
        _command(data, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = epochs_logged(out)
    assert epochs == [0, 1, 2, 3], epochs  # each epoch exactly once: resumed, not restarted
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 4
    assert not (out / "backup").exists()
    assert "validation accuracy" in resumed.stdout
    assert result["history"]["loss"] == [row["loss"] for row in _log(out)]  # every epoch

    # The same run uninterrupted (in this process: same seed, same ops on the CPU) gives the
    # same log and weights: the resumed epochs saw the same batches from the same state.
    assert cli.main(_arguments(data, tmp_path / "whole")) == 0
    whole, resumed_log = _log(tmp_path / "whole"), _log(out)
    assert [r["epoch"] for r in whole] == [r["epoch"] for r in resumed_log]
    for a, b in zip(whole, resumed_log, strict=True):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=key)
    weights = [
        keras.models.load_model(p / "model.keras").get_weights() for p in (tmp_path / "whole", out)
    ]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
