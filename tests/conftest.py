"""Shared pytest set-up.

Markers:
  slow  - ImageNet-size builds and long runs.
  jax   - backend-agnostic tests that CI also runs with KERAS_BACKEND=jax.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
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
