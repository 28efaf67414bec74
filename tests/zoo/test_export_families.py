"""Every family exports a SavedModel (``serving_export``, batch norms folded) whose logits equal
``model.predict`` on the same uint8 images: one representative per family, at a small input.
TensorFlow only (SavedModel)."""

import numpy as np
import pytest
import tensorflow as tf

import kerascnn

# (registered name, input shape): the cheapest variant of each family at a small input
# (inception_v3 needs at least 75x75).
CASES = [
    ("lenet5", None), ("alexnet", (72, 72, 3)), ("vgg11_bn", (32, 32, 3)), ("resnet20", None),
    ("resnext29_8x64d", None), ("mobilenet_v1", (32, 32, 3)), ("mobilenet_v2", (32, 32, 3)),
    ("googlenet", (64, 64, 3)), ("mobilenet_v3_small", (32, 32, 3)),
    ("efficientnet_b0", (32, 32, 3)), ("convnext_tiny", (32, 32, 3)),
    ("densenet121", (32, 32, 3)), ("inception_v3", (75, 75, 3)),
]  # fmt: skip
# In CI's quick set: the two cheapest (about 1 and 10 s here); the rest (4-55 s each on 2 busy
# cores, 2026-12-01) run with -m slow.
QUICK = {"lenet5", "mobilenet_v3_small"}
SLOW = {name for name, _ in CASES} - QUICK


@pytest.mark.parametrize(
    "name,shape",
    [pytest.param(n, s, id=n, marks=[pytest.mark.slow] if n in SLOW else []) for n, s in CASES],
)
def test_serving_export_equals_predict(name, shape, tmp_path):
    overrides = {"num_classes": 10} | ({"input_shape": shape} if shape else {})
    model = kerascnn.zoo.create(name, **overrides)
    images = np.random.default_rng(0).integers(0, 256, (4, *model.inputs[0].shape[1:]), "uint8")
    expected = model.predict(images.astype("float32"), verbose=0)
    path = kerascnn.export.serving_export(model, tmp_path / name)
    serving = tf.saved_model.load(path).signatures["serving_default"]
    out = serving(images=tf.constant(images))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-4 * scale, rtol=1e-4)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
