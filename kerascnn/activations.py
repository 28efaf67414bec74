"""What an activation function computes, whatever its spelling.

A Keras layer's ``activation`` may be a name (``"softmax"``), Keras's function
(``keras.activations.softmax``) or another library's (``tf.nn.softmax``, whose
``__name__`` is ``softmax_v2``; ``jax.nn.softmax``; a lambda). :func:`activation_name`
recognises it by evaluating it on a fixed probe and comparing with Keras's own activations,
so export and batch-norm folding treat every spelling alike. :func:`outputs_are_probabilities`
tells from a model's output layer whether it outputs logits or probabilities (the task, the
exports and ``predict`` ask it).
"""

from __future__ import annotations

import keras
import numpy as np

from kerascnn.errors import UserInputError

__all__ = ["activation_name", "outputs_are_probabilities"]

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


def _passes_through(layer) -> bool:
    """A layer that leaves its input's values as they are (a linear ``Activation``, such as
    the float32 output layer of a mixed-precision model, or an ``Identity``)."""
    if isinstance(layer, keras.layers.Identity):
        return True
    return isinstance(layer, keras.layers.Activation) and (
        activation_name(layer.activation) == "linear"
    )


def _output_layer(model: keras.Model):
    """The layer that computes ``model``'s (first) output, looking inside nested models and
    through layers that pass their input on unchanged (:func:`_passes_through`)."""
    layer, tensor = model, None
    while True:
        if isinstance(layer, keras.Model):
            outputs = getattr(layer, "outputs", None)
            history = getattr(outputs[0], "_keras_history", None) if outputs else None
            if history is not None and history.operation is not layer:
                layer, tensor = history.operation, outputs[0]
                continue
            if layer.layers:  # a subclassed model: its last layer is the best guess
                layer, tensor = layer.layers[-1], None
                continue
            return None
        if tensor is not None and _passes_through(layer):
            history = tensor._keras_history
            node = layer._inbound_nodes[history.node_index]
            if len(node.input_tensors) == 1:
                tensor = node.input_tensors[0]
                layer = tensor._keras_history.operation
                continue
        return layer


def outputs_are_probabilities(model: keras.Model) -> bool:
    """Whether ``model``'s outputs are probabilities rather than logits.

    A model that knows (a :class:`kerascnn.tasks.ImageClassifier`: its ``output_kind``) is
    asked. Otherwise: whether it ends in a softmax: a ``keras.layers.Softmax``, an
    ``Activation`` or any layer whose activation computes a softmax, however it is spelled
    (``"softmax"``, ``tf.nn.softmax``, ...: :func:`kerascnn.activations.activation_name`),
    also as the last layer of a nested model or followed by layers that pass values through
    (a linear float32 ``Activation`` of mixed precision, an ``Identity``).

    Raises :class:`~kerascnn.errors.UserInputError` when the last layer's activation is
    neither linear nor a softmax (a sigmoid, a ReLU, a function that cannot be recognised):
    its outputs are neither logits nor class probabilities, and a softmax on top would be
    wrong."""
    kind = getattr(model, "output_kind", None)
    if kind in ("logits", "probabilities"):
        return kind == "probabilities"
    last = _output_layer(model)
    if isinstance(last, keras.layers.Softmax):
        return True
    if last is None or not hasattr(last, "activation"):
        return False  # a layer without an activation: its outputs are taken as logits
    name = activation_name(last.activation)
    if name in ("linear", "softmax"):
        return name == "softmax"
    spelled = getattr(last.activation, "__name__", repr(last.activation))
    raise UserInputError(
        f"the model's output layer {last.name!r} ends in the activation {spelled} "
        f"({'a ' + name if name else 'not one Keras knows'}): its outputs are neither logits "
        "nor softmax probabilities; end the model in a linear layer (logits) or a softmax"
    )
