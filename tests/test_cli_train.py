"""The train / evaluate / export / predict commands, and their one-line errors."""

import os
import pathlib

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
        "--batch-size", "32", "--augment", "flip", "--out", str(out / "r"), "--export", str(export_dir), "--quiet",
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
