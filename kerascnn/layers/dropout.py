"""The dropout family: a rate held in a variable, standard, spatial and Monte-Carlo dropout.

Every layer of the family derives from :class:`DropoutBase`, whose rate lives in a scalar,
non-trainable variable (``layer.rate_variable``) that ``call`` reads inside the graph. A
schedule (``kerascnn.training.DropoutSchedule``, early/late dropout) changes the rate with
``layer.set_rate(r)`` between epochs: the compiled train step (tf.function, XLA, or a jitted
JAX step, where the variable is part of the step's state) sees the new value without being
retraced. Keras's own ``keras.layers.Dropout`` keeps its rate as a Python float, baked into
the graph at trace time, so it cannot be scheduled this way.

The rate variable is a weight: it is saved with the model (so a reloaded model keeps the
current rate), and ``count_params()`` counts it (one non-trainable scalar per layer).
``get_config()["rate"]`` is the constructor rate.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerascnn.checks import check_data_format, check_float, check_seed
from kerascnn.errors import UserInputError

__all__ = [
    "check_rate",
    "Dropout",
    "dropout",
    "DropoutBase",
    "MCDropout",
    "spatial_dropout",
    "spatial_noise_shape",
    "SpatialDropout",
]

_EPS = 1e-7


# --------------------------------------------------------------------------- checks
def check_rate(value: Any, name: str = "rate") -> float:
    """``value`` as a float in ``[0, 1)``, a drop probability."""
    return check_float(name, value, 0, 1)


# --------------------------------------------------------------------------- math
def dropout(inputs, rate, seed=None, noise_shape=None):
    """Inverted dropout: keep each entry of a Bernoulli mask of shape ``noise_shape``
    (broadcast over ``inputs``) with probability ``1 - rate`` and scale the kept entries by
    ``1 / (1 - rate)``, so that the expectation equals ``inputs``.

    ``rate`` may be a Python float or a scalar tensor / variable (read in the graph).
    ``seed`` is an int, ``None`` or a ``keras.random.SeedGenerator``. ``noise_shape`` defaults
    to the shape of ``inputs`` (one draw per entry).
    """
    x = ops.convert_to_tensor(inputs)
    if noise_shape is None:
        noise_shape = ops.shape(x)
    rate = ops.cast(rate, "float32")
    u = keras.random.uniform(noise_shape, seed=seed, dtype="float32")
    keep = ops.cast(ops.greater_equal(u, rate), x.dtype)
    scale = ops.cast(1.0 / ops.maximum(1.0 - rate, _EPS), x.dtype)
    return x * (keep * scale)


def spatial_noise_shape(inputs, data_format: str = "channels_last"):
    """``(batch, 1, ..., 1, channels)`` (or channels-first): one draw per example and channel."""
    shape = ops.shape(inputs)
    ones = [1] * (len(shape) - 2)
    if data_format == "channels_last":
        return [shape[0], *ones, shape[-1]]
    return [shape[0], shape[1], *ones]


def spatial_dropout(inputs, rate, seed=None, data_format: str = "channels_last"):
    """Drop whole channels (feature maps) per example, Tompson et al. (2015)."""
    return dropout(inputs, rate, seed, spatial_noise_shape(inputs, data_format))


# --------------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package="kerascnn")
class DropoutBase(keras.layers.Layer):
    """Base of kerascnn's dropout family: a ``rate`` variable read in the graph and a seed.

    Subclasses implement ``call``. ``DropoutSchedule`` finds every layer of this family.

    Args:
        rate: float in ``[0, 1)``, the initial drop probability.
        seed: optional int, makes the random stream repeatable.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).

    Attributes:
        rate_variable: the scalar non-trainable variable that ``call`` reads.
        mask_per_batch: ``True`` for layers that draw one mask per batch instead of per
            example (``mc_predict`` then runs its passes one after the other).
    """

    mask_per_batch = False

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate_variable = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.rate),
            trainable=False,
            dtype="float32",
            name="rate",
        )
        self.supports_masking = True

    def set_rate(self, rate: float) -> None:
        """Set the drop probability read by the next call (no retracing needed)."""
        self.rate_variable.assign(check_rate(rate))

    @property
    def current_rate(self) -> float:
        """The value of ``rate_variable`` as a Python float."""
        return float(ops.convert_to_numpy(self.rate_variable))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerascnn")
class Dropout(DropoutBase):
    """Standard (inverted) dropout whose rate can be changed during training.

    Same distribution as ``keras.layers.Dropout``: each entry is kept with probability
    ``1 - rate`` and scaled by ``1 / (1 - rate)``. The rate lives in a variable, so
    ``DropoutSchedule`` (early / late dropout) can change it without retracing.

    Args:
        rate: float in ``[0, 1)``, fraction of the input units to drop.
        seed: optional int for repeatable masks.

    Call arguments:
        inputs: a tensor of any rank.
        training: Python bool; dropout is applied only when true. ``None``/``False``
            returns the inputs unchanged.

    Input shape: any. Output shape: same as the input.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014.

    Example:
        >>> layer = Dropout(0.5, seed=1)
        >>> y = layer(keras.ops.ones((2, 4)), training=True)
        >>> layer.set_rate(0.1)  # takes effect inside compiled steps too
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self._build_at_init()

    def call(self, inputs, training=None):
        if training:
            return dropout(inputs, self.rate_variable, self.seed_generator)
        return inputs


