"""Trained weights shipped as presets (issue 15): each one reaches its stated validation
accuracy on the validation images it names, its file is checked, and its SavedModel export
predicts the same."""

import hashlib

import keras
import numpy as np
import pytest
from conftest import tf_only

from kerascnn import pipelines, zoo
from kerascnn.zoo import presets

SHIPPED = [(name, weights) for name, table in presets.presets().items() for weights in table]


def test_at_least_one_preset_is_shipped_and_listed():
    assert ("resnet20", "cifar10") in SHIPPED
    assert zoo.model_info("resnet20").weights == ("cifar10",)
    assert zoo.model_info("resnet56").weights == ()


def _validation(meta, cifar_npz):
    # the split the metadata names, carved again from the shared CIFAR-10 file
    assert meta["data"].endswith("cifar10/train.npz")
    val = pipelines.load(cifar_npz, "validation", validation_fraction=0.1, seed=0)
    assert str(len(val)) in meta["split"] and "seed=0" in meta["split"]
    return val.read(np.arange(len(val))), val.labels


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize(("name", "weights"), SHIPPED)
def test_preset_reaches_its_stated_validation_accuracy(name, weights, cifar_npz):
    meta = presets.preset(name, weights)
    path = presets.WEIGHTS_DIR / meta["file"]
    assert path.stat().st_size < 5 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    x, y = _validation(meta, cifar_npz)
    assert x.dtype == np.uint8
    bare = zoo.create(name, weights=weights, include_preprocessing=False)
    # standardization written out here from the metadata, not through kerascnn
    inputs = (x.astype("float32") - np.float32(meta["mean"])) / np.float32(meta["std"])
    bare_pred = bare.predict(inputs, batch_size=500, verbose=0).argmax(-1)
    accuracy = float(np.mean(bare_pred == y))
    assert accuracy == pytest.approx(meta["val_accuracy"], abs=2e-4)  # one image in 5,000
    # the training run's own measurement of the same images (Keras's metric, in the task)
    assert accuracy == pytest.approx(meta["run_val_accuracy"], abs=2e-4)
    # the model users get takes the raw uint8 pixels and scores the same
    pixel_pred = zoo.create(name, weights=weights).predict(x, batch_size=500, verbose=0)
    assert float(np.mean(pixel_pred.argmax(-1) == y)) == pytest.approx(accuracy, abs=2e-4)
    assert np.mean(pixel_pred.argmax(-1) == bare_pred) > 0.999
    # flip averaging (kerascnn evaluate --tta flip), written out here: the mean of the class
    # probabilities of each image and of its mirror image
    mirrored = bare.predict(inputs[:, :, ::-1], batch_size=500, verbose=0)
    flip_pred = (_probabilities(bare.predict(inputs, batch_size=500, verbose=0))
                 + _probabilities(mirrored)).argmax(-1)  # fmt: skip
    flip_accuracy = float(np.mean(flip_pred == y))
    assert flip_accuracy == pytest.approx(meta["val_accuracy_tta_flip"], abs=2e-4)


