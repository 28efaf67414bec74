"""Monte-Carlo dropout prediction (Gal & Ghahramani 2016) from any functional/Sequential model.

How the passes stay correct (in Keras 3.15, ``model(x, training=True)`` also puts
BatchNormalization in training mode and updates its moving statistics on every pass):

* **Rewiring, not a global training flag.** :func:`mc_model` clones the model's graph with
  ``keras.models.clone_model(..., recursive=True)``; every layer is *reused* (weights are
  shared, nothing is copied) except the dropout layers, which are wrapped in a small layer
  whose ``call`` has no ``training`` argument and calls the dropout layer with
  ``training=True``. The clone then runs with ``training=False``: BatchNormalization (and
  any augmentation layer) stays in inference mode, its moving statistics are untouched, and
  only dropout is stochastic. (Keras's functional ``call`` overrides a node's stored
  ``training=`` with the outer one, hence the argument-less wrapper.)
* **Vectorized passes.** :func:`mc_predict` tiles each input batch ``samples`` times along
  the batch axis and runs one forward pass on ``samples * batch`` rows; dropout draws an
  independent mask for every row, so row ``s * b + i`` is sample ``s`` for example ``i``.
  Layers that draw one mask per *batch* (``mask_per_batch = True``, e.g. DropConnect, or a
  Keras dropout with a batch-1 ``noise_shape``) would give the same mask to every sample;
  for those the passes run one after another instead.

Dropout layers are ``keras.layers.Dropout`` and its subclasses (``SpatialDropout1D/2D/3D``),
``GaussianDropout``, ``AlphaDropout`` and kerascnn's dropout family (``Dropout``,
``MCDropout``, ``SpatialDropout``, ``StochasticDepth``, DropConnect layers). Pass
``predicate`` to choose differently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from kerascnn.checks import check_int
from kerascnn.errors import UserInputError
from kerascnn.layers.dropout import DropoutBase

__all__ = [
    "DROPOUT_TYPES",
    "is_dropout_layer",
    "mc_model",
    "mc_predict",
    "MCPrediction",
    "rewire",
]

DROPOUT_TYPES = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    DropoutBase,
)


def is_dropout_layer(layer) -> bool:
    """True for the layers that :func:`mc_model` switches on (see the module docstring)."""
    return isinstance(layer, DROPOUT_TYPES)


class _AlwaysTraining(keras.layers.Layer):
    """Calls the wrapped layer with ``training=True`` whatever the outer mode (not saved)."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"{layer.name}_mc", **kwargs)
        self.layer = layer

    def call(self, inputs, mask=None, **kwargs):  # a node's training= is ignored
        return self.layer(inputs, training=True)

    def compute_output_shape(self, input_shape):
        return input_shape


def rewire(model: keras.Model, replace: Callable[[keras.layers.Layer], keras.layers.Layer | None]):
    """A clone of ``model``'s graph that reuses every layer, except those for which
    ``replace(layer)`` returns a new layer. Only functional and Sequential models."""

    def clone_function(layer):
        new = replace(layer)
        return layer if new is None else new

    try:
        return keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    except ValueError as error:
        raise UserInputError(
            "model must be a functional or Sequential keras.Model (a subclassed model has no "
            f"graph to rewire); received {type(model).__name__} {model.name!r}: {error}"
        ) from error


def mc_model(model: keras.Model, predicate: Callable | None = None) -> keras.Model:
    """A model sharing ``model``'s weights whose dropout layers are always on and every
    other layer runs in inference mode (call it with ``training=False`` or none)."""
    predicate = predicate or is_dropout_layer
    return rewire(model, lambda layer: _AlwaysTraining(layer) if predicate(layer) else None)


@dataclasses.dataclass
class MCPrediction:
    """Result of :func:`mc_predict` (NumPy arrays, float64).

    Attributes:
        mean: ``(n, classes)`` mean predictive probabilities.
        std: ``(n, classes)`` standard deviation of the probabilities over the samples.
        entropy: ``(n,)`` predictive entropy ``H[mean]`` (nats).
        mutual_information: ``(n,)`` ``H[mean] - mean_s H[p_s]`` (epistemic part, >= 0).
        samples: ``(samples, n, classes)`` probabilities of each pass, or ``None``.
    """

    mean: np.ndarray
    std: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    samples: np.ndarray | None = None


