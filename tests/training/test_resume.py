"""Fault tolerance: a run killed with SIGKILL mid-epoch resumes with the same command."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import epochs_logged, write_class_npz


def _command(data, out):
    return [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(data),
        "--recipe", "vgg-sweep", "--epochs", "4", "--batch-size", "4", "--augment", "",
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def test_sigkill_mid_epoch_then_rerun_resumes(tmp_path):
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 768)
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        _command(data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while len(epochs_logged(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    time.sleep(1.0)  # well inside epoch 3
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
