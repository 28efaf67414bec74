"""Which Keras backend is running and whether TensorFlow is there.

kerascnn's zoo, layers, training loop and CLI run on every Keras 3 backend (TensorFlow, JAX,
PyTorch). A few features need TensorFlow itself, whatever the backend: SavedModel export,
``tf.data`` pipelines (``placement="pipeline"``), tensorflow-datasets sources and
``tf.distribute``. Those import it through :func:`require_tensorflow`, which fails with one
line naming what to install instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile

from kerascnn.errors import UserInputError

__all__ = [
    "backend",
    "BACKENDS",
    "INSTALL_HINT",
    "MissingDependencyError",
    "require_tensorflow",
    "select_backend",
]

BACKENDS = ("tensorflow", "jax", "torch")
INSTALL_HINT = "pip install tensorflow"


class MissingDependencyError(ImportError):
    """A feature needs a package that is not installed; the message says what to install."""


def backend() -> str:
    """The running Keras backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    import keras

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


#: the package each backend imports, and how to install it
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
BACKEND_INSTALL = {
    "tensorflow": INSTALL_HINT,
    "jax": "pip install 'kerascnn[jax]'",
    "torch": "pip install 'kerascnn[torch]'",
}


def check_backend(name: str | None, where: str) -> None:
    """``UserInputError`` in one line when ``name`` (from ``where``: ``--backend`` or the
    ``KERAS_BACKEND`` variable) is not a backend kerascnn runs on, or is not installed."""
    if name is None or "keras" in sys.modules:
        return
    if name not in BACKENDS:
        raise UserInputError(
            f"{where}={name!r} is not a Keras backend kerascnn runs on; use one of "
            f"{', '.join(BACKENDS)}"
        )
    if importlib.util.find_spec(BACKEND_PACKAGES[name]) is None:
        raise UserInputError(
            f"{where}={name!r}: {BACKEND_PACKAGES[name]} is not installed in this environment "
            f"({BACKEND_INSTALL[name]})"
        )


def select_backend(argv: list[str]) -> str | None:
    """Set ``KERAS_BACKEND`` from a ``--backend NAME`` option in ``argv`` (the command line's)
    before Keras is imported; return the name, or ``None`` when the option is absent.
    ``UserInputError`` for a backend other than the one already loaded in this process (Keras
    picks it once, at import)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--backend", choices=BACKENDS)
    known, _ = parser.parse_known_args(argv)
    if known.backend is None:
        check_backend(os.environ.get("KERAS_BACKEND"), "KERAS_BACKEND")
        return None
    check_backend(known.backend, "--backend")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != known.backend:
            raise UserInputError(
                f"--backend {known.backend}: Keras is already running on {loaded} in this process"
            )
    os.environ["KERAS_BACKEND"] = known.backend
    return known.backend


# TensorFlow's native start-up lines: absl's notice, INFO / WARNING lines (oneDNN, CUDA
# drivers, CPU features) and the CUDA initialisation error of a machine without a GPU.
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|E\d{4} [\d:.]+ +\d+ \S+:\d+\] .*(cuInit|CUDA|cuda)"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)


@contextlib.contextmanager
def native_startup_lines_held():
    """Hold file descriptor 2 while the block runs (importing TensorFlow through Keras):
    the lines its native libraries print there, before their logging is set up (so
    ``TF_CPP_MIN_LOG_LEVEL`` does not reach them), are dropped when they are start-up noise
    (:data:`_NATIVE_NOISE`); every other line is written to stderr when the block ends, and
    everything when it raises: a real error is never hidden. The CLI holds them unless
    ``--debug`` is given."""
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.seek(0)
        lines = held.read().decode(errors="replace").splitlines(keepends=True)
        held.close()
        kept = [line for line in lines if failed or not _NATIVE_NOISE.match(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
