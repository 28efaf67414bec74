"""Sources: tfds (mocked), npz, image folders, the bundled cifar10-sample."""

import hashlib
import io
import json
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from kerascnn import pipelines
from kerascnn.pipelines import sources

# The bundled sample, made by scripts/make_cifar10_sample.py (reproducible byte for byte).
SAMPLE_SHA256 = "26cad957ab1b89989f5b48fb7ec320545a69a981aab02512b5bc048e99bf5386"
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


# --------------------------------------------------------------------------- tfds
def test_tfds_source_through_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        ds = pipelines.load("cifar10", split="train", data_dir=tmp_path)
        assert len(ds) == 40 and ds.image_shape == (32, 32, 3) and ds.num_classes == 10
        assert ds.info.stats_source == "published" and len(ds.mean) == 3
        xs, ys = ds.numpy()
        ref = tfds.load("cifar10", split="train", data_dir=tmp_path, as_supervised=True)
        ref_x = np.stack([x.numpy() for x, _ in ref])
        np.testing.assert_array_equal(xs, ref_x)
        np.testing.assert_array_equal(ys, ds.labels)
        # carved validation part: the filter path of tfds subsets
        tr = pipelines.load("cifar10", data_dir=tmp_path, validation_fraction=0.25, seed=3)
        va = pipelines.load(
            "cifar10", split="validation", data_dir=tmp_path, validation_fraction=0.25, seed=3
        )
        assert len(tr) == 30 and len(va) == 10
        assert not set(tr.indices) & set(va.indices)
        np.testing.assert_array_equal(va.numpy()[0], ref_x[va.indices])


def test_tfds_missing_data_fails_fast_with_instructions(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    start = time.monotonic()
    with pytest.raises(pipelines.DataNotFoundError) as err:
        pipelines.load("cifar100", data_dir=tmp_path)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "'cifar100'" in msg and str(tmp_path) in msg
    assert "tfds build cifar100" in msg and "download=True" in msg
    assert "'cifar10-sample'" in msg  # names the local sources


def test_tfds_unknown_name_and_variable_size(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(
        ValueError, match="neither 'cifar10-sample'.*not_a_dataset_xyz|not_a_dataset_xyz"
    ):
        pipelines.load("not_a_dataset_xyz", data_dir=tmp_path)
    with pytest.raises(ValueError, match="vary in size; pass image_size"):
        pipelines.load("imagenette", data_dir=tmp_path)


# --------------------------------------------------------------------------- npz
def _write_npz(path, n=30, classes=3, **extra):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    y = (np.arange(n) % classes).astype(np.uint8)
    np.savez(path, x=x, y=y, **extra)
    return x, y


def test_npz_source_small_file(tmp_path):
    x, y = _write_npz(tmp_path / "d.npz", class_names=np.array(["a", "b", "c"]))
    ds = pipelines.load(tmp_path / "d.npz")
    assert ds.class_names == ("a", "b", "c") and ds.image_shape == (8, 8, 3)
    xs, ys = ds.numpy()
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    assert ds.mean == pytest.approx(tuple(x.reshape(-1, 3).mean(0)))
    assert ds.std == pytest.approx(tuple(x.reshape(-1, 3).std(0)))
    # resize
    small = pipelines.load(tmp_path / "d.npz", image_size=(4, 6))
    assert small.image_shape == (4, 6, 3) and small.numpy()[0].shape == (30, 4, 6, 3)


def test_npz_per_split_keys_grey_images_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "k.npz",
        x_train=rng.integers(0, 255, (6, 5, 5), dtype=np.uint8),
        y_train=np.array([[0], [1], [0], [1], [0], [1]]),
        x_test=np.zeros((2, 5, 5), np.uint8),
        y_test=np.array([1, 0]),
    )
    assert pipelines.load(tmp_path / "k.npz").image_shape == (5, 5, 1)
    assert len(pipelines.load(tmp_path / "k.npz", split="test")) == 2
    with pytest.raises(ValueError, match=r"no arrays for split='validation'.*x_test"):
        pipelines.load(tmp_path / "k.npz", split="validation")
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 4, 4, 3), np.uint8), y=np.eye(3))
    with pytest.raises(ValueError, match=r"y must be non-negative integer class ids.*\(3, 3\)"):
        pipelines.load(tmp_path / "bad.npz")
    with pytest.raises(pipelines.DataNotFoundError, match="no such file"):
        pipelines.load(tmp_path / "missing" / "nothing.npz")


