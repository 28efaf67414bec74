"""The run folder's guarantees, shown with real processes and signals: one owner at a time,
an exact resume that includes early stopping's state, a finish that can be cut anywhere,
``--overwrite`` that replaces a run whole, and no backup of a diverged epoch."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import epochs_logged, tf_only, write_brightness_npz

from kerascnn import cli
from kerascnn.training import fit, get_recipe, run_folder
from kerascnn.training.loop import StopOnNaN, TrainingDiverged

pytestmark = tf_only  # the processes run the default (TensorFlow) backend

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# Runs the CLI and sends this process a real signal at one point of the run folder's life:
# SIGNAL_AT = "<point>@<SIGINT|SIGKILL|WAIT>" (WAIT: pause until the file $RELEASE exists); points: "backup-N" (right after the backup of N
# epochs is committed), "model.keras" / "result.json" (the file written to its temporary
# name, not yet renamed), "backup-removal" (model.keras and result.json written).
DRIVER = textwrap.dedent(
    """
    import os, pathlib, shutil, signal, sys, time
    from kerascnn import cli
    from kerascnn.training import run_folder

    # a process started in the background by a non-interactive shell inherits SIGINT ignored;
    # the cut must happen whatever way the test suite was started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    point, name = os.environ["SIGNAL_AT"].split("@")
    def hit():
        if name == "WAIT":  # hold on until the test creates the file RELEASE
            while not os.path.exists(os.environ["RELEASE"]):
                time.sleep(0.05)
        else:
            os.kill(os.getpid(), getattr(signal, name))

    if point == "backup-removal":
        rmtree = shutil.rmtree
        def signal_then_rmtree(path, *args, **kwargs):
            if pathlib.Path(path).name == "backup":
                hit()
            return rmtree(path, *args, **kwargs)
        run_folder.shutil.rmtree = signal_then_rmtree
    elif point.startswith("backup-"):
        save = run_folder.SafeBackupAndRestore._save_model
        def save_then_signal(self):
            save(self)
            if self._current_epoch == int(point.split("-")[1]):
                hit()
        run_folder.SafeBackupAndRestore._save_model = save_then_signal
    else:
        write_atomically = run_folder._write_atomically
        def write_then_signal(path, tmp, write):
            if path.name == point:
                write(tmp)
                hit()
            write_atomically(path, tmp, write)
        run_folder._write_atomically = write_then_signal
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_brightness_npz(tmp_path_factory.mktemp("data") / "tiny.npz", 120)


