"""Shared pytest set-up.

Markers:
  slow  - ImageNet-size builds and long runs.
  jax   - backend-agnostic tests that CI also runs with KERAS_BACKEND=jax.
"""

import csv
import importlib.util
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# KERASCNN_NO_TENSORFLOW=1: run as on a machine without TensorFlow. `import tensorflow` then
# fails in this process and in the subprocesses the tests start (PYTHONPATH carries the
# blocker, tests/no_tensorflow/sitecustomize.py).
NO_TENSORFLOW = os.environ.get("KERASCNN_NO_TENSORFLOW") == "1"
if NO_TENSORFLOW:
    _blocker_dir = pathlib.Path(__file__).resolve().parent / "no_tensorflow"
    _spec = importlib.util.spec_from_file_location(
        "_no_tensorflow", _blocker_dir / "sitecustomize.py"
    )
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_blocker_dir), os.environ.get("PYTHONPATH")) if p
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED = pathlib.Path(os.environ.get("KERASCNN_SHARED", SHARED))
CIFAR_NPZ = SHARED / "data" / "cifar10" / "train.npz"
JPEG_SAMPLE = SHARED / "data" / "cifar10-jpeg-sample"


_IMPORTS_TENSORFLOW = re.compile(r"^(import|from) tensorflow", re.MULTILINE)


def pytest_ignore_collect(collection_path, config):
    """Without TensorFlow, test modules that import it at the top are not collected (their
    tests are the TensorFlow-only ones: tf.data, SavedModel, tf.distribute)."""
    if NO_TENSORFLOW and collection_path.suffix == ".py" and collection_path.is_file():
        return bool(_IMPORTS_TENSORFLOW.search(collection_path.read_text())) or None
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``tensorflow_pass_only`` (backend-independent checks too slow to build on
    JAX or PyTorch) are deselected, not skipped, on the other backends."""
    if keras.backend.backend() == "tensorflow":
        return
    kept = [item for item in items if item.get_closest_marker("tensorflow_pass_only") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "jax: backend-agnostic test, also run with KERAS_BACKEND=jax"
    )


def _shared(path: pathlib.Path, what: str) -> pathlib.Path:
    """``path`` if it exists; otherwise fail under CI (``CI`` set, as CI services do: the
    shared data must be there) and skip elsewhere."""
    if not path.exists():
        message = f"{what} not found at {path} (set KERASCNN_SHARED)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message}; CI={os.environ['CI']} requires it", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def cifar_npz():
    """Path of the shared real CIFAR-10 training split; fails under CI, skips elsewhere."""
    return _shared(CIFAR_NPZ, "shared CIFAR-10 data")


@pytest.fixture
def jpeg_sample_dir():
    """Path of the shared CIFAR-10 JPEG sample folder; fails under CI, skips elsewhere."""
    return _shared(JPEG_SAMPLE, "shared JPEG sample")


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


class CrashAfterEpoch(keras.callbacks.Callback):
    """Callback simulating a crash (``KeyboardInterrupt``) at the end of epoch ``epoch``."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"simulated crash after epoch {epoch}")


def sign_arrays(n, seed, random_labels=False):
    """``(x, y)``: ``n`` float32 8-vectors and the label ``x[:, 0] > 0`` (or random labels)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    if random_labels:
        y = rng.integers(0, 2, size=n)
    return x, y


def write_class_npz(path, n, seed=0):
    """A tiny learnable 4-class data set of ``n`` 32x32 RGB uint8 images (brightness encodes
    the class), saved as ``x`` / ``y`` in ``path`` for ``kerascnn train --dataset``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("uint8")
    x = (rng.uniform(0, 60, size=(n, 32, 32, 3)) + 40 * y[:, None, None, None]).astype("uint8")
    np.savez(path, x=x, y=y)


def write_brightness_npz(path, n):
    """Three learnable classes (``low``, ``mid``, ``high``: brightness encodes the class) of
    ``n`` 32x32 RGB uint8 images with their class names, saved in ``path``; returns ``path``."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=n).astype("uint8")
    x = (rng.uniform(0, 80, size=(n, 32, 32, 3)) + 60 * y[:, None, None, None]).astype("uint8")
    np.savez(path, x=x, y=y, class_names=np.array(["low", "mid", "high"]))
    return path


def epochs_logged(out):
    """The epochs recorded so far in the ``log.csv`` of the training run in ``out`` (complete
    lines only: the run may be writing the file while this reads it)."""
    log = out / "log.csv"
    if not log.exists():
        return []
    lines = log.read_text().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    return [int(row["epoch"]) for row in csv.DictReader(complete)]


# --------------------------------------------------------------------------- multi-process runs
def free_ports(n: int) -> list[int]:
    """``n`` TCP ports free on 127.0.0.1 now (for a cluster of local processes)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stop_processes(procs) -> None:
    """SIGKILL those of ``procs`` still running and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def kill_second_when(procs, ready, log: pathlib.Path, timeout: float) -> None:
    """Wait until ``ready()`` (e.g. the first epoch's backup is written) while every process
    of ``procs`` runs, then SIGKILL ``procs[1]``, as a machine failure would. Fails with the
    tail of ``log`` (the first process's output) if one exits first or ``timeout`` passes."""
    deadline = time.time() + timeout
    while not ready():
        assert time.time() < deadline, f"not ready after {timeout} s: {log.read_text()[-3000:]}"
        assert all(p.poll() is None for p in procs), log.read_text()[-3000:]
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait(timeout=30)