@pytest.mark.parametrize("suffix", ["val", "valid", "validation"])
def test_npz_own_validation_split_is_used_not_carved(tmp_path, suffix):
    """x_val / y_val in the file are the validation data (for `kerascnn train` / `evaluate`,
    which always pass validation_fraction); the whole x / y trains; a warning says so."""
    from kerascnn.training.run import load_train_val

    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 128, (12, 6, 6, 3), dtype=np.uint8), np.arange(12) % 3
    x_val = rng.integers(128, 256, (5, 6, 6, 3), dtype=np.uint8)  # values x never has
    y_val = np.array([2, 0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", x=x, y=y, **{f"x_{suffix}": x_val, f"y_{suffix}": y_val})
    said = rf"own validation split \(x_{suffix} / y_{suffix}\).*validation_fraction=0.25 is not"
    with pytest.warns(UserWarning, match=said):
        parts = [
            (
                pipelines.load(tmp_path / "d.npz", "train", validation_fraction=0.25, seed=1),
                pipelines.load(tmp_path / "d.npz", "validation", validation_fraction=0.25, seed=1),
            ),
            load_train_val(str(tmp_path / "d.npz"), 0.25, 1),
        ]
    for train, val in parts:
        np.testing.assert_array_equal(val.numpy()[0], x_val)
        np.testing.assert_array_equal(val.numpy()[1], y_val)
        np.testing.assert_array_equal(train.numpy()[0], x)
        np.testing.assert_array_equal(train.numpy()[1], y)
        assert val.info.split == "validation" and train.class_names == val.class_names
    # without one, the validation part is still carved from x / y (stratified: 1 per class)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    val = pipelines.load(tmp_path / "plain.npz", "validation", validation_fraction=0.25, seed=1)
    assert len(val) == 3 and sorted(val.labels) == [0, 1, 2]


def test_npz_source_real_cifar(cifar_npz):
    ds = pipelines.load(cifar_npz)
    assert len(ds) == 50000 and ds.class_names == CIFAR_CLASSES
    assert np.bincount(ds.labels).tolist() == [5000] * 10
    with np.load(cifar_npz) as d:
        first = d["x"][:3]
    np.testing.assert_array_equal(next(iter(ds.as_tf().batch(3)))[0].numpy(), first)


# --------------------------------------------------------------------------- image folders
def _write_folder(root, per_class=4):
    from PIL import Image

    rng = np.random.default_rng(2)
    images = {}
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            path = root / name / f"{i:02d}.png"
            Image.fromarray(img).save(path)
            images[str(path)] = (img, c)
    (root / "README.txt").write_text("top-level files are ignored")
    (root / "cat" / ".DS_Store").write_bytes(b"\x00")
    return images


def test_image_folder_source_small(tmp_path):
    images = _write_folder(tmp_path / "f")
    ds = pipelines.load(tmp_path / "f")
    assert ds.class_names == ("cat", "dog") and ds.image_shape == (10, 12, 3) and len(ds) == 8
    xs, ys = ds.numpy()
    expected = [images[p] for p in sorted(images)]
    np.testing.assert_array_equal(xs, np.stack([e[0] for e in expected]))  # PNG: exact
    np.testing.assert_array_equal(ys, [e[1] for e in expected])
    resized = pipelines.load(tmp_path / "f", image_size=(5, 6))
    assert resized.numpy()[0].shape == (8, 5, 6, 3)
    grey = pipelines.load(tmp_path / "f", channels=1)
    assert grey.image_shape == (10, 12, 1)


def _add_bad_files(root):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, format="JPEG")
    corrupt = root / "dog" / "broken.jpg"
    corrupt.write_bytes(buf.getvalue()[:40])  # a JPEG header, then nothing
    stray = root / "cat" / "notes.txt"
    stray.write_text("not an image")
    return str(corrupt), str(stray)


def test_image_folder_bad_files_error_names_each_file(tmp_path):
    _write_folder(tmp_path / "f")
    corrupt, stray = _add_bad_files(tmp_path / "f")
    with pytest.raises(pipelines.BadImageFileError) as err:
        pipelines.load(tmp_path / "f")
    assert sorted(err.value.paths) == sorted([corrupt, stray])
    assert (
        corrupt in str(err.value) and stray in str(err.value) and "2 of 10 files" in str(err.value)
    )
    assert "on_bad_file='skip'" in str(err.value)


def test_image_folder_bad_files_skip_warns_and_records(tmp_path):
    images = _write_folder(tmp_path / "f")
    corrupt, stray = _add_bad_files(tmp_path / "f")
    with pytest.warns(UserWarning, match="skipped 2 of 10 files") as rec:
        ds = pipelines.load(tmp_path / "f", on_bad_file="skip")
    assert corrupt in str(rec[0].message) and stray in str(rec[0].message)
    assert sorted(ds.info.skipped_files) == sorted([corrupt, stray])
    assert len(ds) == len(images) == 8
    assert len(ds.numpy()[0]) == 8
    with pytest.raises(
        ValueError,
        match="on_bad_file must be one of 'error', 'skip'; received on_bad_file='ignore'",
    ):
        pipelines.load(tmp_path / "f", on_bad_file="ignore")
    with pytest.raises(
        ValueError,
        match="load\\(\\) has no option 'on_bad_files' \\(received on_bad_files='skip'\\); "
        "its options are: data_dir, download, channels, on_bad_file",
    ):
        pipelines.load(tmp_path / "f", on_bad_files="skip")


def test_image_folder_real_jpeg_sample(jpeg_sample_dir):
    ds = pipelines.load(jpeg_sample_dir)
    assert ds.class_names == CIFAR_CLASSES and len(ds) == 1000 and ds.image_shape == (32, 32, 3)
    assert np.bincount(ds.labels).tolist() == [100] * 10
    x, y = next(iter(ds.as_tf().batch(1000)))
    assert x.dtype == tf.uint8 and 100 < float(tf.reduce_mean(tf.cast(x, tf.float32))) < 140
    assert ds.info.skipped_files == ()


# --------------------------------------------------------------------------- bundled sample
def test_sample_file_checksum_and_metadata():
    data = sources.SAMPLE_FILE.read_bytes()
    assert len(data) <= 8 * 2**20
    assert hashlib.sha256(data).hexdigest() == SAMPLE_SHA256
    meta = pipelines.sample_metadata()
    assert meta["sha256"] == SAMPLE_SHA256 and meta["seed"] == 20240505
    assert (
        meta["source_sha256"] == "f348f55605d4a0c2121da2f074316479210043e1d2a900189a61a9be751bfdca"
    )
    assert json.loads((sources.DATA_DIR / "cifar10_sample.json").read_text())[
        "class_names"
    ] == list(CIFAR_CLASSES)


def test_sample_loads_offline_balanced_and_disjoint(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("cifar10-sample tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("KERASCNN_SHARED", "/nonexistent")
    train = pipelines.load("cifar10-sample")
    val = pipelines.load("cifar10-sample", split="validation")
    assert (len(train), len(val)) == (2000, 500)
    assert np.bincount(train.labels).tolist() == [200] * 10
    assert np.bincount(val.labels).tolist() == [50] * 10
    assert train.class_names == CIFAR_CLASSES and train.info.stats_source == "recorded"
    assert val.mean == train.mean  # validation uses the train part's statistics
    batch = next(
        iter(pipelines.build(train, batch_size=16, augment="flip", normalize="none").dataset)
    )
    assert batch[0].shape == (16, 32, 32, 3)
    with np.load(sources.SAMPLE_FILE) as d:
        assert not set(d["index_train"]) & set(d["index_val"])
        assert len(set(d["index_train"])) == 2000


def test_sample_images_are_the_recorded_cifar_training_images(cifar_npz):
    with np.load(cifar_npz) as d:
        x, y = d["x"], d["y"]
    with np.load(sources.SAMPLE_FILE) as s:
        for part in ("train", "val"):
            idx = s[f"index_{part}"]
            np.testing.assert_array_equal(s[f"x_{part}"], x[idx])
            np.testing.assert_array_equal(s[f"y_{part}"], y[idx])