def es_argv(data, out, *extra):
    """Six epochs with early stopping (patience 2): at this learning rate the run's best epoch
    is 3 and it stops after epoch 5, restoring epoch 3's weights."""
    return [
        "train", "lenet5", "--dataset", str(data), "--recipe", "vgg-sweep", "--epochs", "6",
        "--batch-size", "32", "--augment", "", "--lr", "0.01", "--early-stopping", "2",
        "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def run_driver(argv, signal_at, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], env={**ENV, "SIGNAL_AT": signal_at},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def trained_epochs(stdout: str) -> list[int]:
    """The epochs (1-based) a CLI run printed it trained (``epoch k/n - ...`` lines)."""
    return [
        int(line.split()[1].split("/")[0])
        for line in stdout.splitlines()
        if line.startswith("epoch ") and "/" in line.split()[1]
    ]


def weights(path) -> list[np.ndarray]:
    return keras.models.load_model(path).get_weights()


def assert_same_run(out, reference):
    """``model.keras``, ``best.keras`` and ``result.json`` of ``out`` are the reference's."""
    for name in ("model.keras", "best.keras"):
        for a, b in zip(weights(reference / name), weights(out / name), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
    mine, theirs = (json.loads((p / "result.json").read_text()) for p in (out, reference))
    mine.pop("out_dir"), theirs.pop("out_dir")
    assert mine["history"].keys() == theirs["history"].keys()
    for key, values in theirs.pop("history").items():
        np.testing.assert_allclose(mine["history"][key], values, rtol=1e-5, err_msg=key)
    mine.pop("history")
    assert mine.keys() == theirs.keys()
    for key in theirs:
        assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
    assert not (out / "backup").exists()


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The run uninterrupted (in this process: the same seed gives the same run)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(es_argv(data, out)) == 0
    result = json.loads((out / "result.json").read_text())
    # what makes the cases below telling: the best epoch lies before the cuts
    assert (result["best_epoch"], result["epochs_run"], result["stopped_early"]) == (3, 5, True)
    return out


# --------------------------------------------------------------------------- one owner
def test_a_second_training_into_a_busy_folder_is_refused_and_the_first_runs_on(data, tmp_path):
    def argv(out, seed):
        return es_argv(data, out, "--epochs", "3", "--seed", str(seed))

    out, release = tmp_path / "run", tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv(out, 0)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**ENV, "SIGNAL_AT": "backup-1@WAIT", "RELEASE": str(release)},
    )  # fmt: skip
    try:  # the first run pauses after its first epoch, holding the folder
        deadline = time.time() + 120
        while not epochs_logged(out) and time.time() < deadline:
            assert first.poll() is None, first.stderr.read()[-2000:]
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "kerascnn.cli", *argv(out, 1)], env=ENV, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
    finally:
        release.touch()
    assert second.returncode == 2
    err = second.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kerascnn train: error: "), err
    assert f"in use by process {first.pid} " in err and "choose another --out" in err, err
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert epochs_logged(out) == [0, 1, 2]
    # the first run's files are its own: the same command alone, in this process
    alone = tmp_path / "alone"
    assert cli.main(argv(alone, 0)) == 0
    for name in ("model.keras", "best.keras"):
        for a, b in zip(weights(alone / name), weights(out / name), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
    assert (alone / "log.csv").read_text() == (out / "log.csv").read_text()


def test_a_dead_owners_folder_is_taken_over(data, tmp_path):
    out = tmp_path / "run"
    killed = run_driver(es_argv(data, out), "backup-2@SIGKILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / run_folder.LOCK).exists()  # the dead process's lock file stays
    assert cli.main(es_argv(data, out)) == 0
    assert epochs_logged(out) == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- exact resume
@pytest.mark.parametrize(
    "signal_at, retrained",
    [
        ("backup-4@SIGINT", [5]),  # Ctrl-C during patience: best epoch 3, wait 1
        ("backup-5@SIGKILL", []),  # killed after the stopping epoch's backup
    ],
)
def test_resume_keeps_early_stoppings_state(
    data, reference, tmp_path, capsys, signal_at, retrained
):
    out = tmp_path / "run"
    cut = run_driver(es_argv(data, out), signal_at)
    assert cut.returncode in (130, -signal.SIGKILL), cut.stderr[-2000:]
    assert (out / "backup").exists() and not (out / "result.json").exists()
    capsys.readouterr()
    assert cli.main(es_argv(data, out)) == 0
    printed = capsys.readouterr().out
    assert trained_epochs(printed) == retrained, printed
    assert "validation accuracy: 1.0000" in printed
    assert_same_run(out, reference)


# --------------------------------------------------------------------------- the finish
@pytest.mark.parametrize("point", ["model.keras", "result.json", "backup-removal"])
def test_a_finish_killed_anywhere_is_found_or_resumed_by_the_rerun(
    data, reference, tmp_path, capsys, point
):
    out = tmp_path / "run"
    killed = run_driver(es_argv(data, out), f"{point}@SIGKILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    capsys.readouterr()
    if point == "backup-removal":  # result.json was written: the run is finished
        assert cli.main(es_argv(data, out)) == 2
        assert "holds a finished run" in capsys.readouterr().err
        shutil.rmtree(out / "backup")  # what the cut finish left; the run is whole without it
    else:  # not finished: the rerun resumes at the end, trains nothing, finishes
        assert run_folder.run_folder_state(out) == "unfinished"
        assert cli.main(es_argv(data, out)) == 0
        assert trained_epochs(capsys.readouterr().out) == []
    assert_same_run(out, reference)


@pytest.mark.parametrize("name", ["model.keras", "result.json"])
def test_a_disk_that_fills_at_the_finish_loses_nothing(data, reference, tmp_path, capsys, name):
    """The finish's write fails half-way (ENOSPC, a partial temporary file): one line, exit 1,
    and once there is space again the same command finishes the run without training."""
    out = tmp_path / "run"
    write_atomically = run_folder._write_atomically

    def full(path, tmp, write):
        if path.name == name:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        write_atomically(path, tmp, write)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_folder, "_write_atomically", full)
        assert cli.main(es_argv(data, out)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err, err
    assert run_folder.run_folder_state(out) == "unfinished"
    assert cli.main(es_argv(data, out)) == 0
    assert trained_epochs(capsys.readouterr().out) == []
    assert_same_run(out, reference)


# --------------------------------------------------------------------------- overwrite
def test_overwrite_cut_short_leaves_only_the_new_run(data, reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    cut = run_driver(es_argv(data, out, "--overwrite", "--epochs", "3"), "backup-1@SIGINT")
    assert cut.returncode == 130, cut.stderr[-2000:]
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["backup", "best.keras", "class_names.txt", "command.json", "log.csv"]
    assert epochs_logged(out) == [0]
    # the rerun without --overwrite resumes the new run; its finish deletes the old one
    assert cli.main(es_argv(data, out, "--epochs", "3")) == 0
    assert trained_epochs(capsys.readouterr().out) == [2, 3]
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "best.keras", "class_names.txt", "command.json", "curves.png", "log.csv",
        "model.keras", "result.json",
    ]  # fmt: skip
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 3


def test_overwrite_does_not_resume_an_unfinished_run(data, tmp_path, capsys):
    out = tmp_path / "run"
    cut = run_driver(es_argv(data, out), "backup-2@SIGINT")
    assert cut.returncode == 130, cut.stderr[-2000:]
    capsys.readouterr()
    assert cli.main(es_argv(data, out, "--overwrite", "--epochs", "2")) == 0
    assert trained_epochs(capsys.readouterr().out) == [1, 2]  # started again
    assert epochs_logged(out) == [0, 1]


# --------------------------------------------------------------------------- divergence
def test_an_epoch_whose_validation_loss_is_not_finite_is_never_saved(tmp_path):
    """A finite training loss with a NaN validation loss (here: NaN validation pixels) stops
    the run at that epoch's end, before the log, the checkpoint or the backup is written."""
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    x = np.random.default_rng(0).uniform(size=(32, 4, 4, 1)).astype("float32")
    y = np.arange(32) % 2
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    val = tf.data.Dataset.from_tensor_slices((np.full_like(x, np.nan), y)).batch(16)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"the validation loss became nan at epoch 1;"):
        fit(model, train, val, get_recipe("vgg-sweep", epochs=2), out_dir=out, verbose=0)
    assert not out.exists()  # nothing of the epoch (the folder it created is removed)

    guard = StopOnNaN()
    with pytest.raises(TrainingDiverged, match=r"validation loss became nan at epoch 3"):
        guard.on_epoch_end(2, {"loss": 3.5e23, "val_loss": float("nan")})


# --------------------------------------------------------------------------- another command
def test_an_unfinished_run_is_not_resumed_by_another_command(data, tmp_path, capsys):
    out = tmp_path / "run"
    cut = run_driver(es_argv(data, out), "backup-2@SIGINT")
    assert cut.returncode == 130, cut.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    other_data = write_brightness_npz(tmp_path / "other.npz", 90)
    for extra, named in [
        (["--lr", "0.1", "--seed", "3"], ["recipe.lr 0.01 -> 0.1", "seed 0 -> 3"]),
        (["--dataset", str(other_data)], ["examples 108 -> 81", "labels_sha256"]),
    ]:
        capsys.readouterr()
        assert cli.main(es_argv(data, out, *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "holds an unfinished run of another command" in err
        assert all(fragment in err for fragment in named) and "--overwrite" in err, err
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
        assert after == before
    assert cli.main(es_argv(data, out, "--lr", "0.1", "--epochs", "1", "--overwrite")) == 0
    assert json.loads((out / "command.json").read_text())["recipe"]["lr"] == 0.1
