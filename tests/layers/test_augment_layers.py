"""Generic checks over every augmentation layer: identity at inference, per-example
randomness, config and .keras round trip, tf.data map, XLA kept on (also on JAX)."""

import warnings

import keras
import numpy as np
import pytest
from _augment_cases import NAMES, image_layers
from conftest import tf_only


def _images(n=8, seed=0):
    return np.random.default_rng(seed).integers(40, 200, (n, 32, 32, 3)).astype("float32")


def _layer(name, seed=1):
    return image_layers(seed)[NAMES.index(name)]


def _small_cnn(augment):
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            *augment,
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )


@pytest.mark.jax
@pytest.mark.parametrize("name", NAMES)
def test_identity_at_inference_and_random_in_training(name):
    layer = _layer(name)
    x = _images()
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # no training argument
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape
    changed = np.abs(y - x).reshape(len(x), -1).max(axis=1) > 1e-3
    assert changed.any(), "training=True never changed any image"
    # per-example randomness: identical images get different outputs
    same = np.repeat(_images(1), 16, axis=0)
    out = np.asarray(_layer(name, seed=3)(same, training=True)).reshape(16, -1)
    assert len({o.tobytes() for o in out}) > 1


@pytest.mark.jax
@pytest.mark.parametrize("name", NAMES)
def test_config_and_keras_round_trip(name, tmp_path):
    layer = _layer(name)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = _small_cnn([layer])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.layers[0]) is type(layer)
    x = _images(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_invalid_arguments_name_argument_and_value():
    from kerascnn import layers as L

    for make, text in [
        (lambda: L.RandomFlip("diagonal"), "mode"),
        (lambda: L.RandomPadCrop(-1), "padding"),
        (lambda: L.RandomRotate(200), "degrees"),
        (lambda: L.RandAugment(0), "num_ops"),
        (lambda: L.RandAugment(2, 31), "magnitude"),
        (lambda: L.Cutout(0), "size"),
        (lambda: L.Posterize(9), "bits"),
        (lambda: L.RandomBrightness(0.2, value_range=(1, 0)), "value_range"),
        (lambda: L.MixUp(alpha=0), "alpha"),
    ]:
        with pytest.raises(ValueError, match=text):
            make()


@tf_only
def test_in_tf_data_map_batched_and_unbatched():
    import tensorflow as tf

    x = _images(16).astype("uint8")
    for name in NAMES:
        layer = _layer(name)
        batched = (
            tf.data.Dataset.from_tensor_slices(x)
            .batch(8)
            .map(lambda b, layer=layer: layer(b, training=True))
        )
        out = np.concatenate([b.numpy() for b in batched])
        assert out.shape == x.shape and out.dtype == np.uint8, name
        single = tf.data.Dataset.from_tensor_slices(x).map(
            lambda i, layer=layer: layer(i, training=True)
        )
        assert next(iter(single)).shape == (32, 32, 3), name


def _assert_jit_kept(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(
            "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True
        )
    assert not [w for w in caught if "jit_compile" in str(w.message)]
    assert model.jit_compile is True


@pytest.mark.jax
@pytest.mark.parametrize("name", NAMES)
def test_each_layer_keeps_jit_compile(name):
    model = _small_cnn([_layer(name)])
    _assert_jit_kept(model)
    x, y = _images(8), np.arange(8) % 10
    model.train_on_batch(x, y)  # one XLA-compiled training step
    assert model.jit_compile is True


@pytest.mark.jax
def test_all_layers_together_fit_under_xla():
    model = _small_cnn(image_layers())
    _assert_jit_kept(model)
    x, y = _images(16), np.arange(16) % 10
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert model.jit_compile is True


@pytest.mark.jax
def test_sizes_larger_than_the_image_are_refused_when_built():
    """Cutout larger than the image and RandomPadCrop padding beyond what its fill allows
    (reflect and constant: < the smaller side; symmetric: <=) are refused with one line
    naming the argument, the value and the image size: when a model is built, at an eager
    call (also on a size other than the one built for) and by ``parse_augment``."""
    from kerascnn import layers as L
    from kerascnn.pipelines import parse_augment

    x = _images(2)
    for make, text in [
        (lambda: L.Cutout(33), "size must be at most the smaller image side, 32 .* size=33"),
        (lambda: L.RandomPadCrop(32), "padding must be at most 31 for 32x32 images .* padding=32"),
        (lambda: L.RandomPadCrop(32, fill="constant"), "at most 31 .*'constant'"),
        (lambda: L.RandomPadCrop(33, fill="symmetric"), "at most 32 .*'symmetric'"),
    ]:
        with pytest.raises(ValueError, match=text):
            keras.Sequential([keras.Input((32, 32, 3)), make()])
        with pytest.raises(ValueError, match=text):
            make()(x, training=True)
        layer = make()
        layer.build((None, 64, 64, 3))  # fits larger images
        with pytest.raises(ValueError, match=text):
            layer(x[0])  # an unbatched 32x32 image, at inference too
    # the limits themselves work on every backend, and a fraction always fits
    for layer in (L.Cutout(32), L.RandomPadCrop(31), L.RandomPadCrop(32, fill="symmetric"),
                  L.RandomPadCrop(31, fill="constant"), L.Cutout(1.0)):  # fmt: skip
        assert layer(x, training=True).shape == x.shape
    for spec, text in [
        ("flip,padcrop:40", "augment item 'padcrop:40': padding must be at most 31"),
        ("cutout:100", "augment item 'cutout:100': size must be at most the smaller image side"),
        ([L.Cutout(40, name="big_cutout")], "augment item 'big_cutout': size must be"),
    ]:
        with pytest.raises(ValueError, match=text) as info:
            parse_augment(spec, image_shape=(32, 32, 3))
        assert "\n" not in str(info.value)
    assert len(parse_augment("padcrop:40").layers) == 1  # no image shape: checked when built
    assert len(parse_augment("padcrop:4,cutout:16", image_shape=(32, 32, 3)).layers) == 2
