"""Models that take raw pixels: trained weights with their standardization inside the network.

A zoo model created with trained weights (``kerascnn.zoo.create("resnet20", weights="cifar10")``)
is a :class:`PixelModel`: its input is raw pixels, 0..255, uint8 or float, and its first
layer standardizes them with the statistics the weights were trained with, as
keras.applications' EfficientNet and ConvNeXt rescale their input and keras-hub's tasks carry
a preprocessor. ``predict``, ``evaluate``, ``.keras`` files, ``serving_export`` and LiteRT
conversions of it need no other call. ``include_preprocessing=False`` gives the bare network,
whose input is the standardized image ``(x - mean) / std``
(:func:`kerascnn.zoo.presets.standardize`).

Images scaled to 0..1 are the common wrong input: a float array or tensor whose values all
lie in 0..1, given to :meth:`PixelModel.predict`, ``evaluate`` or a call on concrete values,
raises a :class:`PixelRangeWarning` (one line). Data sets (``tf.data``, ``PyDataset``) are
not inspected.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import keras
import numpy as np

from kerascnn.errors import UserInputError

__all__ = [
    "PixelModel",
    "PixelRangeWarning",
    "check_no_preprocessing",
    "check_pixel_range",
    "with_preprocessing",
]


class PixelRangeWarning(UserWarning):
    """A model that takes raw 0..255 pixels received floats in 0..1."""


def _traced(x) -> bool:
    """Whether ``x`` is a tensor being traced (``tf.function``, ``jax.jit``): no values."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    return False


def _concrete_floats(x) -> np.ndarray | None:
    """``x`` as a NumPy array when it is a concrete floating array or tensor; None for
    symbolic or traced tensors, integer inputs and anything else (datasets, dicts)."""
    if isinstance(x, np.ndarray):
        return x if np.issubdtype(x.dtype, np.floating) else None
    if isinstance(x, keras.KerasTensor) or not keras.ops.is_tensor(x) or _traced(x):
        return None
    if not str(keras.backend.standardize_dtype(x.dtype)).startswith(("float", "bfloat")):
        return None
    return np.asarray(keras.ops.convert_to_numpy(x))


def check_pixel_range(x, model_name: str) -> bool:
    """Warn (:class:`PixelRangeWarning`) when ``x`` is a concrete float input whose values
    all lie in 0..1 and are not all whole numbers (images divided by 255) although
    ``model_name`` takes 0..255 pixels; a black image (all zeros) is a valid pixel image.
    Returns whether it warned."""
    values = _concrete_floats(x)
    if values is None or values.size == 0:
        return False
    low, high = float(np.min(values)), float(np.max(values))
    if not (0.0 <= low and high <= 1.0) or np.all(values == np.round(values)):
        return False
    warnings.warn(
        f"{model_name} takes raw pixels 0..255 and standardizes them itself, but the input's "
        f"values lie in {low:.3g}..{high:.3g}: pass the images times 255 (or build the model "
        "with include_preprocessing=False to feed standardized images)",
        PixelRangeWarning,
        stacklevel=3,
    )
    return True


class PixelInputCheck:
    """Mixin for functional models: :func:`check_pixel_range` on the images given to
    ``predict``, ``evaluate`` and calls on concrete values, when :meth:`takes_pixels`."""

    def takes_pixels(self) -> bool:
        return True

    def _check_images(self, x) -> None:
        if self.takes_pixels() and not getattr(self, "_checking_batches", False):
            check_pixel_range(x, f"model {self.name!r}")

    def _run_checked(self, method, x, *args, **kwargs):
        """``method(x, ...)`` after checking ``x`` once: its batches, which eager backends
        (PyTorch) pass through ``__call__``, are not checked again."""
        self._check_images(x)
        self._checking_batches = True
        try:
            return method(x, *args, **kwargs)
        finally:
            self._checking_batches = False

    def __call__(self, *args, **kwargs):
        if args:
            self._check_images(args[0])
        return super().__call__(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return self._run_checked(super().predict, x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        return self._run_checked(super().evaluate, x, *args, **kwargs)


@keras.saving.register_keras_serializable(package="kerascnn")
class PixelModel(PixelInputCheck, keras.Model):
    """A functional model whose input is raw 0..255 pixels (its first layers preprocess
    them); built by :func:`with_preprocessing`. Saved and loaded as any functional model
    (``keras.models.load_model(path, safe_mode=True)``)."""


def with_preprocessing(model: keras.Model, layers: Sequence[keras.Layer]) -> PixelModel:
    """``model`` with ``layers`` applied to its input first, as one flat functional model:
    a new input ``pixels`` (float32, ``model``'s image shape), then ``layers``, then
    ``model``'s own layers (the same objects and weights, the same names), so
    :func:`kerascnn.zoo.feature_info`, ``get_layer`` and weight loading by layer name work
    on it as on ``model``."""
    if len(model.inputs) != 1:
        raise UserInputError(
            f"model must have one image input; received model={model.name!r} with "
            f"{len(model.inputs)} inputs"
        )
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="pixels")
    x = inputs
    for layer in layers:
        x = layer(x)
    # Keras's own clone_model mechanism, with every operation reused instead of copied.
    outputs = model._run_through_graph(x, operation_fn=lambda operation: operation)
    return PixelModel(inputs=inputs, outputs=outputs, name=model.name)


def check_no_preprocessing(include_preprocessing) -> None:
    """Without weights there are no statistics to standardize with: refuse
    ``include_preprocessing=True``."""
    if include_preprocessing not in (None, False):
        raise UserInputError(
            "include_preprocessing applies to trained weights (their standardization); pass "
            f"weights=... or leave it out; received include_preprocessing={include_preprocessing!r}"
        )
