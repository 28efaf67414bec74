"""Recompute BatchNormalization population statistics over a dataset."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kerascnn.errors import DataValidationError, UserInputError
from kerascnn.layers.mc import rewire
from kerascnn.layers.normalization import AxisNormalization

__all__ = [
    "recalibrate_batchnorm",
]


def _is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization) or (
        isinstance(layer, AxisNormalization) and layer.is_batch_kind
    )


class _BatchStatProbe(keras.layers.Layer):
    """Normalizes with the batch's own statistics (no moving-average update) and folds the
    batch's per-feature mean and variance into running totals (Chan et al.'s pairwise
    update, numerically stable in float32)."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"{layer.name}_recalibrate", **kwargs)
        self.layer = layer
        shape = tuple(layer.moving_mean.shape)
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
        self.mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
        self.m2 = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="m2")
        self.built = True

    def _moments(self, x):
        layer = self.layer
        if isinstance(layer, AxisNormalization):
            return layer.batch_statistics(x)
        axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
        axes = {a % len(x.shape) for a in axes}
        reduce = [i for i in range(len(x.shape)) if i not in axes]
        mean, var = ops.moments(ops.cast(x, "float32"), axes=reduce)
        return mean, var

    def _normalize(self, x, mean, var):
        layer = self.layer
        if isinstance(layer, AxisNormalization):
            return layer.normalize(x, mean, var)
        y = ops.batch_normalization(
            ops.cast(x, "float32"),
            mean,
            var,
            axis=layer.axis,
            offset=None if layer.beta is None else ops.cast(layer.beta, "float32"),
            scale=None if layer.gamma is None else ops.cast(layer.gamma, "float32"),
            epsilon=layer.epsilon,
        )
        return ops.cast(y, layer.compute_dtype)

    def call(self, inputs, mask=None, **kwargs):  # a node's training= is ignored
        mean_b, var_b = self._moments(inputs)
        n_b = ops.cast(ops.size(inputs), "float32") / float(max(1, int(np.prod(self.mean.shape))))
        n = self.count
        total = n + n_b
        delta = mean_b - self.mean
        self.mean.assign(self.mean + delta * (n_b / total))
        self.m2.assign(self.m2 + var_b * n_b + delta * delta * (n * n_b / total))
        self.count.assign(total)
        return self._normalize(inputs, mean_b, var_b)

    def compute_output_shape(self, input_shape):
        return input_shape


def recalibrate_batchnorm(
    model: keras.Model, dataset: Any, steps: int | None = None
) -> dict[str, int]:
    """Set every batch-norm layer's moving mean and variance to its inputs' statistics over
    ``dataset`` (the population statistics of Ioffe & Szegedy 2015, section 3.1).

    One pass over the data. During the pass every batch-norm layer normalizes with the
    current batch's statistics, exactly as in training (so each layer sees the inputs it
    was trained on), but nothing else runs in training mode: dropout and augmentation layers
    are off, and no moving average is touched. For each layer the exact mean and (biased)
    variance of its inputs over all the examples and positions of the pass are accumulated
    and then written into ``moving_mean`` / ``moving_variance``. Use it after training (in
    place of the moving averages), after changing the augmentation, or after weight
    averaging. Works for ``keras.layers.BatchNormalization`` and kerascnn's
    ``AxisNormalization`` with the batch axis in ``axis``; the model must be functional or
    Sequential.

    Args:
        model: the model (its layers are updated in place).
        dataset: an iterable of input batches or ``(x, y[, sample_weight])`` tuples, e.g.
            a ``tf.data.Dataset`` or a list of NumPy arrays.
        steps: use at most this many batches (default: the whole iterable).

    Returns:
        ``{layer name: number of values per feature used}``.
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise UserInputError(f"steps must be None or an integer >= 1; received steps={steps!r}")
    bns = [layer for layer in model._flatten_layers(include_self=False) if _is_batch_norm(layer)]
    if not bns:
        raise UserInputError(
            "model must contain a BatchNormalization layer to recalibrate; received "
            f"model={model.name!r} without one"
        )
    if not all(layer.built for layer in bns):
        raise UserInputError(
            "build the model (call it once) before recalibrating its BatchNormalization layers; "
            f"received model={model.name!r} with unbuilt ones"
        )
    probes = {}

    def replace(layer):
        if _is_batch_norm(layer):
            probes[id(layer)] = _BatchStatProbe(layer)
            return probes[id(layer)]
        return None

    probe_model = rewire(model, replace)
    batches = 0
    for batch in dataset:
        if steps is not None and batches >= steps:
            break
        x = batch[0] if isinstance(batch, tuple) else batch
        x = keras.tree.map_structure(
            lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), x
        )
        probe_model.predict_on_batch(x)
        batches += 1
    if not batches:
        raise DataValidationError(
            "dataset must yield at least one batch to recalibrate with; received an empty one"
        )
    counts = {}
    for layer in bns:
        probe = probes[id(layer)]
        n = float(ops.convert_to_numpy(probe.count))
        layer.moving_mean.assign(ops.cast(probe.mean, layer.moving_mean.dtype))
        layer.moving_variance.assign(ops.cast(probe.m2 / n, layer.moving_variance.dtype))
        counts[layer.name] = int(round(n))
    return counts
