"""Write small ``.keras`` files with the builders of commit 7ae3d7f (before issue 18's
rewrite), so tests can check that files saved before the change still load and predict the
same. Each file holds a model and, in ``legacy_predictions.npz``, its predictions on a fixed
input computed when it was saved.

    python tests/zoo/data/make_legacy_models.py
"""

import pathlib

import keras
import numpy as np

from kerascnn import zoo

HERE = pathlib.Path(__file__).parent

MODELS = {
    "legacy_resnet.keras": lambda: zoo.resnet(
        blocks=(1, 1, 1), filters=(4, 8, 16), drop_path_rate=0.1, name="tiny_resnet"
    ),
    "legacy_convnext.keras": lambda: zoo.convnext(
        channels=(8, 16, 16, 16),
        blocks=(1, 1, 1, 1),
        input_shape=(32, 32, 3),
        num_classes=10,
        name="tiny_convnext",
    ),
    "legacy_mobilenet_v3.keras": lambda: zoo.mobilenet(
        version=3,
        size="small",
        width_multiplier=0.25,
        input_shape=(32, 32, 3),
        num_classes=10,
        name="tiny_mobilenet_v3",
    ),
}


def main():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    predictions = {"inputs": x}
    for filename, build in MODELS.items():
        model = build()
        model.save(HERE / filename)
        predictions[filename] = np.asarray(model.predict(x, verbose=0))
        print(filename, (HERE / filename).stat().st_size)
    np.savez(HERE / "legacy_predictions.npz", **predictions)


if __name__ == "__main__":
    main()
