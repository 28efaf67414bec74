"""kerascnn without TensorFlow: import, the CLI's train / predict, the features that need
TensorFlow failing with one line, and the JAX -> TensorFlow hand-off of a trained model.

The subprocesses here run with TensorFlow made impossible to import
(tests/no_tensorflow/sitecustomize.py on PYTHONPATH), whatever pass of the suite runs them.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import tf_only, write_brightness_npz

from kerascnn import cli

BLOCKER = pathlib.Path(__file__).resolve().parent / "no_tensorflow"
KERASCNN = [sys.executable, "-m", "kerascnn.cli"]


def run_without_tensorflow(args, backend="jax", cwd=None, timeout=600):
    """Run ``args`` in a subprocess on ``backend`` where ``import tensorflow`` fails."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BLOCKER), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    return write_brightness_npz(tmp_path_factory.mktemp("data") / "tiny.npz", 120)


NO_TF_SCRIPT = r"""
import sys, numpy as np
import kerascnn
from kerascnn import pipelines
from kerascnn.backends import MissingDependencyError
assert "tensorflow" not in sys.modules
report = {}
def one_line(fn):
    try:
        fn()
    except MissingDependencyError as e:
        return str(e)
    return None
model = kerascnn.zoo.create("lenet5")
sample = pipelines.load("cifar10-sample", "validation")
report["export"] = one_line(lambda: kerascnn.export.serving_export(model, "sm"))
report["tfds"] = one_line(lambda: pipelines.load("cifar10"))
report["placement"] = one_line(
    lambda: pipelines.build(sample, augment="flip"))
report["loader"] = type(pipelines.build(sample, normalize="none").dataset).__name__
report["tf_modules"] = sorted(m for m in sys.modules if m.startswith("tensorflow"))
import json; print(json.dumps(report))
"""


def test_import_and_tensorflow_features_fail_with_one_line(tmp_path):
    done = run_without_tensorflow([sys.executable, "-c", NO_TF_SCRIPT], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tf_modules"] == [] and report["loader"] == "BatchLoader"
    for feature in ("export", "tfds", "placement"):
        message = report[feature]
        assert message is not None and "\n" not in message, feature
        assert "pip install tensorflow" in message, message
    assert "SavedModel" in report["export"]
    assert "augmentation in the input pipeline" in report["placement"]
    assert "'cifar10'" in report["tfds"]

    cli_run = run_without_tensorflow([*KERASCNN, "train", "resnet20", "--dataset", "cifar10"])
    assert cli_run.returncode == 2
    assert cli_run.stderr.count("\n") == 1 and "pip install tensorflow" in cli_run.stderr


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_cli_train_then_predict_without_tensorflow(backend, tiny_npz, tmp_path):
    """`kerascnn --backend B train` (JAX: ResNet-20 on the bundled sample, one epoch; PyTorch,
    slower on CPU: on 120 tiny images), then `evaluate` (the validation accuracy `train`
    reported) and `predict` from the run's model.keras."""
    dataset = ["--dataset", str(tiny_npz)] if backend == "torch" else []
    out = tmp_path / "run"
    done = run_without_tensorflow(
        [*KERASCNN, "--backend", backend, "train", "resnet20", *dataset, "--epochs", "1",
         "--out", str(out), "--quiet"],
        backend="tensorflow",  # --backend wins over the environment
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation accuracy:" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 1 and 0.0 <= result["val_accuracy"] <= 1.0
    class_names = (out / "class_names.txt").read_text().split()
    assert class_names == (["low", "mid", "high"] if backend == "torch" else
                           ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"])  # fmt: skip

    done = run_without_tensorflow(
        [*KERASCNN, "--backend", backend, "evaluate", str(out / "model.keras"), *dataset]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = float(done.stdout.strip().splitlines()[-1].rsplit("accuracy ", 1)[1])
    assert accuracy == pytest.approx(result["val_accuracy"], abs=1e-4)  # the same images

    from PIL import Image

    image = tmp_path / "image.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(image)
    done = run_without_tensorflow(
        [*KERASCNN, "--backend", backend, "predict", str(out / "model.keras"), str(image),
         "--top-k", "2"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{image}: ")
    ranked = line.split(": ", 1)[1].split(", ")
    assert len(ranked) == 2 and all(r.rsplit(" ", 1)[0] in class_names for r in ranked)
    probabilities = [float(r.rsplit(" ", 1)[1]) for r in ranked]
    assert 1 >= probabilities[0] >= probabilities[1] >= 0 and probabilities[0] > 0.3


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_export_on_another_backend_is_refused_in_one_line(backend, tmp_path):
    """`kerascnn --backend jax export ...` printed a 78-line traceback (issue 25)."""
    done = run_without_tensorflow(
        [*KERASCNN, "--backend", backend, "export", str(tmp_path / "m.keras"), str(tmp_path / "sm")]
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("kerascnn")]
    assert lines == [
        f"kerascnn export: error: export writes a SavedModel, which needs the TensorFlow backend "
        f"(running: {backend}); run `kerascnn --backend tensorflow export {tmp_path / 'm.keras'} "
        f"{tmp_path / 'sm'}`"
    ], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "sm").exists()
    # train --export is refused the same way, before any training
    done = run_without_tensorflow(
        [*KERASCNN, "--backend", backend, "train", "resnet20", "--export", str(tmp_path / "sm")]
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        "kerascnn train: error: --export writes a SavedModel, which needs the TensorFlow "
        in done.stderr
    )


def test_backend_flag_refuses_a_different_loaded_backend(capsys):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    assert cli.main(["--backend", other, "list"]) == 2
    assert f"--backend {other}: Keras is already running on" in capsys.readouterr().err
    from kerascnn.backends import select_backend
    from kerascnn.errors import UserInputError

    with pytest.raises(UserInputError, match=f"--backend {other}: Keras is already running on"):
        select_backend(["--backend", other])


HANDOFF_SCRIPT = r"""
import sys, numpy as np, keras
import kerascnn  # registers kerascnn's layers for loading
model = keras.models.load_model(sys.argv[1], safe_mode=True)
x = np.load(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
"""


@tf_only
def test_model_trained_on_jax_exports_a_savedmodel_from_tensorflow(tiny_npz, tmp_path):
    """Train on JAX without TensorFlow, then `kerascnn export` the .keras file in this
    TensorFlow process: the SavedModel's logits equal the JAX predictions within 1e-4."""
    import tensorflow as tf

    out = tmp_path / "run"
    done = run_without_tensorflow(
        [*KERASCNN, "train", "resnet20", "--dataset", str(tiny_npz), "--epochs", "1",
         "--batch-size", "32", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    images = np.load(tiny_npz)["x"][:16]
    np.save(tmp_path / "x.npy", images)
    done = run_without_tensorflow(
        [sys.executable, "-c", HANDOFF_SCRIPT, str(out / "model.keras"), str(tmp_path / "x.npy"),
         str(tmp_path / "jax_logits.npy")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jax_logits = np.load(tmp_path / "jax_logits.npy")

    assert cli.main(["export", str(out / "model.keras"), str(tmp_path / "sm")]) == 0
    serving = tf.saved_model.load(str(tmp_path / "sm" / "1")).signatures["serving_default"]
    exported = serving(images=tf.constant(images))["logits"].numpy()
    assert np.abs(jax_logits).max() > 0.1  # a real comparison, not of zeros
    np.testing.assert_allclose(exported, jax_logits, atol=1e-4, rtol=1e-4)
