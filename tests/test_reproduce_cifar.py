"""benchmarks/reproduce_cifar.py --quick: both sides train on real CIFAR-10 images on the CPU,
on JAX without TensorFlow, and the results JSON holds what the GPU run will be read for."""

import importlib.util
import io
import json
import pathlib
import sys

import numpy as np
import pytest
from test_backends import run_without_tensorflow

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_cifar.py"
_spec = importlib.util.spec_from_file_location("reproduce_cifar", SCRIPT)
reproduce_cifar = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reproduce_cifar  # so its decode function pickles for the pool
_spec.loader.exec_module(reproduce_cifar)  # numpy only at import: no Keras, no TensorFlow
PER_CLASS = 80  # 800 images: the quick split takes 256 for validation and 512 for training


@pytest.fixture
def small_npz(cifar_npz, tmp_path):
    """The first ``PER_CLASS`` images of each class of the shared training split."""
    with np.load(cifar_npz) as d:
        x, y = d["x"], d["y"]
    keep = np.concatenate([np.flatnonzero(y == c)[:PER_CLASS] for c in range(10)])
    path = tmp_path / "small.npz"
    np.savez(path, x=x[keep], y=y[keep])
    return path


def run_quick(data, tmp_path, *extra, pattern="*-reproduce-cifar-cpu-quick.json"):
    """Run ``reproduce_cifar.py --quick`` on JAX without TensorFlow; its JSON and stdout."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "results"
    args = [
        sys.executable, str(SCRIPT), "--quick", "--keras-backend", "jax", "--data", str(data),
        "--out", str(out), "--state-dir", str(tmp_path / "state"), *extra,
    ]  # fmt: skip
    done = run_without_tensorflow(args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob(pattern)
    return json.loads(path.read_text()), done.stdout


def test_quick_run_writes_both_sides(small_npz, tmp_path):
    result, stdout = run_quick(small_npz, tmp_path)
    assert "| depth | kerascnn" in stdout

    assert "tensorflow" not in result["versions"] and result["machine"]["keras_backend"] == "jax"
    split = result["split"]
    assert (split["train"], split["validation"]) == (512, 256)
    assert sum(split["train_per_class"]) == 512 and sum(split["validation_per_class"]) == 256
    assert max(split["validation_per_class"]) - min(split["validation_per_class"]) <= 1
    assert len(split["validation_indices_sha256"]) == 64
    assert split["source"]["images"] == 10 * PER_CLASS

    entry = result["depths"]["20"]
    for side in ("kerascnn", "torch"):
        res = entry[side]
        assert "partial" not in res, side
        assert [r["epoch"] for r in res["epochs"]] == [1, 2], side
        for row in res["epochs"]:
            assert 0.0 <= row["val_error"] <= 100.0 and np.isfinite(row["train_loss"]), row
            assert row["wall_s"] > 0 and row["images_per_s"] > 0, row
        assert res["final_error"] == res["epochs"][-1]["val_error"]
        assert res["best_error"] == min(r["val_error"] for r in res["epochs"])
    # the same architecture on both sides: He et al.'s ResNet-20 has 0.27M parameters
    assert entry["kerascnn"]["parameters"] == entry["torch"]["parameters"] == 269_722
    # both sides change the learning rate at the recipe's own steps (8 steps per epoch here)
    k_setup, t_setup = entry["kerascnn"]["setup"], entry["torch"]["setup"]
    assert k_setup["lr_boundaries_steps"] == t_setup["lr_boundaries_steps"] == [8, 12]
    assert k_setup["normalization"] == t_setup["normalization"]

    assert result["fit_vs_step"] is None
    assert result["he_et_al_2016_table6_test_error"]["20"] == 8.75
    assert "| 20 |" in result["markdown_table"]


def test_a_cut_run_resumes_on_both_sides_to_the_uninterrupted_result(small_npz, tmp_path):
    """Stopped after each side's first epoch and rerun, the run ends where an uninterrupted
    run with the same seeds ends: the same per-epoch losses and errors on both sides."""
    options = ("--epochs", "2", "--pad-fill", "zero", "--no-decay-vectors")  # lr steps in 2
    whole, _ = run_quick(small_npz, tmp_path / "whole", *options, "--run", "r", pattern="r.json")
    cut, stdout = run_quick(
        small_npz, tmp_path / "cut", *options, "--run", "r", "--stop-after-epochs", "1",
        pattern="r.json",
    )  # fmt: skip
    assert "rerun the same command to resume" in stdout
    for side in ("kerascnn", "torch"):
        assert cut["depths"]["20"][side]["partial"] is True
        assert [r["epoch"] for r in cut["depths"]["20"][side]["epochs"]] == [1]
    resumed, stdout = run_quick(
        small_npz, tmp_path / "cut", *options, "--run", "r", pattern="r.json"
    )
    assert "resuming after epoch 1" in stdout
    assert resumed["invocations"] and resumed["options"]["pad_fill"] == "zero"
    for side in ("kerascnn", "torch"):
        a, b = whole["depths"]["20"][side], resumed["depths"]["20"][side]
        assert "partial" not in b and [r["epoch"] for r in b["epochs"]] == [1, 2]
        for ra, rb in zip(a["epochs"], b["epochs"], strict=True):
            assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=2e-4), side
            assert rb["val_error"] == pytest.approx(ra["val_error"], abs=0.4), side  # 1 of 256
    setup = resumed["depths"]["20"]["torch"]["setup"]
    assert "rank > 1" in setup["optimizer"] and "(zero)" in setup["augment"]
    assert resumed["depths"]["20"]["kerascnn"]["setup"]["augment"].startswith(
        "spec 'padcrop:4:zero,flip'"
    )
    # a finished run is not trained again
    again, stdout = run_quick(small_npz, tmp_path / "cut", *options, "--run", "r", pattern="r.json")
    assert "finished earlier" in stdout
    assert again["depths"]["20"] == resumed["depths"]["20"]


@pytest.mark.slow
def test_quick_fit_vs_step(small_npz, tmp_path):
    """``--fit-vs-step``: fit epochs and stateless-step rounds of the same model, and their ratio."""
    result, _ = run_quick(small_npz, tmp_path, "--only", "none", "--fit-vs-step", "8")
    assert result["depths"] == {}
    fvs = result["fit_vs_step"]
    assert fvs["depth"] == 8 and fvs["parameters"] == 75_290
    assert [r["epoch"] for r in fvs["fit"]["epochs"]] == [1, 2]
    fit, step = fvs["fit"]["median_images_per_s"], fvs["step"]["median_images_per_s"]
    assert fit > 0 and step > 0 and fvs["fit_over_step"] == round(fit / step, 3)


def test_jpeg_npz_decodes_to_the_pixels(cifar_npz, tmp_path):
    """The train_jpeg.npz layout (data, offsets, y) decodes to exactly what Pillow gives for
    each JPEG, in one process and in a pool of two."""
    from PIL import Image

    with np.load(cifar_npz) as d:
        x, y = d["x"][::1000], d["y"][::1000]
    blobs = []
    for image in x:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=75)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    path = tmp_path / "small_jpeg.npz"
    np.savez(path, data=np.concatenate(blobs), offsets=offsets, y=y)
    expected = np.stack(
        [np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")) for b in blobs]
    )
    pixels, labels, info = reproduce_cifar.load_images(path, workers=1)
    assert info["format"] == "jpeg" and info["images"] == len(y)
    np.testing.assert_array_equal(pixels, expected)
    np.testing.assert_array_equal(labels, y)
    pooled, _, _ = reproduce_cifar.load_images(path, workers=2, min_chunk=8)
    np.testing.assert_array_equal(pooled, expected)
