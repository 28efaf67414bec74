"""Per-channel standardization inside a model, so exported models take raw pixels."""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.errors import UserInputError

__all__ = [
    "Standardize",
]


@keras.saving.register_keras_serializable(package="kerascnn")
class Standardize(keras.layers.Layer):
    """``(x - mean) / std`` per channel (last axis), with fixed statistics.

    Unlike ``keras.layers.Normalization(mean=..., variance=...)``, which keeps the
    statistics as captured constants, the statistics are non-trainable weights: they are
    saved with the model and every exporter (SavedModel, ONNX) sees them as model state.

    Args:
        mean: one value per channel, in pixel units.
        std: one value per channel (> 0).

    Input shape: ``(..., channels)``. Output shape: the same, float.

    Example:
        >>> layer = Standardize(mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7])
        >>> layer(keras.ops.full((1, 2, 2, 3), 125.3)).shape
        (1, 2, 2, 3)
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std) or not self.mean or min(self.std) <= 0:
            raise UserInputError(
                f"mean and std must have the same positive length and std must be > 0; "
                f"received mean={mean!r}, std={std!r}"
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels != len(self.mean):
            raise UserInputError(
                f"Standardize has {len(self.mean)} channel statistics (mean, std), so the input "
                f"must have {len(self.mean)} channels; received input_shape={tuple(input_shape)}"
            )
        self.mean_weight = self.add_weight(
            shape=(len(self.mean),),
            initializer=keras.initializers.Constant(self.mean),
            trainable=False,
            name="mean",
        )
        self.inverse_std = self.add_weight(
            shape=(len(self.std),),
            initializer=keras.initializers.Constant([1.0 / s for s in self.std]),
            trainable=False,
            name="inverse_std",
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return (x - ops.cast(self.mean_weight, x.dtype)) * ops.cast(self.inverse_std, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}
