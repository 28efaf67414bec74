"""MixUp and CutMix on batches of (images, labels), and the training step that mixes.

Where to mix:

* inside the model's training step: a ``Sequential`` sees only images, so the labels cannot
  be mixed by a layer of the network. :class:`kerascnn.tasks.ImageClassifier` (``mixer=``)
  mixes ``(x, y)`` at the start of each training step (``train_step``, :class:`MixStep`),
  under ``jit_compile=True`` too; evaluation, prediction and exports see the plain model.
  (:class:`MixTrainer`, a wrapper of any model with the same step, is deprecated: use the
  task.)
* in a ``tf.data`` pipeline of your own, after ``batch``::

      mix = MixUp(alpha=0.2, num_classes=10)
      ds = ds.batch(128).map(lambda x, y: mix(x, y, training=True))

Labels may be integer class ids ``(batch,)`` / ``(batch, 1)`` (``num_classes`` required) or
one-hot / soft labels ``(batch, num_classes)``; the output labels are always float
``(batch, num_classes)``, so train with ``categorical_crossentropy``.

Each example gets its own mixing weight ``lambda ~ Beta(alpha, alpha)`` and a partner drawn
by a random permutation of the batch.
"""

from __future__ import annotations

import warnings

import keras
from keras import ops

from kerascnn.checks import check_seed
from kerascnn.errors import UserInputError

__all__ = [
    "CutMix",
    "cutmix",
    "cutmix_boxes",
    "MixStep",
    "MixTrainer",
    "MixUp",
    "mixup",
    "sample_beta",
    "sample_gamma",
    "to_one_hot",
]


def sample_gamma(n, alpha: float, seed, tries: int = 8):
    """``n`` draws of Gamma(alpha, 1) by Marsaglia & Tsang's method, vectorized with a fixed
    number of proposals (acceptance >= 95 % each, so a miss has probability < 0.05**tries),
    boosted by ``U**(1/alpha)`` for alpha < 1. Plain uniform and normal draws only, so it
    compiles under XLA (TensorFlow's gamma sampler has no XLA kernel)."""
    shape = alpha + 1.0 if alpha < 1.0 else alpha
    d = shape - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    z = keras.random.normal((n, tries), seed=seed)
    u = keras.random.uniform((n, tries), seed=seed)
    v = (1.0 + c * z) ** 3
    ok = (v > 0) & (ops.log(u) < 0.5 * z * z + d - d * v + d * ops.log(ops.maximum(v, 1e-30)))
    first = ops.argmax(ops.cast(ok, "int32"), axis=1)
    g = ops.squeeze(ops.take_along_axis(d * v, ops.expand_dims(first, 1), axis=1), 1)
    g = ops.where(ops.any(ok, axis=1), g, shape)  # (practically never) fall back to the mean
    if alpha < 1.0:
        g = g * ops.power(keras.random.uniform((n,), seed=seed), 1.0 / alpha)
    return g


def sample_beta(n, alpha: float, seed):
    """``n`` draws of Beta(alpha, alpha) as ``G1 / (G1 + G2)`` (XLA-friendly)."""
    g1 = sample_gamma(n, alpha, seed)
    g2 = sample_gamma(n, alpha, seed)
    return g1 / ops.maximum(g1 + g2, 1e-30)


def to_one_hot(labels, num_classes: int | None):
    """Integer ids ``(batch,)`` / ``(batch, 1)`` -> float one-hot; float labels pass through."""
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if "int" in dtype:
        if num_classes is None:
            raise UserInputError(
                "integer labels need num_classes (the number of classes for the one-hot "
                "encoding); received num_classes=None"
            )
        if len(labels.shape) == 2:
            labels = ops.squeeze(labels, -1)
        return ops.one_hot(labels, num_classes, dtype="float32")
    return ops.cast(labels, "float32")


def mixup(images, labels, weights, partners):
    """``weights * x + (1 - weights) * x[partners]`` for images and (one-hot) labels.

    Args:
        images: ``(batch, ...)`` floats.
        labels: ``(batch, num_classes)`` floats.
        weights: ``(batch,)`` mixing weights lambda in [0, 1].
        partners: ``(batch,)`` integer indices of each example's partner.
    """
    x = ops.cast(images, "float32")
    lam_x = ops.reshape(weights, (-1,) + (1,) * (len(x.shape) - 1))
    lam_y = ops.reshape(weights, (-1, 1))
    x = lam_x * x + (1.0 - lam_x) * ops.take(x, partners, axis=0)
    y = lam_y * labels + (1.0 - lam_y) * ops.take(labels, partners, axis=0)
    return x, y


