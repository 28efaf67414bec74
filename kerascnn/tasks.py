"""Tasks: a backbone and everything that makes it a trainable, exportable classifier.

:class:`ImageClassifier` is a functional Keras model (keras-hub's *Task* style: the graph is
built in ``__init__``) that owns, in this order::

    raw pixels -> augmentation (training only) -> preprocessing (standardization)
        -> backbone -> head (pooling, dropout, Dense "predictions", or a given head model)
        -> float32 output ("logits" or "probabilities", also under mixed precision)

and, in training, MixUp / CutMix inside its ``train_step`` (TensorFlow, JAX, PyTorch; the
step of :class:`kerascnn.layers.augment.mix.MixStep`). Data pipelines deliver integer labels
only; the task converts them to one-hot where its loss needs them. It tells exports what it
outputs (:attr:`ImageClassifier.output_kind`) and trainers which labels its loss takes
(:attr:`ImageClassifier.label_format`).

>>> from kerascnn.tasks import ImageClassifier
>>> task = ImageClassifier.from_preset("resnet20", num_classes=10)
>>> task.output_kind, task.label_format
('logits', 'sparse')
"""

from __future__ import annotations

import dataclasses

import keras

from kerascnn.activations import outputs_are_probabilities
from kerascnn.checks import check_choice, check_float, check_int, check_options
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.mix import MixStep, _BatchMixer, to_one_hot
from kerascnn.layers.standardize import Standardize
from kerascnn.zoo.pixels import PixelInputCheck

__all__ = [
    "ImageClassifier",
    "input_layers",
    "InputLayers",
    "PRESET_HEADS",
    "split_classifier",
    "TASK_OPTIONS",
]

PRESET_HEADS = ("zoo", "new")
#: :class:`ImageClassifier`'s ``**options`` (its head's, and Keras's ``trainable``) and
#: their defaults
TASK_OPTIONS = {
    "pooling": "avg",
    "dropout": 0.0,
    "activation": None,
    "kernel_regularizer": None,
    "head_dtype": None,
    "trainable": True,
}
_POOLINGS = (None, "avg", "max")
_ACTIVATIONS = (None, "linear", "softmax")


def _serialize(obj):
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def _deserialize(config):
    return None if config is None else keras.saving.deserialize_keras_object(config)


def _loss_takes_onehot(loss) -> bool:
    """Whether ``loss`` (as given to ``compile``) compares one-hot labels with the outputs:
    every loss but the sparse ones (``SparseCategoricalCrossentropy``, ``"sparse_..."``)."""
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss.values()))
    if loss is None:
        return False
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__ + " " + str(getattr(loss, "name", ""))
        fn = getattr(loss, "fn", None)  # LossFunctionWrapper
        name += " " + getattr(fn, "__name__", "")
    else:
        name = getattr(loss, "__name__", type(loss).__name__)
    return "sparse" not in name.lower()


@dataclasses.dataclass(frozen=True)
class InputLayers:
    """The layers a task puts before its backbone, made for one training set
    (:func:`input_layers`).

    Attributes:
        augmentation: the per-image augmentation layers (identity unless ``training``).
        preprocessing: the normalization layer (``Standardize`` / ``Rescaling``), or none:
            with it the task takes raw 0..255 pixels.
        mixer: the ``MixUp`` / ``CutMix`` layer of the task's train step, or ``None``.
        normalization: the resolved :class:`~kerascnn.pipelines.Normalization` (its
            statistics).
    """

    augmentation: list
    preprocessing: list
    mixer: keras.layers.Layer | None
    normalization: object

    def task_options(self) -> dict:
        """``augmentation``, ``preprocessing`` and ``mixer``: :class:`ImageClassifier`
        arguments (``ImageClassifier.from_preset(name, **layers.task_options())``)."""
        return {
            "augmentation": list(self.augmentation),
            "preprocessing": list(self.preprocessing),
            "mixer": self.mixer,
        }


