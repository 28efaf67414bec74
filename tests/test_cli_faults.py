"""Nothing lost, nothing silently wrong: run folders are never clobbered, a failing rerun
keeps the good files, a full disk ends with one line, bad inputs are refused before
training, and unexpected errors keep their traceback."""

import errno
import json
import os
import pathlib
import shlex
import shutil
import zipfile

import keras
import numpy as np
import pytest
from conftest import epochs_logged, tf_only, write_brightness_npz, write_class_npz

from kerascnn import cli
from kerascnn.training import run_folder

pytestmark = tf_only  # like test_cli_train.py: --export, SavedModel predict

RUN_FILES = ("model.keras", "best.keras", "log.csv", "result.json", "class_names.txt")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_brightness_npz(tmp_path_factory.mktemp("data") / "tiny.npz", 120)


def train_argv(data, out, *extra, epochs=3):
    return [
        "train", "lenet5", "--dataset", str(data), "--recipe", "vgg-sweep", "--epochs",
        str(epochs), "--batch-size", "32", "--augment", "", "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def snapshot(folder) -> dict:
    """Every file of a run folder (backup included) with its bytes; not the lock file, which
    names the folder's latest owner."""
    folder = pathlib.Path(folder)
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != run_folder.LOCK
    }


def one_line_error(capsys, *fragments) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def interrupt_after_backup(monkeypatch, epochs_done: int):
    """Ctrl-C right after the backup of ``epochs_done`` epochs is written."""
    save = run_folder.SafeBackupAndRestore._save_model

    def save_then_interrupt(self):
        save(self)
        if self._current_epoch == epochs_done:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_folder.SafeBackupAndRestore, "_save_model", save_then_interrupt)


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(train_argv(data, out)) == 0
    return out


