"""Augmentation placement: in tf.data vs in the model, same layers, same distribution."""

import keras
import numpy as np
import pytest

from kerascnn import pipelines
from kerascnn.tasks import ImageClassifier, input_layers

scipy_stats = pytest.importorskip("scipy.stats")

N, SIZE, PAD = 2048, 24, 4


@pytest.fixture
def noise_source(tmp_path):
    """N copies of one random-noise image: every flip / shift of it is distinguishable."""
    img = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    np.savez(tmp_path / "n.npz", x=np.broadcast_to(img, (N, SIZE, SIZE, 3)), y=np.arange(N) % 2)
    return img.astype(np.float32), pipelines.load(tmp_path / "n.npz")


def _identify(out, img):
    """(flip, dy, dx) of each output image, matched on the centre (independent of the fill)."""
    c = slice(PAD + 2, SIZE - PAD - 2)
    keys = np.full(len(out), -1)
    for f in (0, 1):
        src = img[:, ::-1] if f else img
        for dy in range(-PAD, PAD + 1):
            for dx in range(-PAD, PAD + 1):
                cand = src[c.start + dy : c.stop + dy, c.start + dx : c.stop + dx]
                hit = np.all(out[:, c, c] == cand, axis=(1, 2, 3))
                keys[hit] = (f * (2 * PAD + 1) + dy + PAD) * (2 * PAD + 1) + dx + PAD
    assert (keys >= 0).all(), "an output is not a flip + shift of the input"
    return keys


def _transform_counts(placement, src):
    img, ds = src
    layers = input_layers(ds, "flip,padcrop", normalize="none", seed=11)
    assert len(layers.augmentation) == 2 and not layers.preprocessing
    in_pipeline = layers.augmentation if placement == "pipeline" else None
    pipe = pipelines.build(ds, batch_size=128, augment=in_pipeline, normalize="none", seed=11)
    if placement == "model":
        assert pipe.augment_layers == []
        front = keras.Sequential(layers.augmentation)
        outs = [front(x, training=True).numpy() for x, _ in pipe.dataset]
    else:
        assert pipe.augment_layers == layers.augmentation
        outs = [x.numpy() for x, _ in pipe.dataset]
    keys = _identify(np.concatenate(outs), img)
    return np.bincount(keys, minlength=2 * (2 * PAD + 1) ** 2)


def test_pipeline_and_model_placement_same_distribution_of_transforms(noise_source):
    a = _transform_counts("pipeline", noise_source)
    b = _transform_counts("model", noise_source)
    cells = len(a)  # 2 flips x 9 x 9 shifts, each expected N / 162 ~ 12.6 times
    # both placements follow the uniform law of the layers ...
    for counts in (a, b):
        assert scipy_stats.chisquare(counts).pvalue > 1e-3
        assert abs(counts[: cells // 2].sum() - N / 2) < 4 * np.sqrt(N / 4)  # flip rate 1/2
    # ... and the same law as each other (two-sample chi-square on the 162 cells)
    assert scipy_stats.chi2_contingency(np.stack([a, b])).pvalue > 1e-3


def test_training_either_placement_reaches_comparable_loss():
    train = pipelines.load("cifar10-sample")
    val = pipelines.load("cifar10-sample", split="validation")
    losses = {}
    for placement in ("pipeline", "model"):
        keras.utils.set_random_seed(0)
        layers = input_layers(train, "flip,padcrop", seed=3)
        in_pipeline = layers.augmentation if placement == "pipeline" else None
        pipe = pipelines.build(train, batch_size=64, augment=in_pipeline, normalize="none", seed=3)
        images = keras.Input(train.image_shape)
        x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(images)
        x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
        model = ImageClassifier(
            keras.Model(images, x), 10, preprocessing=layers.preprocessing,
            augmentation=layers.augmentation if placement == "model" else [],
        )  # fmt: skip
        model.compile(
            keras.optimizers.Adam(3e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=None,  # evaluate returns the loss alone
        )
        val_pipe = pipelines.build(val, batch_size=250, shuffle=False, normalize="none")
        before = model.evaluate(val_pipe.dataset, verbose=0)
        model.fit(pipe.dataset.take(25), epochs=1, verbose=0)
        losses[placement] = (before, model.evaluate(val_pipe.dataset, verbose=0))
    (b_p, a_p), (b_m, a_m) = losses["pipeline"], losses["model"]
    assert abs(b_p - b_m) < 1e-4  # same initial weights
    assert a_p < b_p - 0.1 and a_m < b_m - 0.1  # both learned
    assert abs(a_p - a_m) < 0.1, losses
