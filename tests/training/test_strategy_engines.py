"""Which distribution engine each backend has, and the one-line answer for the others:
tf.distribute on TensorFlow (``mirrored``, ``multiworker``), keras.distribution on JAX
(``data-parallel``), none on PyTorch. Runs in every backend's CI job."""

import keras
import numpy as np
import pytest

from kerascnn.errors import UserInputError
from kerascnn.training.distribute import fit_distributed, resolve_for_backend

pytestmark = [pytest.mark.jax, pytest.mark.torch]
BACKEND = keras.backend.backend()


def _refusal(strategy) -> str:
    with pytest.raises(UserInputError) as error:
        resolve_for_backend(strategy)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_each_backend_names_its_engine():
    if BACKEND == "tensorflow":
        message = _refusal("data-parallel")
        assert "keras.distribution on the JAX backend" in message
        assert "tf.distribute: --strategy mirrored" in message and "multiworker" in message
    elif BACKEND == "jax":
        for name in ("mirrored", "multiworker"):
            message = _refusal(name)
            assert "tf.distribute" in message and "--strategy data-parallel" in message
        dist = resolve_for_backend("data-parallel")
        assert isinstance(dist, keras.distribution.DataParallel)
        assert dist.batch_norm == "replica"
        assert resolve_for_backend("data-parallel", norm="sync_batch").batch_norm == "global"
        assert resolve_for_backend("none") is None
    else:
        for name in ("data-parallel", "mirrored", "multiworker"):
            message = _refusal(name)
            assert f"KERAS_BACKEND={BACKEND}" in message and "no distribution engine" in message
        assert resolve_for_backend("auto") is None
    with pytest.raises(UserInputError, match="strategy must be one of"):
        resolve_for_backend("horovod")


def test_fit_distributed_refuses_unknown_options():
    with pytest.raises(UserInputError, match=r"fit_distributed\(\) has no option 'epochs'"):
        fit_distributed(None, np.zeros(1), strategy="none", epochs=3)