@pytest.fixture(scope="module")
def interrupted_run(data, tmp_path_factory):
    """A 3-epoch run stopped by Ctrl-C after epoch 2 (its backup holds 2 epochs)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.MonkeyPatch.context() as mp:
        interrupt_after_backup(mp, 2)
        assert cli.main(train_argv(data, out)) == 130
    assert epochs_logged(out) == [0, 1] and (out / "backup").exists()
    return out


def copy_of(run, tmp_path) -> pathlib.Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# --------------------------------------------------------------------------- 1. never clobbered
def test_rerun_over_a_finished_run_is_refused_and_changes_nothing(finished_run, data, capsys):
    before = snapshot(finished_run)
    assert set(RUN_FILES) <= set(before)
    assert cli.main(train_argv(data, finished_run, epochs=1)) == 2
    one_line_error(capsys, "holds a finished run", "--overwrite", "another --out")
    assert snapshot(finished_run) == before


def test_overwrite_replaces_a_finished_run(finished_run, data, tmp_path):
    out = copy_of(finished_run, tmp_path)
    assert cli.main(train_argv(data, out, "--overwrite", epochs=1)) == 0
    assert epochs_logged(out) == [0]
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 1


def test_ctrl_c_then_rerun_resumes_with_the_whole_history(interrupted_run, data, tmp_path, capsys):
    out = copy_of(interrupted_run, tmp_path)
    log_before = (out / "log.csv").read_text().splitlines()
    assert cli.main(train_argv(data, out)) == 0
    assert epochs_logged(out) == [0, 1, 2]
    log_after = (out / "log.csv").read_text().splitlines()
    assert log_after[:3] == log_before  # the old rows are kept as they were
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 3
    losses = [
        float(line.split(",")[log_after[0].split(",").index("loss")]) for line in log_after[1:]
    ]
    assert result["history"]["loss"] == losses  # history covers every epoch, not only the last
    assert not (out / "backup").exists()


def test_ctrl_c_prints_one_line_with_exit_130(data, tmp_path, monkeypatch, capsys):
    interrupt_after_backup(monkeypatch, 1)
    assert cli.main(train_argv(data, tmp_path / "run", epochs=2)) == 130
    one_line_error(capsys, "interrupted; rerun the same command to resume")


# --------------------------------------------------------------------------- 2. failing reruns
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--lr", "nan", "lr must be a finite number > 0.0; received lr=nan"),
        ("--lr", "inf", "lr must be a finite number > 0.0; received lr=inf"),
        ("--lr", "-1", "lr must be a finite number > 0.0"),
        ("--weight-decay", "nan", "weight_decay must be a finite number >= 0.0"),
    ],
)
def test_non_finite_recipe_values_are_refused_up_front(
    finished_run, data, option, value, message, capsys
):
    before = snapshot(finished_run)
    assert cli.main(train_argv(data, finished_run, option, value, "--overwrite")) == 2
    one_line_error(capsys, message)
    assert snapshot(finished_run) == before


def test_diverging_rerun_keeps_the_good_runs_files(finished_run, data, tmp_path, capsys):
    out = copy_of(finished_run, tmp_path)
    before = snapshot(out)
    argv = train_argv(data, out, "--overwrite", "--recipe", "resnet-cifar", "--lr", "1e30")
    assert cli.main(argv) == 2
    err = one_line_error(capsys, "at epoch 1, batch", "lower the learning rate")
    assert snapshot(out) == before  # best.keras, model.keras, log.csv, result.json intact
    # the command it suggests is the same command with a lower rate, starting anew (no resume)
    suggested = shlex.split(err.split("; rerun: ")[1])
    assert suggested[0] == "kerascnn" and suggested[-3:] == ["--lr", "1e+29", "--overwrite"]
    assert suggested[1:-3] == [a for a in argv if a not in ("--lr", "1e30", "--overwrite")]


# --------------------------------------------------------------------------- 3. disk full
def _disk_full(monkeypatch, target: str):
    """Make one kind of write fail half-way with ENOSPC, as a full disk does."""

    def fail(path):
        pathlib.Path(path).write_bytes(b"partial")  # a half-written file, then the error
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    if target == "backup":
        monkeypatch.setattr(
            keras.Model, "save_weights", lambda self, filepath, **kw: fail(filepath)
        )
    elif target == "checkpoint":
        monkeypatch.setattr(keras.Model, "save", lambda self, filepath, **kw: fail(filepath))
    elif target == "random-states":
        monkeypatch.setattr(np, "savez", lambda file, **kw: fail(file))
    else:
        write_text = pathlib.Path.write_text

        def log_write(self, text, *args, **kwargs):
            if self.name == "log.csv.tmp":
                fail(self)
            return write_text(self, text, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "write_text", log_write)


@pytest.mark.parametrize("target", ["backup", "checkpoint", "log", "random-states"])
def test_disk_full_mid_run_ends_with_one_line_and_keeps_the_run(
    interrupted_run, data, tmp_path, target, capsys
):
    out = copy_of(interrupted_run, tmp_path)
    before = snapshot(out)
    with pytest.MonkeyPatch.context() as mp:
        _disk_full(mp, target)
        assert cli.main(train_argv(data, out)) == 1
    one_line_error(capsys, "No space left on device")
    after = snapshot(out)
    # nothing half-written is left; the backup is the last complete one; the log keeps its
    # rows (it may have gained epoch 3's, written before the backup failed)
    assert not [name for name in after if ".tmp" in name], list(after)
    backup = {k: v for k, v in before.items() if k.startswith("backup")}
    assert {k: after[k] for k in backup} == backup and len(backup) == 3
    assert after["log.csv"].startswith(before["log.csv"])
    assert all(zipfile.is_zipfile(out / name) for name in after if name.endswith(".keras"))
    if target == "backup":  # the same command resumes once space is back
        assert cli.main(train_argv(data, out)) == 0
        assert epochs_logged(out) == [0, 1, 2]


def test_corrupt_backup_is_moved_aside_and_the_run_starts_cleanly(interrupted_run, data, tmp_path):
    out = copy_of(interrupted_run, tmp_path)
    name = json.loads((out / "backup" / "training_metadata.json").read_text())["files"]["weights"]
    weights = out / "backup" / name
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"moved it to .*backup\.corrupt-"):
        assert cli.main(train_argv(data, out)) == 0
    aside = [p.name for p in out.iterdir() if p.name.startswith("backup.corrupt-")]
    assert len(aside) == 1 and (out / aside[0] / name).exists()
    assert epochs_logged(out) == [0, 1, 2]  # started again from epoch 1
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 3


# --------------------------------------------------------------------------- 4. inputs
def _npz(path, x, y, names=None):
    extra = {} if names is None else {"class_names": np.array(names)}
    np.savez(path, x=x, y=y, **extra)
    return path


def _images(n, dtype="uint8", high=255):
    return np.random.default_rng(0).uniform(0, high, size=(n, 32, 32, 3)).astype(dtype)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: _npz(p, _images(40, "float32", 1.0), np.arange(40) % 2),
            "images are float32 (values 3.492e-06..1); kerascnn trains and exports on uint8 pixels "
            "0..255: store them as uint8 ((x * 255).round().astype('uint8')",
        ),
        (
            lambda p: _npz(p, np.where(_images(40) > 250, np.nan, _images(40)), np.arange(40) % 2),
            "pixel value(s) are NaN or infinite",
        ),
        (
            lambda p: _npz(p, _images(40, "int16") + 100, np.arange(40) % 2),
            "pixel values go from 100 to 354",
        ),
        (
            lambda p: _npz(p, _images(40), np.r_[np.arange(39) % 3, 99], ["a", "b", "c"]),
            "label 99 (example 39) but 3 class names, so labels must be 0..2",
        ),
        (lambda p: _npz(p, _images(40), np.zeros(40, int)), "a classifier needs examples of two"),
        (
            lambda p: _npz(p, _images(40), np.arange(40) % 2 * 2),
            "1 of 3 classes have no training examples: 1 ('1')",
        ),
    ],
    ids=["float-0..1", "nan", "int16-range", "label-99", "one-class", "empty-class"],
)
def test_bad_npz_is_refused_before_training(make, message, tmp_path, capsys):
    path = make(tmp_path / "bad.npz")
    assert cli.main(train_argv(path, tmp_path / "run")) == 2
    err = one_line_error(capsys, message)
    assert str(path) in err
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_a_dataset_with_other_classes(finished_run, tmp_path, capsys):
    four = tmp_path / "four.npz"
    write_class_npz(four, 80)
    assert cli.main(["evaluate", str(finished_run / "model.keras"), "--dataset", str(four)]) == 2
    one_line_error(capsys, "outputs 3 classes", "has 4")


def test_evaluate_refuses_a_dataset_whose_classes_differ_from_the_runs(
    finished_run, tmp_path, capsys
):
    """Same number of classes, other names (or order): the labels would be scored against
    the wrong outputs."""
    with np.load(write_brightness_npz(tmp_path / "same.npz", 60)) as f:
        x, y = f["x"], f["y"]
    model = str(finished_run / "model.keras")
    for names in (["mid", "low", "high"], ["a", "b", "c"]):
        _npz(tmp_path / "renamed.npz", x, y, names)
        assert cli.main(["evaluate", model, "--dataset", str(tmp_path / "renamed.npz")]) == 2
        listed = f"has ({', '.join(names)})"
        one_line_error(capsys, "trained on the classes (low, mid, high)", listed)
    _npz(tmp_path / "same-names.npz", x, y, ["low", "mid", "high"])
    assert cli.main(["evaluate", model, "--dataset", str(tmp_path / "same-names.npz")]) == 0


def _png(path, value=100, size=32):
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_image_size_of_a_folder_is_said_and_can_be_chosen(tmp_path, capsys):
    """A folder of 32x32 images with one 32x64 image: refused in one line naming the file
    and the --image-size flag; with --image-size every image is resized, and the first
    lines say which size the run uses."""
    from PIL import Image

    folder = tmp_path / "images"
    for c, cls in enumerate(("dark", "light")):
        (folder / cls).mkdir(parents=True)
        for i in range(12):
            _png(folder / cls / f"{i:02d}.png", 40 + 150 * c + i, size=32)
    wide = folder / "light" / "99.png"
    Image.fromarray(np.full((32, 64, 3), 200, np.uint8)).save(wide)
    argv = train_argv(folder, tmp_path / "run", epochs=1)
    assert cli.main(argv) == 2
    one_line_error(capsys, "another aspect ratio", f"{wide} (32x64)", "--image-size HxW")
    assert cli.main([*argv, "--image-size", "32x32"]) == 0
    printed = capsys.readouterr().out
    assert f"data: {folder}: " in printed and " training images of 32x32x3, 2 classes" in printed
    capsys.readouterr()
    bad = [*argv, "--image-size", "16by16"]
    with pytest.raises(SystemExit):
        cli.main(bad)
    assert (
        "--image-size: must be HEIGHTxWIDTH, e.g. 32x32; received '16by16'"
        in capsys.readouterr().err
    )


def test_bad_image_folder_from_the_cli_names_the_cli_flag(tmp_path, capsys):
    root = tmp_path / "images"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            _png(root / name / f"{i}.png", 40 + 100 * (name == "dog"))
    (root / "cat" / "notes.txt").write_text("not an image")
    os.symlink(root / "gone.png", root / "dog" / "link.png")  # a broken symlink
    assert cli.main(train_argv(root, tmp_path / "run")) == 2
    err = one_line_error(capsys, "2 of 10 files cannot be decoded", "--skip-bad-files")
    assert "notes.txt" in err and "link.png" in err and "on_bad_file" not in err
    with pytest.warns(UserWarning, match="skipped 2 of 10"):
        assert cli.main(train_argv(root, tmp_path / "run", "--skip-bad-files", epochs=1)) == 0


# --------------------------------------------------------------------------- 5. the CLI
def test_unwritable_out_is_refused_before_the_data_is_read(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    missing = str(tmp_path / "no" / "such.npz")  # read first, it would fail differently
    assert cli.main(train_argv(missing, blocker / "run")) == 2
    one_line_error(capsys, f"cannot create run folder {blocker / 'run'}: {blocker} is a file")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert cli.main(train_argv(missing, tmp_path / "ro")) == 2
    one_line_error(capsys, "is not writable")


def test_export_onto_a_file_is_refused_before_training(data, tmp_path, capsys):
    target = tmp_path / "model.bin"
    target.write_text("x")
    assert cli.main(train_argv(data, tmp_path / "run", "--export", str(target))) == 2
    one_line_error(capsys, "is an existing file")
    assert not (tmp_path / "run").exists() and target.read_text() == "x"


def test_export_with_another_signature_is_refused_before_training(finished_run, tmp_path, capsys):
    """A 4-class run exported into a model folder whose latest version has 3 classes is
    refused once the data is read, before any epoch (no run folder is left); the CLI offers
    --allow-new-signature, which publishes it."""
    base = tmp_path / "saved" / "m"
    assert cli.main(["export", str(finished_run / "model.keras"), str(base)]) == 0
    four = tmp_path / "four.npz"
    write_class_npz(four, 80)
    capsys.readouterr()
    out = tmp_path / "run"
    assert cli.main(train_argv(four, out, "--export", str(base), epochs=1)) == 2
    one_line_error(capsys, "would change the serving signature", "--allow-new-signature")
    assert not out.exists() and sorted(p.name for p in base.iterdir()) == ["1"]
    argv = train_argv(four, out, "--export", str(base), "--allow-new-signature", epochs=1)
    assert cli.main(argv) == 0
    assert (base / "2" / "saved_model.pb").exists()


def test_model_files_that_are_not_models(finished_run, data, tmp_path, capsys):
    truncated = tmp_path / "model.keras"
    content = (finished_run / "model.keras").read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    for argv in (
        ["evaluate", str(truncated), "--dataset", str(data)],
        ["predict", str(truncated), str(tmp_path / "x.png")],
    ):
        assert cli.main(argv) == 2
        one_line_error(capsys, f"{truncated} is not a valid .keras file")
    assert cli.main(["predict", str(tmp_path), "x.png"]) == 2  # a folder without a SavedModel
    one_line_error(capsys, f"no SavedModel at {tmp_path}")


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    from kerascnn.training import run

    def broken(*args, **kwargs):
        keras.layers.Dense(units=-1)  # a ValueError inside Keras: not a kerascnn check

    monkeypatch.setattr(run, "train", broken)
    with pytest.raises(ValueError):
        cli.main(["train", "lenet5", "--out", "unused"])
    with pytest.raises(ValueError, match="Unknown model name='resnet57'"):
        cli.main(["--debug", "summary", "resnet57"])
