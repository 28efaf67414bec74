"""Models with trained weights take raw pixels (kerascnn.zoo.pixels): the preset's
standardization is their first layer, they compute what the bare network computes on
standardized images, survive saving and export, and flag images scaled to 0..1."""

import warnings

import keras
import numpy as np
import pytest
from conftest import tf_only

from kerascnn import zoo
from kerascnn.tasks import ImageClassifier
from kerascnn.zoo import presets
from kerascnn.zoo.pixels import PixelModel, PixelRangeWarning, check_pixel_range

NAME, WEIGHTS = "resnet20", "cifar10"


def _pixels(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("uint8")


def _standardized(x):
    # written out from the metadata, not through kerascnn
    meta = presets.preset(NAME, WEIGHTS)
    return (x.astype("float32") - np.float32(meta["mean"])) / np.float32(meta["std"])


def _pixel_warnings(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [w for w in caught if issubclass(w.category, PixelRangeWarning)]


@pytest.mark.jax
@pytest.mark.torch
def test_pixel_model_is_the_bare_network_behind_the_presets_standardization():
    model = zoo.create(NAME, weights=WEIGHTS)
    bare = zoo.create(NAME, weights=WEIGHTS, include_preprocessing=False)
    assert isinstance(model, PixelModel) and not isinstance(bare, PixelModel)
    assert [layer.name for layer in model.layers[:3]] == ["pixels", "standardize", "stem_conv"]
    assert model.count_params() == bare.count_params() + 6  # mean and 1/std, not trainable
    assert len(model.trainable_weights) == len(bare.trainable_weights)
    x = _pixels()
    expected = bare.predict(_standardized(x), verbose=0)
    for images in (x, x.astype("float32")):  # uint8 or float pixels
        np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=2e-5)
    # the family builder gives the same model; the stage outputs are found as before
    by_builder = zoo.resnet(depth=20, weights=WEIGHTS)
    np.testing.assert_allclose(by_builder.predict(x, verbose=0), expected, atol=2e-5)
    assert [f.stride for f in zoo.feature_info(model)] == [1, 2, 4]


@pytest.mark.jax
@pytest.mark.torch
def test_images_scaled_to_0_1_are_flagged_in_one_line():
    model = zoo.create(NAME, weights=WEIGHTS)
    x = _pixels()
    unit = x.astype("float32") / 255.0
    for run in (
        lambda: model.predict(unit, verbose=0),
        lambda: model(unit),
        lambda: model(keras.ops.convert_to_tensor(unit)),
        lambda: model.evaluate(unit, np.zeros(len(x)), verbose=0),
    ):
        model.compile(loss="sparse_categorical_crossentropy")
        caught = _pixel_warnings(run)
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "\n" not in message
        assert "takes raw pixels 0..255" in message and "0..1" in message
    # raw pixels, uint8 or float, and the bare network's standardized input are not flagged
    bare = zoo.create(NAME, weights=WEIGHTS, include_preprocessing=False)
    for run in (
        lambda: model.predict(x, verbose=0),
        lambda: model.predict(x.astype("float32"), verbose=0),
        lambda: model(x.astype("float32")),
        lambda: bare.predict(unit, verbose=0),
    ):
        assert _pixel_warnings(run) == []
    # fractions in 0..1 are flagged; a black image, or one of 0 and 1 pixel values, is a
    # valid pixel image (whole numbers) and is not
    with pytest.warns(PixelRangeWarning, match=r"^m takes raw pixels .* lie in 0\.\.0\.5:"):
        assert check_pixel_range(np.eye(3, dtype="float32")[None, ..., None] / 2, "m") is True
    assert check_pixel_range(np.eye(3, dtype="float32")[None, ..., None], "m") is False
    assert check_pixel_range(np.zeros((1, 2, 2, 3), "float32"), "m") is False
    assert check_pixel_range(np.full((1, 2, 2, 3), 1.5, "float32"), "m") is False
    assert check_pixel_range(np.ones((1, 2, 2, 3), "uint8"), "m") is False


@pytest.mark.jax
def test_the_task_from_a_preset_takes_pixels_and_keeps_the_trained_top():
    task = ImageClassifier.from_preset(NAME, weights=WEIGHTS)
    assert task.takes_pixels()
    x = _pixels()
    bare = zoo.create(NAME, weights=WEIGHTS, include_preprocessing=False)
    np.testing.assert_allclose(
        task.predict(x, verbose=0), bare.predict(_standardized(x), verbose=0), atol=2e-5
    )
    assert len(_pixel_warnings(lambda: task.predict(x / 255.0, verbose=0))) == 1
    # without weights the task has no standardization and checks nothing
    plain = ImageClassifier.from_preset(NAME)
    assert not plain.takes_pixels()
    assert _pixel_warnings(lambda: plain.predict(x / 255.0, verbose=0)) == []


@pytest.mark.jax
def test_pixel_model_survives_a_keras_file(tmp_path):
    model = zoo.create(NAME, weights=WEIGHTS)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded, PixelModel)
    x = _pixels()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(_pixel_warnings(lambda: loaded.predict(x / 255.0, verbose=0))) == 1


@pytest.mark.jax
def test_include_preprocessing_is_checked():
    with pytest.raises(ValueError, match=r"include_preprocessing applies to trained weights"):
        zoo.create(NAME, include_preprocessing=True)
    with pytest.raises(ValueError, match=r"include_preprocessing applies to trained weights"):
        zoo.resnet(depth=20, include_preprocessing=True)
    with pytest.raises(
        ValueError, match=r"include_preprocessing must be True or False; received .*=1"
    ):
        zoo.create(NAME, weights=WEIGHTS, include_preprocessing=1)
    assert not isinstance(zoo.create(NAME, include_preprocessing=False), PixelModel)


@tf_only
def test_serving_export_and_litert_of_a_pixel_model_take_raw_uint8(tmp_path):
    import tensorflow as tf

    from kerascnn import export

    model = zoo.create(NAME, weights=WEIGHTS)
    x = _pixels(16)
    expected = model.predict(x, verbose=0)
    path = export.serving_export(model, tmp_path / "sm")
    loaded = tf.saved_model.load(path)  # keep it: it owns the variables
    served = loaded.signatures["serving_default"](images=tf.constant(x))["logits"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4)
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=["serving_default"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner("serving_default")
    np.testing.assert_allclose(runner(images=x)["logits"], expected, atol=1e-4)
