"""kerascnn: faithful classic deep CNNs for Keras 3.

import kerascnn
model = kerascnn.zoo.resnet(depth=56)
"""

import contextlib
import os
import sys

__all__ = [
    "__version__",
    "experiments",
    "export",
    "fold",
    "layers",
    "pipelines",
    "tasks",
    "training",
    "zoo",
]

__version__ = "0.1.0"

# TensorFlow's C++ INFO and WARNING lines (oneDNN notices, CPU feature hints) are noise for
# users of a model zoo; errors still print. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras builds, saves and loads functional graphs recursively; the deepest zoo models
# (ResNet-1202: about 4,200 layers in one chain) need more than Python's default of 1,000
# frames, also when a saved model is loaded in a fresh process.
RECURSION_LIMIT = 30_000
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)


def _light_command(argv: list[str]) -> bool:
    """``kerascnn --help`` and ``kerascnn list``: they need neither Keras nor TensorFlow
    (the listing is stored data: :mod:`kerascnn.listing`)."""
    args = list(argv)
    while args and args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args = args[2:] if args[0] == "--backend" else args[1:]
    return bool(args) and args[0] in ("-h", "--help", "list")


def _launched_as_cli() -> bool:
    """True in the ``kerascnn`` console script and in ``python -m kerascnn.cli``."""
    argv = sys.orig_argv
    as_module = any(a == "-m" and b == "kerascnn.cli" for a, b in zip(argv, argv[1:], strict=False))
    return as_module or os.path.basename(sys.argv[0] if sys.argv else "") == "kerascnn"


# Keras reads its backend once, when it is first imported (just below): the command line's
# `--backend` must be applied before that. The command line also holds TensorFlow's native
# start-up lines while it loads (`--debug` shows them).
_holding = contextlib.nullcontext()
if _launched_as_cli() and "keras" not in sys.modules:
    from kerascnn.backends import native_startup_lines_held, select_backend

    try:
        select_backend(sys.argv[1:])
    except ValueError as error:  # an unknown or missing backend: Keras could not even load
        sys.stderr.write(f"kerascnn: error: {error}\n")
        raise SystemExit(2) from None
    except SystemExit:
        pass  # main() reports it
    if "--debug" not in sys.argv[1:]:
        _holding = native_startup_lines_held()

if not (_launched_as_cli() and _light_command(sys.argv[1:])):
    with _holding:
        # Importing these registers kerascnn's layers, optimizers and schedules with Keras, so
        # `keras.models.load_model` finds them after a plain `import kerascnn`.
        from kerascnn import export, fold, layers, pipelines, tasks, training, zoo  # noqa: F401

        if not isinstance(_holding, contextlib.nullcontext) and "tensorflow" in sys.modules:
            sys.modules["tensorflow"].config.list_physical_devices("GPU")  # its notice, held


def __getattr__(name: str):
    # The experiments are not needed to load models: imported on first use.
    if name == "experiments":
        import importlib

        return importlib.import_module("kerascnn.experiments")
    raise AttributeError(f"module 'kerascnn' has no attribute {name!r}")
