"""Which Keras backend is running and whether TensorFlow is there.

kerascnn's zoo, layers, training loop and CLI run on every Keras 3 backend (TensorFlow, JAX,
PyTorch). A few features need TensorFlow itself, whatever the backend: SavedModel export,
``tf.data`` pipelines (``placement="pipeline"``), tensorflow-datasets sources and
``tf.distribute``. Those import it through :func:`require_tensorflow`, which fails with one
line naming what to install instead of a traceback.
"""

from __future__ import annotations

import importlib

import keras

INSTALL_HINT = "pip install tensorflow"


class MissingDependencyError(ImportError):
    """A feature needs a package that is not installed; the message says what to install."""


def backend() -> str:
    """The running Keras backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return keras.backend.backend()


def require_tensorflow(feature: str):
    """Import and return TensorFlow for ``feature`` (e.g. ``"SavedModel export"``), or raise
    :class:`MissingDependencyError` with one line naming what to install."""
    try:
        return importlib.import_module("tensorflow")
    except ImportError:
        raise MissingDependencyError(
            f"{feature} needs TensorFlow, which is not installed in this environment "
            f"(Keras backend: {backend()}): {INSTALL_HINT}"
        ) from None
