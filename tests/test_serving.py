"""End to end: train with early stopping, export for serving, and query the SavedModel in
a separate process that cannot import kerascnn, and with `saved_model_cli`."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import RecordWeights, tf_only

import kerascnn
from kerascnn import export, pipelines
from kerascnn.tasks import ImageClassifier, input_layers
from kerascnn.training import fit, get_recipe

pytestmark = tf_only

CLEAN_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["kerascnn"] = None  # any import of kerascnn now fails
    try:
        import kerascnn  # noqa: F401
        raise SystemExit("kerascnn was importable")
    except ImportError:
        pass
    import numpy as np
    import tensorflow as tf
    path, x_path, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(path)
    serving = loaded.signatures["serving_default"]
    x = tf.constant(np.load(x_path))
    first, second = serving(images=x), serving(images=x)
    assert np.array_equal(first["logits"].numpy(), second["logits"].numpy()), "not deterministic"
    np.savez(out_path, **{k: v.numpy().astype(str) if v.dtype == tf.string else v.numpy() for k, v in first.items()})
    """
)


def _npz(path, n, seed, random_labels=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n).astype("uint8")
    x = (rng.uniform(0, 80, size=(n, 16, 16, 3)) + 60 * y[:, None, None, None]).astype("uint8")
    if random_labels:
        y = rng.integers(0, 3, size=n).astype("uint8")
    np.savez(path, x=x, y=y, class_names=np.array(["low", "mid", "high"]))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    keras.utils.set_random_seed(3)
    train = pipelines.load(_npz(tmp / "train.npz", 240, 0))
    val = pipelines.load(_npz(tmp / "val.npz", 60, 1, random_labels=True))  # val accuracy plateaus
    layers = input_layers(train, "flip,padcrop:2")
    pipe = pipelines.build(train, batch_size=16, normalize="none")
    val_pipe = pipelines.build(val, batch_size=32, shuffle=False, normalize="none")
    core = kerascnn.zoo.resnet(
        blocks=[1, 1], filters=[8, 16], input_shape=(16, 16, 3), num_classes=3
    )
    model = ImageClassifier.from_model(core, **layers.task_options())
    recorder = RecordWeights()
    result = fit(model, pipe, val_pipe, get_recipe("vgg-sweep", epochs=30, early_stopping=2, lr=3e-3),
                 out_dir=tmp / "run", callbacks=[recorder], verbose=0)  # fmt: skip
    return tmp, model, result, recorder, val.numpy()[0]


def test_training_early_stopped_and_restored_the_best_epoch(trained):
    _, model, result, recorder, _ = trained
    assert result.stopped_early and result.epochs_run == result.best_epoch + 2 < 30
    for restored, best in zip(
        model.weights, recorder.per_epoch[result.best_epoch - 1], strict=True
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored), best)


def test_serving_export_in_a_clean_process_and_with_saved_model_cli(trained):
    tmp, model, _, _, x_val = trained
    x = x_val[:12]
    expected = model.predict(x.astype("float32"), verbose=0)
    bn = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    stats = [keras.ops.convert_to_numpy(layer.moving_mean).copy() for layer in bn]

    path = export.serving_export(
        model, tmp / "saved_models" / "tiny", class_names=["low", "mid", "high"]
    )
    assert path.endswith(os.path.join("tiny", "1"))
    for layer, before in zip(bn, stats, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), before)

    np.save(tmp / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp / "clean.npz"
    run = subprocess.run(
        [sys.executable, "-I", "-c", CLEAN_PROCESS, path, str(tmp / "x.npy"), str(out)],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(out)
    np.testing.assert_allclose(got["logits"], expected, atol=1e-5)
    np.testing.assert_allclose(
        got["probabilities"], keras.ops.convert_to_numpy(keras.ops.softmax(expected)), atol=1e-6
    )
    np.testing.assert_array_equal(got["class_ids"], expected.argmax(-1))
    assert list(got["class_names"]) == [["low", "mid", "high"][i] for i in expected.argmax(-1)]

    cli = shutil.which(
        "saved_model_cli", path=str(pathlib.Path(sys.executable).parent)
    ) or shutil.which("saved_model_cli")
    assert cli, "saved_model_cli (installed with tensorflow) not found"
    outdir = tmp / "cli_out"
    run = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp / 'x.npy'}", "--outdir", str(outdir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_allclose(np.load(outdir / "logits.npy"), expected, atol=1e-5)


def test_versions_are_never_overwritten(trained):
    tmp, model, *_ = trained
    base = tmp / "saved_models" / "versions"
    first = export.serving_export(model, base, version=3)
    marker = pathlib.Path(first) / "saved_model.pb"
    before = marker.read_bytes()
    with pytest.raises(
        export.ExportTargetError, match="3 already exists; versions are never overwritten"
    ):
        export.serving_export(model, base, version=3)
    assert marker.read_bytes() == before
    assert export.serving_export(model, base).endswith(os.path.join("versions", "4"))
    assert sorted(p.name for p in base.iterdir()) == ["3", "4"]  # no temporary folders left


def test_wrong_dtype_or_shape_is_refused_by_the_signature(trained):
    import tensorflow as tf

    tmp, model, *_ = trained
    path = export.serving_export(model, tmp / "saved_models" / "strict")
    serving = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float tensor"
    ):
        serving(images=tf.zeros((1, 16, 16, 3), tf.float32))
    for shape in [(1, 20, 20, 3), (1, 16, 16), (2, 16, 16, 1)]:
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"images must have shape \(batch, 16, 16, 3\)"
        ):
            serving(images=tf.zeros(shape, tf.uint8))
    assert serving(images=tf.zeros((5, 16, 16, 3), tf.uint8))["logits"].shape == (5, 3)


def test_onnx_export_matches_keras(trained, tmp_path):
    pytest.importorskip("tf2onnx", reason="the optional 'onnx' extra is not installed")
    ort = pytest.importorskip("onnxruntime", reason="the optional 'onnx' extra is not installed")
    _, model, _, _, x_val = trained
    x = x_val[:8].astype("float32")
    path = export.onnx_export(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(path)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-4)
