"""Shared pytest set-up.

Markers:
  slow  - ImageNet-size builds and long runs.
  jax   - backend-agnostic tests that CI also runs with KERAS_BACKEND=jax.
"""

import csv
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED = pathlib.Path(os.environ.get("KERASCNN_SHARED", SHARED))
CIFAR_NPZ = SHARED / "data" / "cifar10" / "train.npz"
JPEG_SAMPLE = SHARED / "data" / "cifar10-jpeg-sample"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "jax: backend-agnostic test, also run with KERAS_BACKEND=jax"
    )


@pytest.fixture
def cifar_npz():
    """Path of the shared real CIFAR-10 training split, or skip."""
    if not CIFAR_NPZ.exists():
        pytest.skip(f"shared CIFAR-10 data not found at {CIFAR_NPZ} (set KERASCNN_SHARED)")
    return CIFAR_NPZ


@pytest.fixture
def jpeg_sample_dir():
    """Path of the shared CIFAR-10 JPEG sample folder, or skip."""
    if not JPEG_SAMPLE.exists():
        pytest.skip(f"shared JPEG sample not found at {JPEG_SAMPLE} (set KERASCNN_SHARED)")
    return JPEG_SAMPLE


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield


def backend() -> str:
    return keras.backend.backend()


tf_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="needs the TensorFlow backend (tf.data / SavedModel)",
)


class RecordWeights(keras.callbacks.Callback):
    """Callback keeping a copy of the model's weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append([keras.ops.convert_to_numpy(w).copy() for w in self.model.weights])


def write_class_npz(path, n, seed=0):
    """A tiny learnable 4-class data set of ``n`` 32x32 RGB uint8 images (brightness encodes
    the class), saved as ``x`` / ``y`` in ``path`` for ``kerascnn train --dataset``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("uint8")
    x = (rng.uniform(0, 60, size=(n, 32, 32, 3)) + 40 * y[:, None, None, None]).astype("uint8")
    np.savez(path, x=x, y=y)


def epochs_logged(out):
    """The epochs recorded so far in the ``log.csv`` of the training run in ``out`` (complete
    lines only: the run may be writing the file while this reads it)."""
    log = out / "log.csv"
    if not log.exists():
        return []
    lines = log.read_text().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    return [int(row["epoch"]) for row in csv.DictReader(complete)]
