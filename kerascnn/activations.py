"""What an activation function computes, whatever its spelling.

A Keras layer's ``activation`` may be a name (``"softmax"``), Keras's function
(``keras.activations.softmax``) or another library's (``tf.nn.softmax``, whose
``__name__`` is ``softmax_v2``; ``jax.nn.softmax``; a lambda). :func:`activation_name`
recognises it by evaluating it on a fixed probe and comparing with Keras's own activations,
so export and batch-norm folding treat every spelling alike.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["activation_name"]

# Values that tell the candidates apart: negative, zero, fractional, large, unequal rows.
_PROBE = np.array([[-2.0, 0.0, 0.5, 3.0], [1.0, 1.0, -4.0, 7.5]], dtype="float32")
_CANDIDATES = (
    "linear", "softmax", "log_softmax", "relu", "sigmoid", "tanh", "silu", "gelu", "elu",
    "selu", "softplus", "softsign", "hard_sigmoid", "exponential",
)  # fmt: skip


def activation_name(function) -> str | None:
    """The name of the Keras activation ``function`` computes (``"linear"`` for ``None``),
    or ``None`` when it computes none of them (or fails on a small float32 batch)."""
    if function is None:
        return "linear"
    try:
        got = keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(_PROBE)))
    except Exception:  # another library's function on this backend's tensors, say
        return None
    if got.shape != _PROBE.shape:
        return None
    for name in _CANDIDATES:
        want = keras.ops.convert_to_numpy(
            keras.activations.get(name)(keras.ops.convert_to_tensor(_PROBE))
        )
        if np.allclose(got, want, rtol=1e-5, atol=1e-6):
            return name
    return None
