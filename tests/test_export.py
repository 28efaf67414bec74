"""Exports of models with augmentation are deterministic and equal model.predict."""

import os
import pathlib
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "layers"))

from _augment_cases import image_layers  # noqa: E402
from conftest import tf_only  # noqa: E402

from kerascnn import export  # noqa: E402


def _model():
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            *image_layers(),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(16) % 10, batch_size=8, epochs=1, verbose=0)  # non-trivial BN stats
    return model, x


@tf_only
@pytest.mark.parametrize("how", ["model.export", "kerascnn.export.saved_model"])
def test_export_is_deterministic_and_equals_predict(how, tmp_path):
    import tensorflow as tf

    model, x = _model()
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    stats = [np.array(v) for v in (bn.moving_mean, bn.moving_variance)]
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "sm")
    if how == "model.export":
        model.export(path, verbose=False)
    else:
        export.saved_model(model, path)
    np.testing.assert_array_equal(np.array(bn.moving_mean), stats[0])
    np.testing.assert_array_equal(np.array(bn.moving_variance), stats[1])
    loaded = tf.saved_model.load(path)
    first, second = loaded.serve(x).numpy(), loaded.serve(x).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    serving = loaded.signatures["serving_default"]
    out = list(serving(tf.constant(x)).values())[0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(np.array(bn.moving_mean), stats[0])


# --------------------------------------------------------------------------- serving_export
def _classifier(head="logits", shape=(8, 8, 3), classes=4):
    """A tiny image classifier ending in ``head``: logits, a ``keras.layers.Softmax``, a
    ``Dense(activation="softmax")``, or a nested model ending in ``Activation("softmax")``."""
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    if head == "dense_softmax":
        x = keras.layers.Dense(classes, activation="softmax")(x)
    elif head in ("tf_softmax", "sigmoid"):  # another library's function; not a softmax
        import tensorflow as tf

        activation = tf.nn.softmax if head == "tf_softmax" else tf.math.sigmoid
        x = keras.layers.Dense(classes, activation=activation)(x)
    elif head == "nested_activation":
        inner = keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras.layers.Dense(classes),
                keras.layers.Activation("softmax"),
            ]
        )
        x = inner(x)
    else:
        x = keras.layers.Dense(
            classes, kernel_initializer=keras.initializers.RandomNormal(0, 0.05)
        )(x)
        if head == "softmax_layer":
            x = keras.layers.Softmax()(x)
    return keras.Model(inputs, x)


def _pixels(n=6, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype("uint8")


@tf_only
@pytest.mark.parametrize(
    "head", ["logits", "softmax_layer", "dense_softmax", "nested_activation", "tf_softmax"]
)
def test_serving_probabilities_equal_the_model_or_its_softmax(head, tmp_path):
    """A model that ends in a softmax is exported as probabilities (not softmaxed twice); a
    logits model gets the softmax of its outputs (computed here with NumPy)."""
    import tensorflow as tf

    model = _classifier(head)
    x = _pixels()
    predicted = model.predict(x.astype("float32"), verbose=0)
    path = export.serving_export(model, tmp_path / "m")
    out = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(x))
    probabilities = out["probabilities"].numpy()
    if head == "logits":
        e = np.exp(predicted - predicted.max(-1, keepdims=True))
        np.testing.assert_allclose(probabilities, e / e.sum(-1, keepdims=True), atol=1e-5)
        np.testing.assert_allclose(out["logits"].numpy(), predicted, atol=1e-5)
    else:
        np.testing.assert_allclose(probabilities, predicted, atol=1e-5)
        assert predicted.max(-1).min() < 0.99  # not trivially one-hot: a double softmax shows
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"].numpy(), predicted.argmax(-1))


@tf_only
def test_a_model_ending_in_neither_logits_nor_softmax_is_refused(tmp_path):
    from kerascnn.errors import UserInputError

    with pytest.raises(UserInputError, match=r"ends in the activation sigmoid \(a sigmoid\)"):
        export.serving_export(_classifier("sigmoid"), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_activation_name_recognises_every_spelling():
    from kerascnn.activations import activation_name

    def my_softmax(x):
        e = keras.ops.exp(x - keras.ops.max(x, axis=-1, keepdims=True))
        return e / keras.ops.sum(e, axis=-1, keepdims=True)

    assert activation_name(my_softmax) == "softmax"
    assert activation_name(keras.activations.get("softmax")) == "softmax"
    assert activation_name(None) == activation_name(lambda x: x) == "linear"
    assert activation_name(keras.activations.relu) == "relu"
    assert activation_name(lambda x: 2 * x) is None


@tf_only
def test_stale_temporary_folders_of_killed_exports_are_removed(tmp_path):
    import subprocess

    base = tmp_path / "m"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = base / f".tmp-1-{int(dead.stdout)}"  # its process has exited, as after SIGKILL
    running = base / f".tmp-9-{os.getppid()}"  # a live process: maybe a concurrent export
    for folder in (stale, running):
        (folder / "variables").mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"partial")
    path = export.serving_export(_classifier(), base)
    assert path.endswith(os.path.join("m", "1"))
    assert not stale.exists() and running.exists()
    assert sorted(p.name for p in base.iterdir()) == sorted(["1", running.name])


