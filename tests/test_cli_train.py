"""The train / evaluate / export / predict commands, and their one-line errors."""

import os
import pathlib
import re

import numpy as np
import pytest
from conftest import tf_only, write_brightness_npz

from kerascnn import cli

pytestmark = tf_only


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    return write_brightness_npz(tmp_path_factory.mktemp("data") / "tiny.npz", 300)


@pytest.fixture(scope="module")
def trained_run(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    export_dir = out / "saved_models" / "lenet5"
    code = cli.main([
        "train", "lenet5", "--dataset", str(tiny_npz), "--recipe", "vgg-sweep", "--epochs", "2",
        "--batch-size", "32", "--augment", "flip", "--label-smoothing", "0.1", "--out", str(out / "r"),
        "--export", str(export_dir), "--quiet",
    ])  # fmt: skip
    assert code == 0
    return out, export_dir


def test_train_prints_accuracy_and_exports(trained_run, capsys):
    out, export_dir = trained_run
    assert (out / "r" / "model.keras").exists() and (export_dir / "1" / "saved_model.pb").exists()
    assert (export_dir / "1" / "assets.extra" / "class_names.txt").read_text().split() == [
        "low",
        "mid",
        "high",
    ]


def test_label_smoothing_reaches_the_task(trained_run):
    import keras

    out, _ = trained_run
    task = keras.models.load_model(out / "r" / "model.keras")
    assert task.label_smoothing == pytest.approx(0.1)


def test_evaluate_and_predict(trained_run, tiny_npz, tmp_path, capsys):
    import tensorflow as tf

    out, export_dir = trained_run
    assert cli.main(["evaluate", str(out / "r" / "model.keras"), "--dataset", str(tiny_npz)]) == 0
    assert "accuracy" in capsys.readouterr().out
    image = tmp_path / "img.png"
    tf.io.write_file(str(image), tf.io.encode_png(np.full((32, 32, 3), 200, np.uint8)))
    assert cli.main(["predict", str(export_dir / "1"), str(image), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and len(line.split(",")) == 2
    assert line.split(": ")[1].split()[0] in ("low", "mid", "high")

    small = tmp_path / "small.png"
    tf.io.write_file(str(small), tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
    assert cli.main(["predict", str(export_dir / "1"), str(small)]) == 2
    err = capsys.readouterr().err
    assert "small.png is 8x8x3; the model takes 32x32x3 images" in err and "Traceback" not in err


def test_export_refuses_an_existing_version(trained_run, capsys):
    out, export_dir = trained_run
    pb = export_dir / "1" / "saved_model.pb"
    before = (pb.stat().st_mtime_ns, pb.read_bytes())
    assert (
        cli.main(["export", str(out / "r" / "model.keras"), str(export_dir), "--version", "1"]) == 2
    )
    err = capsys.readouterr().err
    assert "already exists; versions are never overwritten" in err and "Traceback" not in err
    assert (pb.stat().st_mtime_ns, pb.read_bytes()) == before
    assert cli.main(["export", str(out / "r" / "model.keras"), str(export_dir)]) == 0
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "resnet57"], "Unknown model name='resnet57'. Did you mean: resnet5"),
        (["train", "lenet5", "--dataset", "cifar11"], "cifar10-sample"),
        (["train", "lenet5", "--dataset", "no/such/file.npz"], "no such file"),
        (["train", "lenet5", "--recipe", "resnet-cifr"], "Did you mean: resnet-cifar"),
        (
            ["train", "lenet5", "--recipe", "paper"],
            "recipe='paper': the row of 'lenet5' names no recipe",
        ),
        (
            ["train", "lenet5", "--label-smoothing", "1.5"],
            "label_smoothing must be a number in [0.0, 1.0); received label_smoothing=1.5",
        ),
        (["evaluate", "missing.keras"], "model file not found: missing.keras"),
        (["export", "missing.keras", "saved_models/x"], "model file not found: missing.keras"),
        (["predict", "no_saved_model_here", "x.png"], "no model at no_saved_model_here"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


def test_nan_loss_stops_with_the_epoch(tiny_npz, tmp_path, capsys):
    argv = ["train", "lenet5", "--dataset", str(tiny_npz), "--recipe", "resnet-cifar", "--lr", "1e30",
            "--epochs", "3", "--batch-size", "32", "--augment", "", "--out", str(tmp_path / "nan"), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "at epoch 1, batch" in err and "Traceback" not in err


def test_help_for_every_command(capsys):
    for command in ("list", "summary", "train", "evaluate", "export", "predict"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: kerascnn " + command in capsys.readouterr().out


def test_run_folder_is_not_left_half_written(trained_run):
    out, _ = trained_run
    names = {p.name for p in pathlib.Path(out / "r").iterdir()}
    assert not [n for n in names if ".tmp" in n] and "backup" not in names


def test_every_printed_query_hint_runs_as_printed(trained_run, tiny_npz, tmp_path, capsys):
    """The commands `export` prints (saved_model_cli through a .npy file, kerascnn predict)
    run as printed, in a shell, and agree with the model."""
    import shutil
    import subprocess
    import sys

    import keras

    out, _ = trained_run
    capsys.readouterr()
    assert cli.main(["export", str(out / "r" / "model.keras"), str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(printed) if "query it:" in line)
    hints = [
        line.split(":", 1)[1] if i < 1 or "or:" in line else line
        for i, line in enumerate(printed[start:])
    ]
    commands = [h.strip() for h in hints]
    assert commands[0].startswith("python -c ") and commands[1].startswith("saved_model_cli run")
    assert commands[2].startswith("kerascnn predict ") and commands[2].endswith("YOUR_IMAGE.png")
    with np.load(tiny_npz) as f:
        image = f["x"][0]
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "YOUR_IMAGE.png")
    bin_dir = os.path.dirname(sys.executable)
    assert shutil.which("kerascnn", path=bin_dir), "the kerascnn console script is not installed"
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    ran = [
        subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
        for command in commands
    ]  # fmt: skip
    for command, run in zip(commands, ran, strict=True):
        assert run.returncode == 0, f"{command}\n{run.stderr[-2000:]}"
    zeros = np.zeros((1, *image.shape), np.float32)
    logits = keras.models.load_model(out / "r" / "model.keras").predict(zeros, verbose=0)
    assert "Result for output key logits" in ran[1].stdout
    shown = ran[1].stdout.split("Result for output key logits:")[1].split("Result")[0]
    np.testing.assert_allclose(
        np.array(shown.replace("[", " ").replace("]", " ").split(), float), logits[0], atol=1e-4
    )
    assert ran[2].stdout.startswith("YOUR_IMAGE.png: ") and "low" in ran[2].stdout


def test_training_output_through_a_pipe_is_one_plain_line_per_epoch(tiny_npz, tmp_path):
    """Without a terminal (a pipe, nohup, a CI log) `train` prints plain lines: no carriage
    returns, escape codes or backspaces, one line per epoch, and first a line saying the
    training step is being compiled."""
    import subprocess
    import sys

    argv = [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(tiny_npz),
        "--recipe", "vgg-sweep", "--epochs", "3", "--batch-size", "32", "--out",
        str(tmp_path / "run"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the default
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    # TensorFlow's native start-up lines are held back (issue: they read like failures)
    assert not re.search(r"^([IWE]\d{4} |WARNING: All log messages)", run.stderr, re.M), run.stderr
    out = run.stdout
    assert not any(c in out for c in "\r\x1b\x08"), repr(out[:500])
    lines = out.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert [lines[i].split()[1] for i in epochs] == ["1/3", "2/3", "3/3"]
    assert all(" s - accuracy: " in lines[i] and "val_loss: " in lines[i] for i in epochs)
    notice = [i for i, line in enumerate(lines) if "the first batch takes longer" in line]
    assert len(notice) == 1 and notice[0] < epochs[0]


def test_native_startup_lines_are_held_but_real_errors_are_not(capfd):
    from kerascnn.backends import native_startup_lines_held

    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796356195.203402   16864 port.cc:153] oneDNN custom operations are on.\n"
        "E0000 00:00:1796356203.563174   16864 cuda_platform.cc:52] failed call to cuInit: x\n"
    )
    real = "E0000 00:00:1796356203.563174   16864 op_kernel.cc:12] out of memory\nValueError: x\n"
    with native_startup_lines_held():
        os.write(2, (noise + real).encode())
    assert capfd.readouterr().err == real
    with pytest.raises(RuntimeError), native_startup_lines_held():
        os.write(2, noise.encode())
        raise RuntimeError("the import failed")
    assert capfd.readouterr().err == noise  # a failure replays everything


def test_debug_shows_the_native_lines():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "kerascnn.cli"]
    quiet = subprocess.run([*command, "summary", "lenet5"], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    debug = subprocess.run([*command, "--debug", "summary", "lenet5"], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert quiet.returncode == debug.returncode == 0
    assert quiet.stderr == "" and quiet.stdout == debug.stdout
    assert re.search(r"^[IW]\d{4} ", debug.stderr, re.M), debug.stderr  # TensorFlow's own


def test_train_leaves_a_plot_of_its_curves(trained_run, capsys):
    """`kerascnn train` draws log.csv into curves.png: the figure's lines are the log's
    columns, epoch by epoch."""
    from PIL import Image

    from kerascnn.training.curves import plot_curves, read_log

    out, _ = trained_run
    path = out / "r" / "curves.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 400
    rows = read_log(out / "r")
    fig = plot_curves(rows)
    plotted = {
        (ax.get_ylabel(), line.get_label()): list(line.get_ydata())
        for ax in fig.axes
        for line in ax.lines
    }
    assert plotted == {
        ("loss", "training"): [r["loss"] for r in rows],
        ("loss", "validation"): [r["val_loss"] for r in rows],
        ("accuracy", "training"): [r["accuracy"] for r in rows],
        ("accuracy", "validation"): [r["val_accuracy"] for r in rows],
    }
    assert [list(line.get_xdata()) for line in fig.axes[0].lines] == [[1, 2], [1, 2]]


def test_train_help_states_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "``" not in text and "cifar10-sample and the 'quick' recipe" in flat
    for option, default in [
        ("--epochs EPOCHS", "the recipe's"), ("--batch-size BATCH_SIZE", "the recipe's"),
        ("--lr LR", "the recipe's"), ("--seed SEED", "0"),
        ("--validation-fraction VALIDATION_FRACTION", "0.1"),
        ("--dataset DATASET", "cifar10-sample"), ("--recipe RECIPE", "quick"),
    ]:  # fmt: skip
        described = flat.split(f" {option} ", 1)[1].split(" --", 1)[0]
        assert f"default: {default})" in described, (option, described)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "``" not in capsys.readouterr().out
