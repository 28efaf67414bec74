"""The regularization experiments of issue 8 on tiny synthetic data: files, columns and
values that would be wrong if the technique were not applied."""

import math

import numpy as np
import pytest
from _csv_rows import read_csv

from kerascnn.experiments import EXPERIMENTS
from kerascnn.experiments import regularization as reg

TINY = dict(data="synthetic:120", batch_size=16, filters=4, convs_per_block=1, seed=0)


def run(name, tmp_path, **options):
    paths = EXPERIMENTS[name].run(**{**TINY, "out": str(tmp_path / name), **options})
    for label, path in paths.items():
        assert path.endswith((".csv", ".png", ".json")), label
        with open(path, "rb") as f:
            head = f.read(8)
        assert head, f"{label} is empty"
        if path.endswith(".png"):
            assert head == b"\x89PNG\r\n\x1a\n"
    return paths


def test_all_registered():
    for name in (
        "augmentation",
        "dropout",
        "weight-decay",
        "l1",
        "normalization",
        "mc-dropout",
        "early-stopping",
        "memorization",
    ):
        assert name in EXPERIMENTS


def test_augmentation(tmp_path):
    settings = ["+mixup", reg.PIPELINE_SETTING]
    paths = run("augmentation", tmp_path, epochs=1, depth=8, settings=",".join(settings))
    summary = read_csv(paths["summary"])
    assert [r["setting"] for r in summary] == settings
    assert [r["placement"] for r in summary] == ["model", "pipeline"]
    for r in summary:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and 0.0 <= r["train_accuracy"] <= 1.0
        assert r["gap"] == pytest.approx(r["train_accuracy"] - r["val_accuracy"], abs=1e-6)
        assert r["seconds_per_epoch"] > 0
    epochs = read_csv(paths["epochs"])
    assert {"setting", "epoch", "loss", "val_loss", "val_accuracy", "train_seconds"} <= set(
        epochs[0]
    )
    assert len(epochs) == len(settings)


def test_unknown_setting_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="settings"):
        run("dropout", tmp_path, epochs=1, settings="none,dropblock")


def test_dropout_with_late_schedule(tmp_path):
    paths = run("dropout", tmp_path, epochs=2, settings="late,dropconnect")
    summary = read_csv(paths["summary"])
    assert [r["setting"] for r in summary] == ["dropconnect", "late"]
    assert summary[1]["rate"] == 0.3
    epochs = read_csv(paths["epochs"])
    assert len(epochs) == 2 * 2
    assert all(math.isfinite(r["loss"]) for r in epochs)


def test_weight_decay_shrinks_the_weights(tmp_path):
    # a strong decay (lr * d = 0.05 per step for Adam) must shrink the kernels visibly
    paths = run(
        "weight-decay",
        tmp_path,
        epochs=2,
        adam_decay=50.0,
        sgd_decay=1.0,
        settings="adam,adamw,sgd decoupled",
    )
    rows = {r["setting"]: r for r in read_csv(paths["summary"])}
    initial = {r["initial_weight_norm"] for r in rows.values()}
    assert len(initial) == 1  # same seed, same initial network
    assert rows["adamw"]["final_weight_norm"] < 0.7 * rows["adam"]["final_weight_norm"]
    assert rows["sgd decoupled"]["final_weight_norm"] < 0.9 * rows["adam"]["initial_weight_norm"]
    epochs = read_csv(paths["epochs"])
    assert [r["epoch"] for r in epochs if r["setting"] == "adamw"] == [0, 1, 2]


def test_l1_hadamard_zeroes_weights(tmp_path):
    paths = run("l1", tmp_path, epochs=2, l1=10.0, lr=0.05, threshold=1e-3)
    rows = {r["setting"]: r for r in read_csv(paths["summary"])}
    assert set(rows) == {"plain", "l1", "hadamard"}
    assert rows["plain"]["weights"] == rows["hadamard"]["weights"]  # effective kernels counted
    # a strong penalty drives the Hadamard factors (so the effective weights) towards zero
    assert (
        rows["hadamard"]["fraction_below_threshold"]
        > 10 * rows["plain"]["fraction_below_threshold"]
    )
    assert rows["hadamard"]["mean_abs_weight"] < 0.1 * rows["plain"]["mean_abs_weight"]
    hist = read_csv(paths["histogram"])
    for setting, row in rows.items():
        assert sum(h["count"] for h in hist if h["setting"] == setting) == row["weights"]