def input_layers(
    dataset, augment=None, *, normalize="standardize", seed: int = 0, mean=None, std=None
) -> InputLayers:
    """The task's input layers for training on ``dataset``: the augmentation and MixUp /
    CutMix of the spec ``augment`` and the normalization of the data.

    Args:
        dataset: the training :class:`~kerascnn.pipelines.Dataset` (its image shape, classes
            and pixel statistics).
        augment: ``None``, a spec string (``"flip,padcrop:4:mean,mixup:0.2"``; see
            :mod:`kerascnn.pipelines.augment_spec`) or a list of layers / spec items.
        normalize: ``"standardize"`` (per-channel, with ``mean`` / ``std`` or the data's),
            ``"scale"`` (to [0, 1]), ``"none"``, or a
            :class:`~kerascnn.pipelines.Normalization`.
        seed: the layers built from a spec string get ``seed``, ``seed + 1``, ... (the
            same layers as :func:`kerascnn.pipelines.build` with the same seed).
        mean, std: per-channel statistics in pixel units for ``"standardize"``.

    Example:
        >>> layers = input_layers(train, "flip,padcrop,mixup:0.2", seed=1)
        >>> task = ImageClassifier.from_preset("resnet20", **layers.task_options())
        >>> task.compile(); task.fit(kerascnn.pipelines.build(train, normalize="none").dataset)
    """
    from kerascnn.pipelines import parse_augment, resolve_normalization
    from kerascnn.pipelines.augment_spec import fill_mean

    norm = resolve_normalization(normalize, dataset, mean, std)
    plan = parse_augment(
        augment, seed=seed, image_shape=dataset.image_shape, num_classes=dataset.num_classes,
        mean=fill_mean(augment, norm, dataset),
    )  # fmt: skip
    layer = norm.layer()
    return InputLayers(list(plan.layers), [] if layer is None else [layer], plan.mix, norm)


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(backbone, head)`` of a functional classifier, sharing its layers and weights.

    The split is at the last feature map of the trunk: the input of the first global
    pooling or ``Flatten`` (or the first non-4-D tensor) that every input-to-output path
    passes through (as :mod:`kerascnn.zoo.features` finds stage outputs). The parameters of
    the two parts add up to ``model``'s.
    """
    from kerascnn.zoo.features import HEAD_LAYERS, trunk_nodes

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserInputError(
            f"split_classifier needs a model with one input and one output; {model.name!r} "
            f"has {len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    trunk = trunk_nodes(model)
    features = None
    for before, node in zip(trunk, trunk[1:], strict=False):
        if isinstance(node.operation, HEAD_LAYERS) or len(node.output_tensors[0].shape) != 4:
            features = before.output_tensors[0]
            break
    if features is None or features is model.inputs[0]:
        raise UserInputError(
            f"found no classifier top in {model.name!r} (no global pooling or Flatten after "
            "its feature maps)"
        )
    backbone = keras.Model(model.inputs[0], features, name=f"{model.name}_backbone")
    head = keras.Model(features, model.outputs[0], name=f"{model.name}_head")
    return backbone, head


@keras.saving.register_keras_serializable(package="kerascnn")
class ImageClassifier(MixStep, PixelInputCheck, keras.Model):
    """An image classifier built from a backbone: a functional Keras model.

    Args:
        backbone: a functional model from images ``(batch, height, width, channels)`` to
            features, e.g. ``kerascnn.zoo.create("resnet20", include_top=False)`` (a 4-D
            feature map) or with ``pooling="avg"`` (2-D features; then ``pooling=None``).
        num_classes: number of classes (outputs). With ``head`` given, read from it when None.
        preprocessing: layers applied to the raw pixels before the backbone, e.g. the
            data's ``Standardize`` (:func:`input_layers`); they make the
            task, its ``.keras`` file and its exports take raw 0..255 pixels.
        augmentation: layers applied first, before ``preprocessing``; kerascnn's
            augmentation layers are the identity unless ``training`` is true, so evaluation,
            prediction and exports skip them.
        head: None for the generic head below, or a model / layer from the backbone's
            features to class scores (e.g. a zoo model's own top; :func:`split_classifier`).
        mixer: a ``MixUp`` / ``CutMix`` layer that mixes each training batch inside
            ``train_step`` (integer labels are made one-hot first); None: no mixing.
        label_smoothing: the cross-entropy's label smoothing of ``compile(loss="auto")``.
        name: the model's name.
        **options: the head's options (:data:`TASK_OPTIONS`), and Keras's ``trainable``:

            pooling: generic head: ``"avg"`` (default) or ``"max"`` global pooling of a 4-D
                feature map, or None for 2-D features.
            dropout: generic head: dropout rate before the classifier (default 0: none).
            activation: None (logits, default) or ``"softmax"`` (probabilities): the output
                layer, in float32 whatever the dtype policy.
            kernel_regularizer: generic head: regularizer of the ``predictions`` kernel.
            head_dtype: dtype policy of the head's layers (default: the global policy); the
                output is float32 in any case.

    Input: with a :class:`~kerascnn.layers.Standardize` in ``preprocessing`` the task takes
    raw 0..255 pixels, and floats in 0..1 given to ``predict`` / ``evaluate`` / a call raise a
    :class:`~kerascnn.zoo.pixels.PixelRangeWarning`.

    Labels: data pipelines give integer class ids. :attr:`label_format` is the format the
    task trains with (``"onehot"`` with a mixer or label smoothing, else ``"sparse"``), and
    ``compile(loss="auto")`` picks the matching cross-entropy. Whatever loss is compiled,
    integer labels are converted to one-hot in ``compute_loss`` / ``compute_metrics`` when
    that loss is not a sparse one, so the same integer batches serve training, validation
    and ``evaluate``.

    Example:
        >>> backbone = kerascnn.zoo.create("resnet20", include_top=False)
        >>> task = ImageClassifier(backbone, 10, mixer=kerascnn.layers.MixUp(0.2, seed=1))
        >>> task.compile(keras.optimizers.SGD(0.1))     # loss: CategoricalCrossentropy
        >>> task.fit(images, integer_labels)             # doctest: +SKIP
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int | None = None,
        *,
        preprocessing=(),
        augmentation=(),
        head=None,
        mixer=None,
        label_smoothing: float = 0.0,
        name: str | None = None,
        **options,
    ):
        options = check_options("ImageClassifier", options, TASK_OPTIONS)
        pooling, dropout, activation = options["pooling"], options["dropout"], options["activation"]
        kernel_regularizer, head_dtype = options["kernel_regularizer"], options["head_dtype"]
        if not isinstance(backbone, keras.Model) or not getattr(backbone, "inputs", None):
            raise UserInputError(
                f"backbone must be a functional keras.Model with an image input; received {backbone!r}"
            )
        if len(backbone.inputs) != 1 or len(backbone.inputs[0].shape) != 4:
            raise UserInputError(
                "backbone must take one image input (batch, height, width, channels); "
                f"received inputs {[t.shape for t in backbone.inputs]}"
            )
        check_choice("pooling", pooling, _POOLINGS)
        if activation not in _ACTIVATIONS:
            raise UserInputError(
                f"activation must be None (logits) or 'softmax'; received activation={activation!r}"
            )
        activation = None if activation == "linear" else activation
        check_float("dropout", dropout, 0.0, 1.0)
        check_float("label_smoothing", label_smoothing, 0.0, 1.0)
        if mixer is not None and not isinstance(mixer, _BatchMixer):
            raise UserInputError(
                f"mixer must be a MixUp or CutMix layer or None; received {mixer!r}"
            )
        if head is None:
            check_int("num_classes", num_classes, 1)
        preprocessing, augmentation = list(preprocessing), list(augmentation)
        head_dtype = keras.dtype_policies.get(head_dtype or keras.config.dtype_policy())
        kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        # === Layers ===
        inputs = keras.Input(shape=tuple(backbone.inputs[0].shape[1:]), name="images")
        x = inputs
        for layer in augmentation + preprocessing:
            x = layer(x)
        x = backbone(x)
        if head is None:
            rank = len(x.shape)
            if rank == 4 and pooling is None:
                raise UserInputError(
                    "the backbone outputs a 4-D feature map: pass pooling='avg' or 'max' (or a "
                    "backbone built with pooling=...)"
                )
            if rank == 2 and pooling is not None:
                raise UserInputError(
                    f"the backbone outputs pooled features; pass pooling=None (received {pooling!r})"
                )
            if rank not in (2, 4):
                raise UserInputError(
                    f"the backbone's output must be 2-D or 4-D; received {x.shape}"
                )
            if pooling == "avg":
                x = keras.layers.GlobalAveragePooling2D(dtype=head_dtype, name="pool")(x)
            elif pooling == "max":
                x = keras.layers.GlobalMaxPooling2D(dtype=head_dtype, name="pool")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, dtype=head_dtype, name="dropout")(x)
            x = keras.layers.Dense(
                num_classes, kernel_regularizer=kernel_regularizer, dtype=head_dtype,
                name="predictions",
            )(x)  # fmt: skip
        else:
            x = head(x)
            if num_classes is None:
                num_classes = int(x.shape[-1])
            elif int(x.shape[-1]) != num_classes:
                raise UserInputError(
                    f"the head outputs {x.shape[-1]} classes; received num_classes={num_classes}"
                )
        kind = self._kind(activation, head)
        outputs = keras.layers.Activation(activation or "linear", dtype="float32", name=kind)(x)

        # === Functional model ===
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=options["trainable"])

        # === Config ===
        self.backbone = backbone
        self.head = head
        self.mixer = mixer  # tracked: its seed is state of the train step
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.dropout = float(dropout)
        self.activation = activation
        self.kernel_regularizer = kernel_regularizer
        self.label_smoothing = float(label_smoothing)
        self.head_dtype = head_dtype
        self._output_kind = kind
        self._onehot_labels = self.label_format == "onehot"

    def takes_pixels(self) -> bool:
        """Whether the task's input is raw pixels (its preprocessing standardizes them)."""
        return any(isinstance(layer, Standardize) for layer in self.preprocessing)

    @staticmethod
    def _kind(activation, head) -> str:
        if activation == "softmax":
            return "probabilities"
        if head is not None:
            if outputs_are_probabilities(head):
                return "probabilities"
        return "logits"

    # ------------------------------------------------------------------ what it is
    @property
    def output_kind(self) -> str:
        """``"logits"`` or ``"probabilities"`` (softmax applied): what the outputs are."""
        return self._output_kind

    @property
    def label_format(self) -> str:
        """``"onehot"`` (a mixer or label smoothing) or ``"sparse"``: the labels of the loss
        the task trains with (``compile(loss="auto")``); data stays integer class ids."""
        return "onehot" if self.mixer is not None or self.label_smoothing else "sparse"

    # ------------------------------------------------------------------ training
    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """``keras.Model.compile`` with task defaults: ``optimizer="auto"`` is Adam (1e-3);
        ``loss="auto"`` the cross-entropy of :attr:`label_format` and :attr:`output_kind`
        (with ``label_smoothing``); ``metrics="auto"`` the matching accuracy."""
        onehot = self.label_format == "onehot"
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(1e-3)
        if loss == "auto":
            loss = self.default_loss()
        if metrics == "auto":
            metric = (
                keras.metrics.CategoricalAccuracy
                if onehot
                else keras.metrics.SparseCategoricalAccuracy
            )
            metrics = [metric(name="accuracy")]
        takes_onehot = _loss_takes_onehot(loss)
        if self.mixer is not None and not takes_onehot:
            raise UserInputError(
                f"{type(self.mixer).__name__} mixes labels into soft labels, which a sparse loss "
                f"cannot take; compile with a one-hot loss (e.g. CategoricalCrossentropy, "
                f"loss='auto'); received loss={loss!r}"
            )
        self._onehot_labels = takes_onehot
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def default_loss(self) -> keras.losses.Loss:
        """The loss of ``compile(loss="auto")``: the cross-entropy of :attr:`label_format`
        (one-hot with ``label_smoothing``, else sparse) on :attr:`output_kind`."""
        from_logits = self.output_kind == "logits"
        if self.label_format == "onehot":
            return keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=self.label_smoothing
            )
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)

    def compile_from_config(self, config):
        """Recompile a loaded task with its saved compile arguments (Keras skips models with
        their own ``compile``)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _labels(self, y):  # for the compiled loss (compile sets _onehot_labels)
        return None if y is None else self.loss_labels(y, self._onehot_labels)

    def _labels_to_mix(self, y):  # MixStep: the mixer takes one-hot labels
        return to_one_hot(y, self.num_classes)

    def training_batch(self, x, y, one_hot: bool | None = None):
        """``(x, y)`` of a training batch as this task's ``train_step`` feeds them to its
        loss: mixed by :attr:`mixer` (labels made one-hot first), integer labels made
        one-hot when ``one_hot`` (default: :attr:`label_format` is ``"onehot"``). For
        training loops that call the model themselves (the multi-worker loop of
        :mod:`kerascnn.training.distribute`); stateful: the mixer's seed advances."""
        if self.mixer is not None:
            x, y = self.mixer(x, self._labels_to_mix(y), training=True)
        return x, self.loss_labels(y, one_hot)

    def loss_labels(self, y, one_hot: bool | None = None):
        """Labels ``y`` in the format of the loss: integer class ids made one-hot when
        ``one_hot`` (default: :attr:`label_format` is ``"onehot"``); one-hot labels as they
        are."""
        one_hot = self.label_format == "onehot" if one_hot is None else one_hot
        if one_hot and "int" in keras.backend.standardize_dtype(y.dtype):
            return to_one_hot(y, self.num_classes)
        return y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(
            x=x, y=self._labels(y), y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, self._labels(y), y_pred, sample_weight=sample_weight)

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": _serialize(self.backbone),
            "num_classes": self.num_classes,
            "preprocessing": [_serialize(layer) for layer in self.preprocessing],
            "augmentation": [_serialize(layer) for layer in self.augmentation],
            "head": _serialize(self.head),
            "pooling": self.pooling,
            "dropout": self.dropout,
            "activation": self.activation,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
            "mixer": _serialize(self.mixer),
            "label_smoothing": self.label_smoothing,
            "head_dtype": _serialize(self.head_dtype),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "head", "mixer", "kernel_regularizer", "head_dtype"):
            config[key] = _deserialize(config.get(key))
        for key in ("preprocessing", "augmentation"):
            config[key] = [_deserialize(c) for c in config.get(key) or ()]
        return cls(**config)

    # ------------------------------------------------------------------ from the zoo
    @classmethod
    def from_preset(
        cls,
        preset: str,
        *,
        weights: str | None = None,
        num_classes: int | None = None,
        input_shape=None,
        head: str = "zoo",
        model_options: dict | None = None,
        **options,
    ) -> ImageClassifier:
        """The task of registered model ``preset``: the one way kerascnn assembles a model
        (the command line, :func:`kerascnn.training.train`, the experiments and the exports
        all use it).

        Args:
            preset: a registered name (``kerascnn list``, :func:`kerascnn.zoo.list_models`).
            weights: trained weights of ``preset`` (``kerascnn.zoo.model_info(preset).weights``,
                e.g. ``"cifar10"``): the backbone and top take them and ``preprocessing``
                defaults to their standardization (:func:`kerascnn.zoo.presets.preprocessing`),
                so the task takes raw 0..255 pixels.
            num_classes, input_shape: for the builder (its defaults when None). With
                ``weights`` and ``head="zoo"`` they must be the weights' own.
            head: ``"zoo"``: the model's own top, as its paper has it (ResNet's pooling and
                ``Dense``, VGG's fully connected layers, MobileNet v3's and ConvNeXt's heads),
                with the weights' trained values; ``"new"``: global average pooling and a new
                ``Dense`` "predictions" of ``num_classes`` on the (trained) features, for
                fine-tuning on other classes (``dropout`` and ``kernel_regularizer`` options
                apply to it).
            model_options: more builder arguments (``l2``, ``dropout``, ``width``, ...).
            **options: :class:`ImageClassifier` arguments (``preprocessing``,
                ``augmentation``, ``mixer``, ``label_smoothing``, ``name`` (default: ``preset``)
                ...).

        Example:
            >>> task = ImageClassifier.from_preset("resnet20", weights="cifar10")
            >>> task.predict(uint8_images)                           # doctest: +SKIP
        """
        from kerascnn import zoo

        check_choice("head", head, PRESET_HEADS)
        build = dict(model_options or {})
        for key in ("include_top", "pooling", "include_preprocessing", "weights"):
            if key in build:
                raise UserInputError(
                    f"model_options cannot set {key!r}: the task decides it "
                    f"(received model_options[{key!r}]={build[key]!r})"
                )
        if input_shape is not None:
            build["input_shape"] = tuple(input_shape)
        if num_classes is not None and (head == "zoo" or weights is None):
            build["num_classes"] = num_classes
        options.setdefault("name", preset)
        if weights is not None:
            from kerascnn.zoo import presets

            options.setdefault("preprocessing", presets.preprocessing(preset, weights))
            build.update(weights=weights, include_preprocessing=False)
        model = zoo.create(preset, **build)
        if head == "new":
            backbone, _ = split_classifier(model)
            if num_classes is None:
                num_classes = int(model.outputs[0].shape[-1])
            return cls(backbone, num_classes, **options)
        return cls.from_model(model, **options)

    @classmethod
    def from_zoo(
        cls,
        model_name: str,
        num_classes: int | None = None,
        *,
        input_shape=None,
        head: str = "zoo",
        zoo_kwargs: dict | None = None,
        weights: str | None = None,
        **kwargs,
    ) -> ImageClassifier:
        """Deprecated: :meth:`from_preset` (``zoo_kwargs`` is its ``model_options``;
        ``head="generic"`` its ``head="new"``)."""
        import warnings

        warnings.warn(
            "ImageClassifier.from_zoo is deprecated; use ImageClassifier.from_preset(name, "
            "weights=..., num_classes=..., model_options=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        head = {"generic": "new", "auto": "zoo"}.get(head, head)
        return cls.from_preset(
            model_name, weights=weights, num_classes=num_classes, input_shape=input_shape,
            head=head, model_options=zoo_kwargs, **kwargs,
        )  # fmt: skip

    @classmethod
    def from_model(cls, model: keras.Model, **options) -> ImageClassifier:
        """The task of a functional classifier ``model`` (a zoo model, or one of your own):
        its features (:func:`split_classifier`) as the backbone and its own top as the head
        (their layers and weights shared with ``model``), only the float32 output added.

        Args:
            model: a functional model from images to class scores, with a global pooling or
                ``Flatten`` between its feature maps and its top.
            **options: :class:`ImageClassifier` arguments (``preprocessing``,
                ``augmentation``, ``mixer``, ``name`` ...; default name: ``model``'s).
        """
        if "head" in options:  # the former head="zoo" / "generic" / "auto"
            if options.pop("head") != "zoo":
                raise UserInputError(
                    "from_model keeps the model's own top; for a new head use "
                    "ImageClassifier(backbone, num_classes) with split_classifier(model)[0]"
                )
        backbone, top = split_classifier(model)
        options.setdefault("name", model.name)
        return cls(backbone, int(model.outputs[0].shape[-1]), head=top, **options)