def _entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.clip(p, 1e-300, None)), 0.0), axis=-1)


def _to_probabilities(out, from_logits):
    out = np.asarray(out, dtype=np.float64)
    if out.shape[-1] == 1:  # binary, sigmoid
        p = 1.0 / (1.0 + np.exp(-out)) if from_logits else out
        return np.concatenate([1.0 - p, p], axis=-1)
    if from_logits:
        z = out - out.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    return out


def _looks_like_probabilities(out) -> bool:
    out = np.asarray(out)
    if out.shape[-1] == 1:
        return bool(np.all((out >= 0) & (out <= 1)))
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def mc_predict(
    model: keras.Model,
    x,
    samples: int = 30,
    batch_size: int = 32,
    from_logits: bool | None = None,
    predicate: Callable | None = None,
    return_samples: bool = False,
) -> MCPrediction:
    """Monte-Carlo dropout prediction with ``samples`` stochastic passes per example.

    Dropout layers are on, BatchNormalization stays in inference mode and its moving
    statistics do not change; the passes of a batch run as one forward pass on the batch
    tiled ``samples`` times (see the module docstring).

    Args:
        model: a functional or Sequential classifier with at least one dropout layer.
        x: a NumPy array (or tensor) of inputs, or a list/dict of them.
        samples: number of stochastic passes (>= 2).
        batch_size: examples per forward pass (each pass runs ``samples * batch_size`` rows).
        from_logits: whether the model outputs logits (softmax, or sigmoid for one unit, is
            then applied); ``None`` infers it: outputs that are non-negative and sum to one
            (or lie in [0, 1] for one unit) are taken as probabilities.
        predicate: ``layer -> bool`` choosing the layers to keep stochastic.
        return_samples: also return every pass's probabilities.

    Returns:
        :class:`MCPrediction` with ``mean``, ``std``, ``entropy``, ``mutual_information``.

    Example:
        >>> pred = mc_predict(model, x_test, samples=30)
        >>> uncertain = pred.mutual_information > 0.1
    """
    check_int("samples", samples, 2)
    check_int("batch_size", batch_size)
    predicate = predicate or is_dropout_layer
    stochastic = [layer for layer in model._flatten_layers(include_self=False) if predicate(layer)]
    if not stochastic:
        raise UserInputError(
            f"model {model.name!r} has no dropout layer, so every pass would be identical; "
            "add dropout (e.g. kerascnn.layers.Dropout) or pass predicate="
        )
    per_batch = any(getattr(layer, "mask_per_batch", False) for layer in stochastic) or any(
        getattr(layer, "noise_shape", None) is not None and layer.noise_shape[0] == 1
        for layer in stochastic
    )
    mcm = mc_model(model, predicate)
    x = keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), x)
    n = len(keras.tree.flatten(x)[0])
    outs = []
    for start in range(0, n, batch_size):
        chunk = keras.tree.map_structure(lambda t, s=start: t[s : s + batch_size], x)
        b = len(keras.tree.flatten(chunk)[0])
        if per_batch:
            out = np.stack([np.asarray(mcm.predict_on_batch(chunk)) for _ in range(samples)])
        else:
            tiled = keras.tree.map_structure(lambda t: np.concatenate([t] * samples, axis=0), chunk)
            out = np.asarray(mcm.predict_on_batch(tiled))
            out = out.reshape((samples, b) + out.shape[1:])
        outs.append(out)
    out = np.concatenate(outs, axis=1)
    if from_logits is None:
        from_logits = not _looks_like_probabilities(out)
    p = _to_probabilities(out, from_logits)
    mean = p.mean(axis=0)
    entropy = _entropy(mean)
    mutual_information = np.maximum(entropy - _entropy(p).mean(axis=0), 0.0)
    return MCPrediction(
        mean=mean,
        std=p.std(axis=0),
        entropy=entropy,
        mutual_information=mutual_information,
        samples=p if return_samples else None,
    )
