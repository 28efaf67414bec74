"""build(): determinism, normalization in the pipeline vs the task's layer, integer labels,
the task's MixUp / CutMix (input_layers), errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn import pipelines
from kerascnn.tasks import input_layers


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8)
    y = np.arange(96) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return pipelines.load(tmp_path / "d.npz")


def _epochs(pipe, n=2):
    return [[(x.numpy(), y.numpy()) for x, y in pipe.dataset] for _ in range(n)]


def test_deterministic_same_seed_same_batches_in_same_order(small):
    kw = dict(batch_size=32, augment="flip,padcrop:2", seed=5, normalize="standardize")
    a, b = _epochs(pipelines.build(small, **kw)), _epochs(pipelines.build(small, **kw))
    for ea, eb in zip(a, b, strict=True):
        for (xa, ya), (xb, yb) in zip(ea, eb, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0][0], a[1][0][0])  # reshuffled / re-augmented each epoch
    c = _epochs(pipelines.build(small, **{**kw, "seed": 6}), 1)
    assert not np.array_equal(a[0][0][0], c[0][0][0])


def test_no_shuffle_keeps_order_and_every_example_once(small):
    pipe = pipelines.build(small, batch_size=40, shuffle=False, normalize="none")
    xs = np.concatenate([x.numpy() for x, _ in pipe.dataset])
    np.testing.assert_array_equal(xs, small.numpy()[0].astype(np.float32))
    shuffled = pipelines.build(small, batch_size=40, normalize="none")
    ys = np.concatenate([y.numpy() for _, y in shuffled.dataset])
    assert (
        sorted(ys.tolist()) == sorted(small.labels.tolist())
        and ys.tolist() != small.labels.tolist()
    )


def test_normalization_pipeline_equals_model_layer_and_serializes(small, tmp_path):
    raw = small.numpy()[0][:16].astype(np.float32)
    with pytest.warns(FutureWarning, match=r"default becomes normalize='none'"):
        in_pipe = pipelines.build(small, batch_size=16, shuffle=False)  # standardized
    raw_pipe = pipelines.build(small, batch_size=16, shuffle=False, normalize="none")
    layers = input_layers(small)  # the task's standardization of the same data
    x_pipe = next(iter(in_pipe.dataset))[0].numpy()
    x_raw = next(iter(raw_pipe.dataset))[0].numpy()
    np.testing.assert_array_equal(x_raw, raw)
    mean, std = np.array(small.mean), np.array(small.std)
    np.testing.assert_allclose(x_pipe, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    inputs = keras.Input(raw.shape[1:])
    assert len(layers.preprocessing) == 1 and not layers.augmentation and layers.mixer is None
    assert layers.normalization == in_pipe.normalization
    model = keras.Model(inputs, layers.preprocessing[0](inputs))
    np.testing.assert_allclose(model(raw).numpy(), x_pipe, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(raw).numpy(), x_pipe, rtol=1e-5, atol=1e-5)
    scaled = next(
        iter(pipelines.build(small, batch_size=16, shuffle=False, normalize="scale").dataset)
    )[0]
    np.testing.assert_allclose(scaled.numpy(), raw / 255.0, rtol=1e-6)
    # reuse of a training pipeline's normalization
    again = pipelines.build(small, normalize=in_pipe.normalization, mean=None)
    assert again.normalization == in_pipe.normalization


def test_integer_labels_and_the_tasks_mixup_cutmix_label_weights(small):
    labels = next(
        iter(pipelines.build(small, batch_size=8, shuffle=False, normalize="none").dataset)
    )[1]
    np.testing.assert_array_equal(labels.numpy(), small.labels[:8])
    # 64 images whose pixels all equal their own class id (64 classes): after mixing, an
    # image's mean pixel must equal its label-weighted mean class id, i.e. the label weights
    # equal the image weights (MixUp) and the pasted area fraction (CutMix).
    n = 64
    x = np.repeat(np.arange(n, dtype=np.uint8), 4 * 4 * 3).reshape(n, 4, 4, 3)
    y = np.arange(n, dtype=np.int32)
    info = pipelines.DatasetInfo("ids", "train", tuple(str(i) for i in range(n)), (4, 4, 3))
    ds = pipelines.Dataset(info, lambda idx: tf.data.Dataset.from_tensor_slices((x, y)), y)
    pipe = pipelines.build(ds, batch_size=n, shuffle=False, normalize="none")
    for kind in ("mixup", "cutmix"):
        mixer = input_layers(ds, f"{kind}:1.0", normalize="none", seed=2).mixer
        assert type(mixer).__name__ == {"mixup": "MixUp", "cutmix": "CutMix"}[kind]
        assert mixer.alpha == 1.0
        x_batch, y_batch = (t.numpy() for t in next(iter(pipe.dataset)))
        np.testing.assert_array_equal(y_batch, y)  # the pipeline leaves the labels alone
        mixed = mixer(x_batch, np.eye(n, dtype="float32")[y_batch], training=True)
        xb, yb = (keras.ops.convert_to_numpy(t) for t in mixed)
        np.testing.assert_allclose(yb.sum(1), 1.0, atol=1e-6)
        assert (yb.max(1) < 1).sum() > n // 2  # most images were mixed with another
        np.testing.assert_allclose(xb.reshape(n, -1).mean(1), yb @ np.arange(n), atol=1e-3)
        if kind == "cutmix":  # pasted, not blended: every pixel is one of the two ids
            partner = np.argsort(yb, 1)[:, -2]
            for i in range(n):
                assert set(np.unique(xb[i])) <= {float(i), float(partner[i])}


def test_build_errors_name_the_argument(small):
    for moved in ("placement", "normalize_in", "mix_in", "labels"):
        with pytest.raises(
            ValueError,
            match=rf"build\(\) no longer takes {moved}= \(received {moved}='model'\): the "
            "pipeline returns integer labels and the model's layers are the task's",
        ):
            pipelines.build(small, **{moved: "model"})
    with pytest.raises(
        ValueError, match="MixUp mixes labels, which the pipeline leaves as integer class ids"
    ):
        pipelines.build(small, augment="flip,mixup", normalize="none")
    with pytest.raises(
        ValueError,
        match=r"build\(\) has no option 'shuffle_buffr' \(received shuffle_buffr=8\); its "
        "options are: mean, std, drop_remainder, deterministic, shuffle_buffer",
    ):
        pipelines.build(small, shuffle_buffr=8)
    with pytest.raises(ValueError, match="unknown augment item 'blur:3'"):
        pipelines.build(small, augment="flip,blur:3", normalize="none")
    with pytest.raises(
        ValueError, match="batch_size must be an integer >= 1; received batch_size=0"
    ):
        pipelines.build(small, batch_size=0)
    with pytest.raises(ValueError, match="normalize must be one of"):
        pipelines.build(small, normalize="imagenet")


def test_folder_source_is_cached_and_prefetched(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 10 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = pipelines.load(tmp_path)
    pipe = pipelines.build(ds, batch_size=4, normalize="none")
    first = sorted(
        np.concatenate([x.numpy() for x, _ in pipe.dataset]).reshape(6, -1)[:, 0].tolist()
    )
    for p in tmp_path.glob("*/*.png"):
        p.unlink()  # the cache now serves the second epoch
    second = sorted(
        np.concatenate([x.numpy() for x, _ in pipe.dataset]).reshape(6, -1)[:, 0].tolist()
    )
    assert first == second == [0, 0, 10, 10, 20, 20]


@pytest.mark.parametrize("own_layers", [True, False], ids=["kerascnn-xla", "keras-graph"])
def test_augmenter_full_and_last_partial_batches(own_layers):
    """kerascnn layers run as one XLA program for full batches and in the plain graph for
    the smaller last batch; other layers always in the plain graph. Either way every image
    comes out as itself or its mirror image, and both happen."""
    from kerascnn.layers import RandomFlip
    from kerascnn.pipelines.build import augmenter

    flip = RandomFlip("horizontal", seed=3) if own_layers else keras.layers.RandomFlip("horizontal")
    x = np.random.default_rng(1).integers(0, 256, (10, 6, 5, 3)).astype("float32")
    fn = augmenter([flip], batch_size=4)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).map(fn)
    outs = [b.numpy() for _ in range(3) for b in ds]
    assert [len(b) for b in outs] == [4, 4, 2] * 3
    flipped = []
    for b, start in zip(outs, [0, 4, 8] * 3, strict=True):
        for i, img in enumerate(b):
            ref = x[start + i]
            same, mirrored = np.array_equal(img, ref), np.array_equal(img, ref[:, ::-1])
            assert same or mirrored
            flipped.append(mirrored)
    assert any(flipped) and not all(flipped)
    assert (fn.__name__ == "augment") == own_layers  # the XLA wrapper, or the plain layers


def test_padcrop_fills_from_the_spec(small):
    """``padcrop:p:fill``: mirror (default), black pixels, or the standardization's mean
    pixel (zeros once standardized: He et al.'s padding)."""
    layer = lambda spec, **kw: input_layers(small, spec, seed=0, **kw).augmentation[0]  # noqa: E731
    assert (layer("padcrop").fill, layer("padcrop:2:symmetric").fill) == ("reflect", "symmetric")
    assert (layer("padcrop:4:zero").fill, layer("padcrop:4:zero").fill_value) == ("constant", 0.0)
    x = small.read(np.arange(len(small))).astype("float64")
    mean = layer("padcrop:4:mean")
    assert mean.fill == "constant"
    np.testing.assert_allclose(mean.fill_value, x.mean(axis=(0, 1, 2)), rtol=1e-4)
    given = layer("padcrop:4:mean", mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])
    assert given.fill_value == [1.0, 2.0, 3.0]
    with pytest.raises(
        ValueError, match=r"padcrop fill must be one of reflect, symmetric, zero, mean"
    ):
        layer("padcrop:4:black")
