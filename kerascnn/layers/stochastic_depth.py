"""Stochastic depth (Huang et al. 2016): drop a whole residual branch per example."""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.checks import check_bool, check_int
from kerascnn.layers.dropout import DropoutBase, check_rate, dropout

__all__ = [
    "drop_path",
    "linear_drop_path_rates",
    "StochasticDepth",
]


def drop_path(inputs, rate, seed=None, training: bool = True, scale_by_keep: bool = True):
    """Zero the whole of ``inputs[i]`` for each example ``i`` with probability ``rate``.

    With ``scale_by_keep`` the kept examples are scaled by ``1 / (1 - rate)`` (inverted
    scaling, as timm's ``drop_path``), so inference uses the branch unchanged. Apply it to the
    residual branch before the addition: ``x + drop_path(f(x), rate)``.
    """
    if not training:
        return inputs
    x = ops.convert_to_tensor(inputs)
    noise_shape = [ops.shape(x)[0]] + [1] * (len(x.shape) - 1)
    if scale_by_keep:
        return dropout(x, rate, seed, noise_shape)
    u = keras.random.uniform(noise_shape, seed=seed, dtype="float32")
    return x * ops.cast(ops.greater_equal(u, ops.cast(rate, "float32")), x.dtype)


def linear_drop_path_rates(rate: float, num_blocks: int) -> list[float]:
    """Huang et al.'s linear decay rule: block ``l`` of ``L`` (1-based) drops with
    ``rate * l / L``, so the first block is almost always kept and the last drops with
    ``rate``. ``kerascnn.zoo.resnet(drop_path_rate=...)`` uses the same rule.

    >>> linear_drop_path_rates(0.5, 4)
    [0.125, 0.25, 0.375, 0.5]
    """
    check_rate(rate, "rate")
    check_int("num_blocks", num_blocks)
    return [rate * index / num_blocks for index in range(1, num_blocks + 1)]


@keras.saving.register_keras_serializable(package="kerascnn")
class StochasticDepth(DropoutBase):
    """Drops the residual branch it wraps, per example (stochastic depth / DropPath).

    A thin wrapper over :func:`drop_path`. The rate is a variable (a member of the dropout
    family), so ``DropoutSchedule`` can switch it (early / late stochastic depth, Liu et al.
    2023).

    Args:
        rate: float in ``[0, 1)``, probability of dropping the branch for an example.
        seed: optional int.
        scale_by_keep: scale kept branches by ``1 / (1 - rate)`` (default ``True``); with
            ``False`` the caller must scale the branch by ``1 - rate`` at inference.

    Call arguments:
        inputs: the residual branch output, any rank with the batch first.
        training: Python bool; identity unless true.

    Input shape: ``(batch, ...)``. Output shape: same as the input.

    Reference: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.

    Example:
        >>> y = StochasticDepth(0.2, seed=0)(keras.ops.ones((4, 8, 8, 16)), training=True)
    """

    def __init__(self, rate: float, seed: int | None = None, scale_by_keep: bool = True, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        check_bool("scale_by_keep", scale_by_keep)
        self.scale_by_keep = scale_by_keep
        self._build_at_init()

    def call(self, inputs, training=None):
        if training:
            return drop_path(
                inputs, self.rate_variable, self.seed_generator, True, self.scale_by_keep
            )
        return inputs

    def get_config(self):
        return {**super().get_config(), "scale_by_keep": self.scale_by_keep}
