"""Exports of models with augmentation are deterministic and equal model.predict."""

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