@keras.saving.register_keras_serializable(package="kerascnn")
class MCDropout(Dropout):
    """Monte-Carlo dropout (Gal & Ghahramani 2016): dropout that is *always* on.

    Unlike every other regularizer here, it ignores ``training`` and drops units at
    inference too, so repeated predictions sample from the approximate posterior. To get MC
    predictions from a model with ordinary dropout layers instead (without touching
    BatchNormalization), use :func:`kerascnn.layers.mc_predict`.

    Args:
        rate: float in ``[0, 1)``.
        seed: optional int.

    Call arguments:
        inputs: a tensor of any rank.
        training: ignored (accepted for API compatibility).

    Input shape: any. Output shape: same as the input.

    Reference: Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.

    Example:
        >>> y = MCDropout(0.2, seed=0)(keras.ops.ones((2, 8)))  # stochastic without training
    """

    def call(self, inputs, training=None):
        return dropout(inputs, self.rate_variable, self.seed_generator)


@keras.saving.register_keras_serializable(package="kerascnn")
class SpatialDropout(DropoutBase):
    """Spatial dropout for 1-D, 2-D and 3-D feature maps: drops whole channels per example.

    Each (example, channel) pair is kept with probability ``1 - rate`` (kept channels are
    scaled by ``1 / (1 - rate)``), the same distribution as ``keras.layers.SpatialDropout1D/
    2D/3D``. The rank (3, 4 or 5) is taken from the input.

    Args:
        rate: float in ``[0, 1)``, fraction of channels to drop.
        data_format: ``"channels_last"`` or ``"channels_first"``; default
            ``keras.config.image_data_format()``.
        seed: optional int.

    Call arguments:
        inputs: a 3-D, 4-D or 5-D tensor.
        training: Python bool; identity unless true.

    Input shape: ``(batch, *spatial, channels)`` or ``(batch, channels, *spatial)`` with 1 to
    3 spatial axes. Output shape: same as the input.

    Reference: Tompson et al., "Efficient Object Localization Using Convolutional
    Networks", CVPR 2015.

    Example:
        >>> y = SpatialDropout(0.3, seed=0)(keras.ops.ones((2, 8, 8, 16)), training=True)
    """

    def __init__(
        self, rate: float, data_format: str | None = None, seed: int | None = None, **kwargs
    ):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = check_data_format(data_format)

    def build(self, input_shape):
        if not 3 <= len(input_shape) <= 5:
            raise UserInputError(
                "SpatialDropout needs a 3-D, 4-D or 5-D input (batch, 1 to 3 spatial axes, "
                f"channels); received input_shape={tuple(input_shape)!r}"
            )

    def call(self, inputs, training=None):
        if training:
            return spatial_dropout(
                inputs, self.rate_variable, self.seed_generator, self.data_format
            )
        return inputs

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