def test_normalization_two_batch_sizes(tmp_path):
    paths = run("normalization", tmp_path, epochs=1, norms="group", small_batch=4, groups=2)
    summary = read_csv(paths["summary"])
    assert [(r["norm"], r["batch_size"]) for r in summary] == [("group", 16), ("group", 4)]
    epochs = read_csv(paths["epochs"])
    assert {"norm", "batch_size", "epoch", "loss", "val_accuracy"} <= set(epochs[0])


def test_mc_dropout_entropy_is_higher_out_of_distribution(tmp_path):
    paths = run(
        "mc-dropout", tmp_path, data="synthetic:240", epochs=8, rate=0.2, samples=20, filters=8
    )
    ent = {r["input"]: r for r in read_csv(paths["entropy"])}
    assert set(ent) == {"train", "validation", "noise-corrupted", "blurred", "random noise"}
    # the toy problem is learnt; random-noise images get a more uncertain prediction
    rand, train = ent["random noise"], ent["train"]
    assert rand["mean_entropy"] > train["mean_entropy"]
    assert rand["mean_mutual_information"] > train["mean_mutual_information"]
    acc = read_csv(paths["accuracy"])
    assert [r["samples"] for r in acc] == [0, 2, 5, 10, 20]
    assert acc[-1]["accuracy"] > 0.5
    assert all(0.0 <= r["ece"] <= 1.0 for r in acc)
    cal = read_csv(paths["calibration"])
    val_images = ent["validation"]["images"]
    for method in {r["method"] for r in cal}:
        assert sum(r["count"] for r in cal if r["method"] == method) == val_images


def test_expected_calibration_error():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])  # 90 % bin: accuracy 0.5; 60 % bin: accuracy 1.0
    ece, rows = reg.expected_calibration_error(probs, labels, bins=10)
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert [r["count"] for r in rows] == [2, 2]


def test_early_stopping_restores_the_best_epoch(tmp_path):
    paths = run("early-stopping", tmp_path, epochs=6, patience=1)
    (summary,) = read_csv(paths["summary"])
    epochs = read_csv(paths["epochs"])
    val_losses = [r["val_loss"] for r in epochs]
    assert summary["best_epoch"] == int(np.argmin(val_losses)) + 1
    assert summary["restored_val_loss"] == pytest.approx(min(val_losses), rel=1e-4)
    if summary["stopped_early"]:
        assert summary["stop_epoch"] == summary["best_epoch"] + 1  # patience 1
        assert len(epochs) == summary["stop_epoch"]


def test_memorization_conditions(tmp_path):
    paths = run("memorization", tmp_path, epochs=1, hidden=16)
    summary = read_csv(paths["summary"])
    assert [r["condition"] for r in summary] == list(reg.MEM_CONDITIONS)
    assert all(r["chance"] == 0.25 for r in summary)
    assert len({r["train_images"] for r in summary}) == 1
    epochs = read_csv(paths["epochs"])
    assert len(epochs) == 3


def test_cli_dest_names_match_run(tmp_path, capsys):
    from kerascnn.cli import main

    out = tmp_path / "es"
    argv = ["experiment", "early-stopping", "--data", "synthetic:60", "--epochs", "1"]
    argv += ["--filters", "4", "--convs-per-block", "1", "--patience", "2", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "early_stopping.png").exists() and (out / "summary.csv").exists()


def test_an_unknown_setting_is_the_users_error():
    from kerascnn.errors import UserInputError

    with pytest.raises(
        UserInputError,
        match=r"settings must be a comma-separated list of 'none', 'flip'; received "
        r"settings='none,cutout'",
    ):
        reg._select(("none", "flip"), "none,cutout")
    assert reg._select(("none", "flip"), "flip") == ["flip"]
