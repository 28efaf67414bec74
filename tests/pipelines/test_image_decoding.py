"""Image files decode one way on every path (16-bit PNGs included), and an image folder's
size is its most common one, said aloud, never a stretch in silence.

References are NumPy (``v // 256``: 16-bit samples keep their high byte), the closed form of
Pillow's luma (ITU-R 601-2, ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``) and constant
images (a resize of a constant image is that constant)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tf_only
from PIL import Image

from kerascnn import inference, pipelines
from kerascnn.errors import DataValidationError
from kerascnn.pipelines import sources

H, W = 4, 5
#: 16-bit samples around the byte boundaries, written into the first pixels of every image
EDGES = [0, 1, 127, 128, 255, 256, 257, 511, 32767, 32768, 32896, 65279, 65280, 65534, 65535]


# --------------------------------------------------------------------------- references
def _samples16(channels: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).integers(0, 65536, (H, W, channels), dtype=np.uint16)
    v.reshape(-1, channels)[: len(EDGES), 0] = EDGES  # a view of v
    return v


def _high_byte(v: np.ndarray) -> np.ndarray:
    return (v.astype(np.int64) // 256).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint8)


def _expected(v: np.ndarray, channels: int) -> np.ndarray:
    """The 8-bit ``(H, W, channels)`` image of the 16-bit samples ``v`` (grey, grey + alpha,
    RGB or RGBA): high bytes, alpha dropped, grey repeated or RGB turned to luma."""
    colour = v.shape[-1] >= 3
    base = _high_byte(v[..., :3] if colour else v[..., :1])
    if channels == 3:
        return base if colour else np.repeat(base, 3, axis=-1)
    return _luma(base)[..., None] if colour else base


def _bit_depth(path) -> int:
    data = open(path, "rb").read(26)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data[24]  # IHDR: length, type, width, height, then the bit depth


def _write16(path, v: np.ndarray) -> None:
    """A 16-bit PNG of ``v``: grey through Pillow (mode ``I;16``), the others (grey + alpha,
    RGB = 48-bit, RGBA) through ``tf.io.encode_png`` (Pillow cannot write them)."""
    if v.shape[-1] == 1:
        Image.fromarray(v[..., 0]).save(path)
    else:
        path.write_bytes(tf.io.encode_png(tf.constant(v)).numpy())
    assert _bit_depth(path) == 16


KINDS = {"grey16": 1, "grey_alpha16": 2, "rgb16": 3, "rgba16": 4}


def _folder16(root):
    """A folder of 16-bit PNGs, two per class: ``{path: (samples, label)}``."""
    files = {}
    for seed, (kind, channels) in enumerate(KINDS.items()):
        label = seed % 2
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        path = root / f"c{label}" / f"{kind}.png"
        v = _samples16(channels, seed)
        _write16(path, v)
        files[str(path)] = (v, label)
    return files


# --------------------------------------------------------------------------- 16-bit decoding
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", list(KINDS))
def test_decode_file_keeps_the_high_byte_of_16_bit_pngs(tmp_path, kind, channels):
    v = _samples16(KINDS[kind], seed=7)
    _write16(tmp_path / "x.png", v)
    got = sources.decode_file(tmp_path / "x.png", channels)
    assert got.dtype == np.uint8 and got.shape == (H, W, channels)
    np.testing.assert_array_equal(got, _expected(v, channels))


def test_8_bit_values_stored_in_16_bits_come_back_exactly(tmp_path):
    v8 = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(v8 * 257).save(tmp_path / "g.png")  # 8-bit values scaled to 16 bits
    np.testing.assert_array_equal(sources.decode_file(tmp_path / "g.png", 1)[..., 0], v8)


@pytest.mark.parametrize("channels", [1, 3])
def test_both_folder_readers_decode_16_bit_pngs_as_the_reference(tmp_path, channels):
    files = _folder16(tmp_path / "f")
    ds = pipelines.load(tmp_path / "f", channels=channels)
    assert ds.image_shape == (H, W, channels) and ds.class_names == ("c0", "c1")
    expected = np.stack([_expected(files[p][0], channels) for p in sorted(files)])
    labels = [files[p][1] for p in sorted(files)]
    x_numpy, y_numpy = ds.numpy()  # the Pillow reader (NumPy loader)
    np.testing.assert_array_equal(x_numpy, expected)
    np.testing.assert_array_equal(y_numpy, labels)
    x_tf, y_tf = next(iter(ds.as_tf().batch(len(files))))  # the tf.data reader
    np.testing.assert_array_equal(x_tf.numpy(), expected)
    np.testing.assert_array_equal(y_tf.numpy(), labels)
    assert (x_numpy == 255).mean() < 0.25  # not turned white


def test_tf_data_reader_decodes_jpeg_as_the_pillow_reader(tmp_path):
    """TensorFlow's JPEG decoder and Pillow's differ by a few levels; one decoder serves both."""
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "f" / c / f"{i}.jpg", quality=75)
    for channels in (1, 3):
        ds = pipelines.load(tmp_path / "f", channels=channels)
        reference = np.stack(
            [
                np.asarray(Image.open(p).convert("L" if channels == 1 else "RGB")).reshape(
                    16, 16, channels
                )
                for p in sorted((tmp_path / "f").rglob("*.jpg"))
            ]
        )
        np.testing.assert_array_equal(ds.numpy()[0], reference)
        np.testing.assert_array_equal(next(iter(ds.as_tf().batch(4)))[0].numpy(), reference)


def test_read_image_decodes_16_bit_pngs_as_training_does(tmp_path):
    v = _samples16(3, seed=11)
    _write16(tmp_path / "x.png", v)
    for channels in (1, 3):
        np.testing.assert_array_equal(
            inference.read_image(tmp_path / "x.png", (H, W, channels)), _expected(v, channels)
        )
    with pytest.raises(ValueError, match=r"x.png is 4x5x3; the model takes 5x4x3"):
        inference.read_image(tmp_path / "x.png", (W, H, 3))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _probabilities(line: str) -> dict[str, float]:
    ranked = line.split(": ", 1)[1].split(", ")
    return {name: float(p) for name, p in (item.rsplit(" ", 1) for item in ranked)}


@tf_only
def test_keras_and_saved_model_predictions_of_16_bit_pngs_agree_with_the_reference(tmp_path):
    """``kerascnn predict`` on a ``.keras`` file and on its SavedModel: the same lines, and the
    probabilities of a linear model applied to the reference pixels."""
    from kerascnn.export import serving_export

    names = ["w", "x", "y", "z"]
    inputs = keras.Input((H, W, 3))
    logits = keras.layers.Dense(4, use_bias=False)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, logits)
    kernel = np.random.default_rng(5).normal(0, 0.01, (H * W * 3, 4))
    model.layers[-1].set_weights([kernel.astype("float32")])
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "class_names.txt").write_text("\n".join(names) + "\n")
    saved = serving_export(model, tmp_path / "sm", class_names=names)

    files, expected = [], []
    for seed, kind in enumerate(("grey16", "rgb16")):
        v = _samples16(KINDS[kind], seed=13 + seed)
        files.append(str(tmp_path / f"{kind}.png"))
        _write16(tmp_path / f"{kind}.png", v)
        expected.append(_softmax(_expected(v, 3).reshape(-1).astype(np.float64) @ kernel))
        white = _softmax(np.full(H * W * 3, 255.0) @ kernel)
        assert np.abs(white - expected[-1]).max() > 0.05  # a white decode would be seen
    from_keras = inference.predict_files(run / "model.keras", files, top_k=4)
    from_saved = inference.predict_files(saved, files, top_k=4)
    assert from_keras == from_saved
    for line, p in zip(from_keras, expected, strict=True):
        assert _probabilities(line) == pytest.approx(dict(zip(names, p, strict=True)), abs=1e-3)


# --------------------------------------------------------------------------- folder image size
def _write_images(root, sizes, seed=0):
    """PNGs ``root/cN/iM.png`` of the given ``{relative path: (h, w)}``; returns the arrays."""
    rng = np.random.default_rng(seed)
    images = {}
    for rel, (h, w) in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        images[str(path)] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(images[str(path)]).save(path)
    return images


def test_folder_size_is_the_most_common_not_the_first(tmp_path):
    root = tmp_path / "f"
    images = _write_images(
        root, {f"{c}/{i}.png": (16, 16) for c in ("a", "b") for i in range(1, 4)}
    )
    first = root / "a" / "0.png"  # sorted first, 8x8, one colour per channel
    Image.fromarray(np.full((8, 8, 3), (10, 120, 250), np.uint8)).save(first)
    with pytest.warns(UserWarning, match=r"using the most common, 16x16 \(6 of 7 images\)"):
        ds = pipelines.load(root)
    assert ds.image_shape == (16, 16, 3)
    paths = sorted([*images, str(first)])
    for x in (ds.numpy()[0], next(iter(ds.as_tf().batch(7)))[0].numpy()):
        for k, path in enumerate(paths):
            if path == str(first):  # upsampled: still the one colour
                np.testing.assert_array_equal(x[k], np.broadcast_to((10, 120, 250), (16, 16, 3)))
            else:  # already 16x16: untouched
                np.testing.assert_array_equal(x[k], images[path])


def test_an_image_of_another_aspect_ratio_is_refused_in_one_line(tmp_path):
    root = tmp_path / "f"
    sizes = {f"{c}/{i}.png": (16, 16) for c in ("a", "b") for i in range(3)}
    sizes["b/wide.png"] = (16, 64)
    sizes["a/half.png"] = (8, 8)  # same aspect ratio: resized, not refused
    _write_images(root, sizes)
    with pytest.raises(DataValidationError) as error:
        pipelines.load(root)
    message = str(error.value)
    assert "\n" not in message
    assert "1 of 8 images have another aspect ratio" in message
    assert f"{root / 'b' / 'wide.png'} (16x64)" in message and "16x16" in message
    assert "half.png" not in message and "image_size=(height, width)" in message


def test_an_explicit_image_size_stretches_and_says_which_images(tmp_path):
    root = tmp_path / "f"
    sizes = {f"{c}/{i}.png": (16, 16) for c in ("a", "b") for i in range(3)}
    sizes["b/tall.png"] = (48, 12)
    _write_images(root, sizes)
    with pytest.warns(UserWarning, match=r"1 of 7 images change aspect ratio") as record:
        ds = pipelines.load(root, image_size=(8, 8))
    assert f"{root / 'b' / 'tall.png'} (48x12)" in str(record[0].message)
    assert ds.image_shape == (8, 8, 3) and ds.numpy()[0].shape == (7, 8, 8, 3)


def test_a_folder_of_one_size_or_resized_as_asked_loads_without_a_word(tmp_path):
    root = tmp_path / "f"
    _write_images(root, {f"{c}/{i}.png": (12, 6) for c in ("a", "b") for i in range(2)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pipelines.load(root).image_shape == (12, 6, 3)
        assert pipelines.load(root, image_size=(6, 3)).image_shape == (6, 3, 3)


def test_ties_between_sizes_go_to_the_first_in_sorted_order(tmp_path):
    root = tmp_path / "f"
    _write_images(root, {"a/0.png": (10, 10), "a/1.png": (20, 20), "b/0.png": (20, 20),
                         "b/1.png": (10, 10)})  # fmt: skip
    with pytest.warns(UserWarning, match="using the most common, 10x10"):
        assert pipelines.load(root).image_shape == (10, 10, 3)
