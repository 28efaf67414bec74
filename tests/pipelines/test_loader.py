"""The backend-neutral NumPy loader (``build(loader="numpy")``, the default off TensorFlow):
shuffle + batch, epochs, normalization and labels, MixUp, image folders, and its errors.
Runs on every backend, without TensorFlow (the CI's JAX and PyTorch passes)."""

import io

import keras
import numpy as np
import pytest

from kerascnn import pipelines
from kerascnn.pipelines.loader import BatchLoader
from kerascnn.tasks import ImageClassifier, input_layers

pytestmark = [pytest.mark.jax, pytest.mark.torch]


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (100, 8, 8, 3), dtype=np.uint8)
    y = np.arange(100) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return pipelines.load(tmp_path / "d.npz")


def _epoch(loader):
    return [loader[i] for i in range(len(loader))]


def test_each_epoch_is_the_seeded_permutation_in_uint8_batches(small):
    x, y = small.numpy()
    loader = BatchLoader(small, batch_size=32, seed=7)
    assert len(loader) == 4 and loader.num_examples == 100
    for epoch in range(2):
        order = np.random.default_rng([7, epoch]).permutation(100)  # the documented order
        batches = _epoch(loader)
        assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
        assert batches[0][0].dtype == np.uint8 and batches[0][1].dtype == np.int32
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[order])
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y[order])
        loader.on_epoch_end()
    loader.set_epoch(0)  # a resumed run asks for an epoch's order by number
    np.testing.assert_array_equal(
        loader[0][0], x[np.random.default_rng([7, 0]).permutation(100)[:32]]
    )


def test_no_shuffle_drop_remainder_and_subsets(small):
    x, y = small.numpy()
    loader = BatchLoader(small, batch_size=32, shuffle=False, drop_remainder=True)
    assert len(loader) == 3 and loader.num_examples == 96
    np.testing.assert_array_equal(np.concatenate([b[0] for b in _epoch(loader)]), x[:96])
    part = small.subset(np.arange(10, 30))
    np.testing.assert_array_equal(BatchLoader(part, 64, shuffle=False)[0][0], x[10:30])
    with pytest.raises(IndexError, match=r"batch index 1 out of range \[0, 1\)"):
        BatchLoader(part, 64)[1]


def test_build_numpy_normalizes_keeps_integer_labels_and_feeds_fit(small):
    pipe = pipelines.build(
        small, batch_size=25, shuffle=False, loader="numpy", normalize="standardize"
    )
    x, y = pipe.dataset[0]
    raw, labels = small.numpy()
    expected = (raw[:25].astype(np.float64) - np.array(small.mean)) / np.array(small.std)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, labels[:25])
    assert len(pipe) == 4

    raw_pipe = pipelines.build(small, batch_size=25, normalize="none", loader="numpy")
    assert raw_pipe.dataset[0][0].dtype == np.uint8  # augmentation and normalization in the model
    layers = input_layers(small, "flip")
    images = keras.Input(small.image_shape)
    model = ImageClassifier(
        keras.Model(images, keras.layers.Flatten()(images)), 4, pooling=None,
        **layers.task_options(),
    )  # fmt: skip
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(raw_pipe.dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_image_folder_read_with_pillow_matches_the_files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 10, 12, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        folder = tmp_path / "f" / ("a" if i < 3 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")  # lossless: exact pixels back
    ds = pipelines.load(tmp_path / "f")
    assert ds.readable and ds.image_shape == (10, 12, 3)
    x, y = BatchLoader(ds, 6, shuffle=False)[0]
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])


def test_image_folder_resize_equals_keras_resize(tmp_path):
    from PIL import Image

    image = np.random.default_rng(2).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    (tmp_path / "f" / "a").mkdir(parents=True)
    Image.fromarray(image).save(tmp_path / "f" / "a" / "0.png")
    buf = io.BytesIO()
    Image.fromarray(image[:8, :8]).save(buf, format="PNG")
    (tmp_path / "f" / "a" / "1.png").write_bytes(buf.getvalue())
    with pytest.warns(UserWarning, match=r"1 of 2 images change aspect ratio.*0.png \(20x16\)"):
        ds = pipelines.load(tmp_path / "f", image_size=(8, 8))
    x = ds.read([0, 1])
    reference = keras.ops.image.resize(
        image[None].astype("float32"), (8, 8), interpolation="bilinear", antialias=True
    )
    reference = np.clip(np.round(keras.ops.convert_to_numpy(reference)), 0, 255)
    np.testing.assert_array_equal(x[0], reference[0])
    np.testing.assert_array_equal(x[1], image[:8, :8])  # already that size: untouched


def test_numpy_loader_refuses_what_needs_tf_data(small):
    with pytest.raises(
        ValueError, match=r"loader='numpy' cannot serve augmentation in the input pipeline"
    ):
        pipelines.build(small, augment="flip", loader="numpy", normalize="none")
    with pytest.raises(ValueError, match=r"loader must be one of 'auto', 'numpy', 'tf.data'"):
        pipelines.build(small, loader="torch")
