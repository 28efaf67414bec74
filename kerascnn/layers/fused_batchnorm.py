"""Batch normalization through TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` normalizes with separate ops on the TensorFlow backend
(moments, then arithmetic, each with its own gradient). ``FusedBatchNormalization`` is the
same layer (same arguments, same weights, same ``get_config``, same moving-average update)
whose forward and backward passes run TensorFlow's fused batch-norm kernel
(``FusedBatchNormV3`` / ``FusedBatchNormGradV3``, the op behind
``tf.compat.v1.nn.fused_batch_norm``; oneDNN on CPU, cuDNN on GPU, an XLA lowering under
``jit_compile=True``). Checkpoints interchange with ``keras.layers.BatchNormalization`` in
both directions.

Where the fused kernel does not apply the layer is exactly ``keras.layers.BatchNormalization``:
other backends (JAX, PyTorch), inputs that are not 4-D, float64 inputs, a normalized axis other
than the last, ``synchronized=True``, ``renorm=True`` and masks.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "fused_batch_norm",
    "fused_batch_norm_factory",
    "FusedBatchNormalization",
]


def fused_batch_norm(x, scale, offset, mean=None, variance=None, epsilon=1e-3, training=False):
    """Fused batch normalization of an NHWC tensor on the TensorFlow backend.

    Args:
        x: ``(batch, height, width, channels)`` float tensor (float16/bfloat16 allowed).
        scale, offset: ``(channels,)`` float32 tensors (gamma and beta).
        mean, variance: ``(channels,)`` moving statistics; used (and required) only when
            ``training`` is false.
        epsilon: added to the variance; used exactly (``tf.compat.v1.nn.fused_batch_norm``
            silently raises values below 1.001e-5 to 1.001e-5, so it calls the op directly).
        training: normalize with the batch's statistics.

    Returns:
        ``(y, batch_mean, batch_variance)``. In training mode ``batch_variance`` is the
        biased (population) variance of the batch, as ``keras.ops.moments`` returns, so the
        moving averages follow ``keras.layers.BatchNormalization`` exactly; in inference mode
        the two are the given ``mean`` and ``variance``.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    scale = tf.cast(scale, tf.float32)
    offset = tf.cast(offset, tf.float32)
    if training:
        mean = variance = tf.constant([], tf.float32)  # empty: the op uses the batch statistics
    else:
        mean = tf.cast(mean, tf.float32)
        variance = tf.cast(variance, tf.float32)
    y, batch_mean, batch_var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=scale,
        offset=offset,
        mean=mean,
        variance=variance,
        epsilon=float(epsilon),
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=bool(training),
    )
    if not training:
        return y, mean, variance
    # The kernel returns the unbiased (Bessel-corrected) variance for the running
    # average; Keras 3 averages the biased one.
    shape = tf.shape(x)
    n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
    batch_var = batch_var * ((n - 1.0) / tf.maximum(n, 1.0))
    return y, batch_mean, batch_var


@keras.saving.register_keras_serializable(package="kerascnn", name="FusedBatchNormalization")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that runs TensorFlow's fused kernel.

    Same arguments, weights (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, in
    that order), config and moving-average update as ``keras.layers.BatchNormalization``
    (``moving = moving * momentum + batch_stat * (1 - momentum)``, biased batch variance),
    so weights saved from one load into the other. On the TensorFlow backend, for 4-D
    channels-last inputs, training and inference both call ``FusedBatchNormV3``: in a CIFAR
    ResNet-56 training step on a 2-core CPU that was about 1.5x faster than Keras's
    separate ops (about 190 against 124 images/s at batch 128;
    ``python -m benchmarks.run --only train_cifar``).

    Args:
        Those of ``keras.layers.BatchNormalization`` (``axis``, ``momentum``, ``epsilon``,
        ``center``, ``scale``, initializers, regularizers, constraints, ``renorm*``,
        ``synchronized``).

    Call arguments:
        inputs: a tensor of any rank (the fused path needs rank 4 with ``axis=-1``).
        training: normalize with the batch's statistics and update the moving ones.
            As in Keras, a layer with ``trainable=False`` always runs in inference mode.
        mask: as in Keras (masked calls use Keras's implementation).

    Input shape: any; typically ``(batch, height, width, channels)``.
    Output shape: same as the input.

    Reference: Ioffe & Szegedy, "Batch Normalization", ICML 2015 (arXiv:1502.03167).

    Example:
        >>> layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
        >>> y = layer(keras.ops.ones((2, 4, 4, 3)), training=True)
        >>> tuple(y.shape)
        (2, 4, 4, 3)
    """

    def _use_fused(self, inputs, mask) -> bool:
        if keras.backend.backend() != "tensorflow":
            return False
        if mask is not None or self.renorm or self.synchronized:
            return False
        if keras.backend.standardize_dtype(inputs.dtype) == "float64":
            return False  # the fused kernel has no float64; Keras's ops keep the precision
        rank = len(inputs.shape)
        return rank == 4 and self.axis in (-1, 3)

    def call(self, inputs, training=None, mask=None):
        if not self._use_fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = inputs
        if x.dtype not in (tf.float16, tf.bfloat16, tf.float32):
            x = tf.cast(x, tf.float32)
        channels = self.moving_mean.shape[0]
        gamma = self.gamma if self.scale else ops.ones((channels,), "float32")
        beta = self.beta if self.center else ops.zeros((channels,), "float32")
        if training and self.trainable:
            y, mean, variance = fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, training=True
            )
            m = self.momentum
            self.moving_mean.assign(ops.cast(self.moving_mean, "float32") * m + mean * (1.0 - m))
            self.moving_variance.assign(
                ops.cast(self.moving_variance, "float32") * m + variance * (1.0 - m)
            )
        else:
            y, _, _ = fused_batch_norm(
                x,
                gamma,
                beta,
                self.moving_mean,
                self.moving_variance,
                epsilon=self.epsilon,
                training=False,
            )
        return ops.cast(y, self.compute_dtype)


# Keras 3 stores a model's weights (``.weights.h5``, ``.keras``) under paths made from each
# layer's Python class name (``saving_lib._save_container_state``: ``batch_normalization``,
# ``batch_normalization_1``, ...). Carrying Keras's class name keeps those paths identical,
# so weights saved from a model with ``keras.layers.BatchNormalization`` load into the same
# model with ``FusedBatchNormalization`` and back. Serialization still finds this class by
# its registered name, ``kerascnn>FusedBatchNormalization``.
FusedBatchNormalization.__name__ = "BatchNormalization"


def fused_batch_norm_factory(momentum: float = 0.9, epsilon: float = 1e-5):
    """A ``norm=`` callable for the zoo builders: ``name -> FusedBatchNormalization``.

    Example:
        >>> import kerascnn
        >>> model = kerascnn.zoo.resnet(depth=20, norm=fused_batch_norm_factory())
    """

    def factory(name: str) -> FusedBatchNormalization:
        return FusedBatchNormalization(momentum=momentum, epsilon=epsilon, name=name)

    return factory