@tf_only
def test_a_version_folder_is_refused_as_base_dir(tmp_path):
    base = tmp_path / "saved_models" / "resnet20"
    model = _classifier()
    first = pathlib.Path(export.serving_export(model, base))
    with pytest.raises(export.ExportTargetError) as info:
        export.serving_export(model, first)
    message = str(info.value)
    assert "\n" not in message and f"pass the model folder {base}" in message
    for wrong in (base / "7", first / "sub"):  # a numbered sibling, a folder inside a version
        with pytest.raises(export.ExportTargetError, match="pass"):
            export.check_export_target(wrong)
    assert sorted(p.name for p in first.iterdir()) == sorted(
        ["assets", "assets.extra", "fingerprint.pb", "saved_model.pb", "variables"]
    )  # nothing written into the version (no resnet20/1/1)


@tf_only
@tf_only
def test_class_names_of_another_length_are_the_users_error(tmp_path):
    from kerascnn.errors import UserInputError

    with pytest.raises(
        UserInputError,
        match=r"class_names must have one entry per output \(4\); received 3 names: "
        r"class_names=\['a', 'b', 'c'\]",
    ):
        export.serving_export(_classifier(), tmp_path / "m", class_names=list("abc"))
    assert not (tmp_path / "m").exists()


def test_a_new_signature_is_refused_unless_allowed(tmp_path):
    base = tmp_path / "m"
    export.serving_export(_classifier(), base, class_names=list("abcd"))
    for model, names, what in [
        (_classifier(classes=5), list("abcde"), "5 classes"),
        (_classifier(shape=(16, 16, 3)), list("abcd"), "images (16, 16, 3)"),
        (_classifier(), list("dcba"), "[d, c, b, a]"),
    ]:
        with pytest.raises(export.ExportTargetError, match="allow_new_signature") as info:
            export.serving_export(model, base, class_names=names)
        message = str(info.value)
        assert "\n" not in message and "images (8, 8, 3), 4 classes [a, b, c, d]" in message
        assert what in message
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert export.serving_export(_classifier(), base, class_names=list("abcd")).endswith("2")
    path = export.serving_export(_classifier(classes=5), base, allow_new_signature=True)
    assert export.saved_signature(path) == {
        "image_shape": [8, 8, 3], "num_classes": 5, "class_names": list("01234")
    }  # fmt: skip
    # an export without signature.json (older kerascnn): read from the SavedModel itself
    (pathlib.Path(path) / "assets.extra" / export.SIGNATURE_FILE).unlink()
    assert export.saved_signature(path) == {
        "image_shape": [8, 8, 3], "num_classes": 5, "class_names": list("01234")
    }  # fmt: skip
    with pytest.raises(export.ExportTargetError, match=r"version 3 has images \(8, 8, 3\), 5"):
        export.check_export_target(base, image_shape=(8, 8, 3), class_names=list("abcd"))


def test_check_export_target_refuses_before_writing(tmp_path, monkeypatch):
    existing = tmp_path / "model.keras"
    existing.write_text("not a folder")
    (tmp_path / "m" / "2").mkdir(parents=True)
    cases = [
        (existing, None, "is an existing file"),
        (existing / "sub", None, f"{existing} is a file"),
        (
            tmp_path / "m",
            2,
            "m/2 already exists; versions are never overwritten .* next free one, 3",
        ),
        (tmp_path / "m", 0, "version must be a positive integer"),
        (tmp_path / "m", "1", "received version='1'"),
    ]
    for base, version, message in cases:
        with pytest.raises(export.ExportTargetError, match=message):
            export.check_export_target(base, version)
    assert export.check_export_target(tmp_path / "new" / "m") == tmp_path / "new" / "m" / "1"
    assert export.check_export_target(tmp_path / "m") == tmp_path / "m" / "3"
    assert not (tmp_path / "new").exists()  # a check writes nothing
    # a read-only location (as root, os.access is the only portable probe, so simulate it)
    monkeypatch.setattr(export.os, "access", lambda path, mode: pathlib.Path(path) != tmp_path)
    with pytest.raises(export.ExportTargetError, match=f"{tmp_path} is not writable"):
        export.check_export_target(tmp_path / "new" / "m")
    assert issubclass(export.ExportTargetError, ValueError)


@tf_only
def test_a_failed_write_leaves_no_version_and_no_temporary_folder(tmp_path, monkeypatch):
    base = tmp_path / "m"
    model = _classifier()
    export.serving_export(model, base)

    def disk_full(self, path, **kwargs):
        pathlib.Path(path, "variables").mkdir(parents=True)
        pathlib.Path(path, "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    archive_class = type(keras.export.ExportArchive())  # the backend's subclass
    monkeypatch.setattr(archive_class, "write_out", disk_full)
    with pytest.raises(export.ExportError) as info:
        export.serving_export(model, base)
    message = str(info.value)
    assert "\n" not in message and str(base / "2") in message
    assert "No space left on device" in message and info.value.errno == 28
    assert isinstance(info.value, OSError)
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_export_without_tensorflow_fails_with_one_line(tmp_path):
    """``import kerascnn.export`` does not import TensorFlow; its functions that need it say
    what to install (run on the JAX backend with TensorFlow blocked)."""
    import subprocess

    pytest.importorskip("jax")
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import keras\n"
        "import pathlib\n"
        "from kerascnn import export, inference\n"
        "pathlib.Path('sm').mkdir(); pathlib.Path('sm', 'saved_model.pb').write_bytes(b'')\n"
        "model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])\n"
        "for call in (lambda: export.serving_export(model, 'm'), lambda: export.saved_model(model, 'm'),\n"
        "             lambda: inference.predict_files('sm', [])):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        print(type(error).__name__, '|', error)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 3, run.stdout
    for line in lines:
        assert line.startswith("MissingDependencyError | ") and "pip install tensorflow" in line
    assert "SavedModel export needs TensorFlow" in lines[0]
    assert not (tmp_path / "m").exists()