def cutmix_boxes(weights, height, width, centers_y, centers_x):
    """Yun et al.'s boxes: side ``sqrt(1 - lambda)`` of the image, centred at the given
    pixel, clipped to the image. Returns ``(top, left, bottom, right)`` int32 ``(batch,)``."""
    ratio = ops.sqrt(1.0 - ops.cast(weights, "float32"))
    cut_h = ops.cast(ratio * ops.cast(height, "float32"), "int32")
    cut_w = ops.cast(ratio * ops.cast(width, "float32"), "int32")
    top = ops.clip(centers_y - cut_h // 2, 0, height)
    bottom = ops.clip(centers_y + cut_h // 2, 0, height)
    left = ops.clip(centers_x - cut_w // 2, 0, width)
    right = ops.clip(centers_x + cut_w // 2, 0, width)
    return top, left, bottom, right


def cutmix(images, labels, boxes, partners):
    """Paste ``images[partners]`` into each box and weight the labels by the pasted area.

    Returns ``(images, labels, lambdas)`` where ``lambdas = 1 - box area / image area`` is
    the weight of each example's own label (the corrected lambda of Yun et al. 2019).
    """
    x = ops.cast(images, "float32")
    s = ops.shape(x)
    h, w = s[1], s[2]
    top, left, bottom, right = (ops.reshape(v, (-1, 1, 1, 1)) for v in boxes)
    rows = ops.reshape(ops.arange(h, dtype="int32"), (1, -1, 1, 1))
    cols = ops.reshape(ops.arange(w, dtype="int32"), (1, 1, -1, 1))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    x = ops.where(inside, ops.take(x, partners, axis=0), x)
    area = ops.cast((boxes[2] - boxes[0]) * (boxes[3] - boxes[1]), "float32")
    lam = 1.0 - area / ops.cast(h * w, "float32")
    lam_y = ops.reshape(lam, (-1, 1))
    y = lam_y * labels + (1.0 - lam_y) * ops.take(labels, partners, axis=0)
    return x, y, lam


class _BatchMixer(keras.layers.Layer):
    """Shared arguments and call convention of MixUp and CutMix."""

    def __init__(self, alpha=1.0, num_classes=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise UserInputError(f"alpha must be a number > 0; received alpha={alpha!r}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise UserInputError(
                f"num_classes must be an integer >= 2 or None; received num_classes={num_classes!r}"
            )
        self.alpha = float(alpha)
        self.num_classes = num_classes
        self.seed = check_seed(seed)
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True
        self.built = True  # no weights; lets the task's train step call it statelessly (JAX)

    def _draw(self, n):
        weights = sample_beta(n, self.alpha, self.generator)
        partners = ops.cast(ops.argsort(keras.random.uniform((n,), seed=self.generator)), "int32")
        return weights, partners

    def call(self, images, labels, training=None):
        y = to_one_hot(labels, self.num_classes)
        if not training:
            return images, y
        x, y = self.mix(images, y)
        return ops.cast(x, images.dtype) if "float" in str(images.dtype) else x, y

    def compute_output_spec(self, images, labels, training=None):
        n = self.num_classes if self.num_classes is not None else labels.shape[-1]
        return (
            keras.KerasTensor(images.shape, images.dtype),
            keras.KerasTensor((labels.shape[0], n), "float32"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }


_MIX_DOC = """
    Args:
        alpha: concentration of ``Beta(alpha, alpha)`` (> 0).
        num_classes: number of classes, required for integer labels.
        seed: integer seed for repeatable runs, or None.

    Call arguments:
        images: ``(batch, height, width, channels)``.
        labels: integer ``(batch,)`` / ``(batch, 1)`` or float ``(batch, num_classes)``.
        training: mix only if true; otherwise images unchanged and labels one-hot.

    Returns:
        ``(images, labels)``: float images of the input shape and float labels
        ``(batch, num_classes)``; each row of the labels sums to one.

    Usable as the ``mixer`` of a :class:`kerascnn.tasks.ImageClassifier` (mixed in its train
    step) or in a ``tf.data`` map after batching (``training=True``; see the module
    docstring).
"""


@keras.saving.register_keras_serializable(package="kerascnn")
class MixUp(_BatchMixer):
    __doc__ = (
        """MixUp: convex combinations of pairs of examples and of their labels.

    Each example ``i`` is mixed with a random partner ``j`` with its own
    ``lambda_i ~ Beta(alpha, alpha)``: ``x_i' = lambda_i x_i + (1 - lambda_i) x_j`` and the
    same for the labels."""
        + _MIX_DOC
        + """
    Reference: Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018.

    Example:
        >>> x, y = MixUp(0.2, num_classes=10, seed=1)(keras.ops.ones((8, 32, 32, 3)),
        ...                                           keras.ops.arange(8), training=True)
    """
    )

    def __init__(self, alpha=0.2, num_classes=None, seed=None, **kwargs):
        super().__init__(alpha, num_classes, seed, **kwargs)

    def mix(self, images, labels):
        weights, partners = self._draw(ops.shape(images)[0])
        return mixup(images, labels, weights, partners)


@keras.saving.register_keras_serializable(package="kerascnn")
class CutMix(_BatchMixer):
    __doc__ = (
        """CutMix: paste a random box of a partner example; labels weighted by area.

    The box of example ``i`` has sides ``sqrt(1 - lambda_i)`` times the image's, with
    ``lambda_i ~ Beta(alpha, alpha)``, and a uniform centre; it is clipped at the borders and
    the label weight is corrected to the true pasted area: ``1 - box area / image area``."""
        + _MIX_DOC
        + """
    Reference: Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
    Localizable Features", ICCV 2019.

    Example:
        >>> x, y = CutMix(1.0, num_classes=10, seed=1)(keras.ops.ones((8, 32, 32, 3)),
        ...                                            keras.ops.arange(8), training=True)
    """
    )

    def mix(self, images, labels):
        s = ops.shape(images)
        n, h, w = s[0], s[1], s[2]
        weights, partners = self._draw(n)
        cy = keras.random.randint((n,), 0, h, seed=self.generator, dtype="int32")
        cx = keras.random.randint((n,), 0, w, seed=self.generator, dtype="int32")
        x, y, _ = cutmix(images, labels, cutmix_boxes(weights, h, w, cy, cx), partners)
        return x, y


class MixStep:
    """The mixing training step of :class:`kerascnn.tasks.ImageClassifier` (and of the
    deprecated :class:`MixTrainer`): a mix-in for a ``keras.Model`` subclass (listed
    before it in the bases) with an attribute ``mixer`` (a ``MixUp`` / ``CutMix`` layer,
    tracked by the model, or None).

    ``train_step`` mixes ``(x, y)`` with ``mixer`` before Keras's own step, on TensorFlow
    and PyTorch statefully, on JAX statelessly (the mixer's seed state is read from and
    written back to the step's non-trainable variables, so it runs under ``jit``).
    ``_labels_to_mix(y)`` may turn the labels into what the mixer takes (e.g. one-hot).
    """

    def _labels_to_mix(self, y):
        return y

    def _mix(self, data):
        x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self.mixer(x, self._labels_to_mix(y), training=True)
        return (x, y) if sw is None else (x, y, sw)

    def _mix_stateless(self, state, data):
        """JAX: run the mixer statelessly on its seed state taken from ``state``."""
        trainable, non_trainable, *rest = state
        positions = [
            next(i for i, v in enumerate(self.non_trainable_variables) if v is mv)
            for mv in self.mixer.non_trainable_variables
        ]
        non_trainable = list(non_trainable)
        x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
        (x, y), new = self.mixer.stateless_call(
            [], [non_trainable[i] for i in positions], x, self._labels_to_mix(y), training=True
        )
        for i, value in zip(positions, new, strict=True):
            non_trainable[i] = value
        return (trainable, non_trainable, *rest), ((x, y) if sw is None else (x, y, sw))

    def train_step(self, *args):
        if getattr(self, "mixer", None) is None:
            return super().train_step(*args)
        if keras.backend.backend() == "jax":
            state, data = self._mix_stateless(*args)
            return super().train_step(state, data)
        return super().train_step(self._mix(args[0]))  # TensorFlow, PyTorch


@keras.saving.register_keras_serializable(package="kerascnn")
class MixTrainer(MixStep, keras.Model):
    """Deprecated: :class:`kerascnn.tasks.ImageClassifier` with ``mixer=`` (e.g.
    ``ImageClassifier.from_model(net, mixer=MixUp(0.2, num_classes=10))``) trains with the
    same step. Train ``model`` on batches mixed by ``mixer`` (a :class:`MixUp` or
    :class:`CutMix`).

    The mixing happens at the start of each ``train_step`` (TensorFlow, JAX and PyTorch
    backends; :class:`MixStep`), so it runs inside the compiled (XLA) training step;
    ``evaluate``, ``predict`` and ``call`` use the plain model. Compile with a loss for
    one-hot labels (e.g. ``"categorical_crossentropy"``). Save or export ``trainer.model``.
    :class:`kerascnn.tasks.ImageClassifier` takes a ``mixer`` itself (same step).

    Args:
        model: the network to train.
        mixer: a ``MixUp`` or ``CutMix`` layer (give it ``num_classes`` for integer labels).

    Example:
        >>> trainer = MixTrainer(net, MixUp(0.2, num_classes=10))
        >>> trainer.compile("sgd", "categorical_crossentropy", jit_compile=True)
        >>> trainer.fit(images, integer_labels, epochs=1)  # doctest: +SKIP
    """

    def __init__(self, model, mixer, **kwargs):
        warnings.warn(
            "MixTrainer is deprecated: use kerascnn.tasks.ImageClassifier(..., mixer=...) "
            "(ImageClassifier.from_model(model, mixer=...)), which mixes in the same train step",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(**kwargs)
        if not isinstance(mixer, _BatchMixer):
            raise UserInputError(f"mixer must be a MixUp or CutMix layer; received mixer={mixer!r}")
        self.model = model
        self.mixer = mixer

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # integer labels (e.g. when Keras builds the loss on an unmixed batch) become one-hot
        if y is not None and "int" in keras.backend.standardize_dtype(y.dtype):
            y = to_one_hot(y, self.mixer.num_classes)
        return super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "mixer": keras.saving.serialize_keras_object(self.mixer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"))
        mixer = keras.saving.deserialize_keras_object(config.pop("mixer"))
        return cls(model, mixer, **config)
