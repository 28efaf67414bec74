"""Make TensorFlow impossible to import in this Python process and its children.

Put this folder on ``PYTHONPATH`` (Python imports ``sitecustomize`` at start-up) to run
kerascnn as on a machine without TensorFlow: ``import tensorflow`` (and tensorflow-datasets,
tf2onnx, tf_keras) raises ``ModuleNotFoundError``. tests/conftest.py installs the same blocker
when ``KERASCNN_NO_TENSORFLOW=1``; the CI runs the ``no_tensorflow`` tests that way.
"""

import importlib.abc
import importlib.machinery
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tf2onnx", "tf_keras")


class _RefuseLoader(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked for this test run)")

    def exec_module(self, module):  # never reached
        raise ModuleNotFoundError(module.__name__)


class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    """Answers for the blocked packages with a spec whose loader refuses: ``import`` raises
    ``ModuleNotFoundError``, and ``importlib.util.find_spec`` gives a spec without an origin
    (what PyTorch's dynamo checks before it looks into a package), not the real files."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _RefuseLoader(), origin=None)
        return None


def install() -> None:
    """Block TensorFlow in this process (idempotent); fails if it is already imported."""
    loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    if loaded:
        raise RuntimeError(f"TensorFlow is already imported ({loaded[0]}); block it earlier")
    if not any(isinstance(f, _BlockTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _BlockTensorFlow())


install()