def _probabilities(outputs):
    outputs = np.asarray(outputs, np.float64)
    if np.all(outputs >= 0) and np.allclose(outputs.sum(-1), 1.0, atol=1e-4):
        return outputs
    e = np.exp(outputs - outputs.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize(("name", "weights"), SHIPPED)
def test_the_bundled_samples_validation_images_are_not_in_a_presets_training_images(
    name, weights, cifar_npz
):
    """The README tries a preset on the bundled sample's validation part: those images must
    lie in the validation split the preset names, never in its training images."""
    from kerascnn.pipelines import sources
    from kerascnn.pipelines.splits import stratified_split_indices

    meta = presets.preset(name, weights)
    x_val, _ = _validation(meta, cifar_npz)
    with np.load(cifar_npz) as d:
        x, y = d["x"], d["y"]
    train_pos, val_pos = stratified_split_indices(y, 0.1, 0)
    np.testing.assert_array_equal(x_val, x[val_pos])  # the split the preset names
    with np.load(sources.SAMPLE_FILE) as sample:
        held = sample["index_val"]
        np.testing.assert_array_equal(sample["x_val"], x[held])
    assert set(held.tolist()) <= set(val_pos.tolist())
    assert not set(held.tolist()) & set(train_pos.tolist())


def test_the_readmes_preset_example_scores_what_it_says_on_unseen_sample_images():
    """README's example: the preset on the bundled sample's 500 validation images (none of
    them trained on, test above), raw uint8 pixels in; the README states the accuracy."""
    import pathlib
    import re

    val = pipelines.load("cifar10-sample", split="validation")
    x, y = val.read(np.arange(len(val))), val.labels
    model = zoo.create("resnet20", weights="cifar10")
    accuracy = float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    stated = re.findall(r"val\.labels\)\.mean\(\)\s+# ([0-9.]+) on 500 images", readme)
    assert stated, "README's preset example states no accuracy"
    for figure in stated:  # the quick start and the Trained weights section
        assert accuracy == pytest.approx(float(figure), abs=1e-3)


def test_the_readmes_preset_table_states_each_presets_recorded_accuracies():
    """README's preset table: a row per preset, whose validation accuracy and flip-averaged
    accuracy are those of ``presets.json`` (which the tests above measure again)."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (.*)$", readme, re.M)
    stated = {(model, weights): row for model, weights, row in rows}
    for model, table in presets.presets().items():
        for weights, meta in table.items():
            row = stated.get((model, weights))
            assert row, f"README has no preset row for {model} / {weights}"
            assert f"**{100 * meta['val_accuracy']:.2f} %**" in row
            assert f"{100 * meta['val_accuracy_tta_flip']:.2f} % with flip averaging" in row
            assert f"`{meta['command']}` reruns it" in row


def test_family_builder_and_create_load_the_same_weights():
    by_name = zoo.create("resnet20", weights="cifar10")
    by_builder = zoo.resnet(depth=20, weights="cifar10")
    for a, b in zip(by_name.weights, by_builder.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    backbone = zoo.create("resnet20", weights="cifar10", include_top=False)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(backbone.get_layer("stage3_block3_conv2").kernel),
        keras.ops.convert_to_numpy(by_name.get_layer("stage3_block3_conv2").kernel),
    )


def test_weights_that_cannot_serve_the_arguments_are_refused():
    with pytest.raises(
        ValueError,
        match=r"weights='imagenet' are not available for 'resnet20'; available: 'cifar10'",
    ):
        zoo.create("resnet20", weights="imagenet")
    with pytest.raises(
        ValueError, match=r"have a classifier of 10 classes; received num_classes=100"
    ):
        zoo.create("resnet20", weights="cifar10", num_classes=100)
    with pytest.raises(ValueError, match=r"take 3-channel images"):
        zoo.create("resnet20", weights="cifar10", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match=r"no registered model is resnet\(depth=26\)"):
        zoo.resnet(depth=26, weights="cifar10")
    # a new head on the trained features is fine
    assert zoo.create("resnet20", weights="cifar10", include_top=False).output_shape[-1] == 64


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    meta = presets.preset("resnet20", "cifar10")
    damaged = tmp_path / meta["file"]
    data = bytearray((presets.WEIGHTS_DIR / meta["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(presets, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="has SHA-256 .* not the .* of presets.json"):
        zoo.create("resnet20", weights="cifar10")


@tf_only
def test_preset_saved_model_predicts_the_same(tmp_path):
    import tensorflow as tf

    from kerascnn import export

    model = zoo.create("resnet20", weights="cifar10")
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    export.saved_model(model, tmp_path / "1")
    loaded = tf.saved_model.load(str(tmp_path / "1"))  # keep it: it owns the variables
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
