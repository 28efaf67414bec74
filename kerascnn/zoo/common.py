"""Shared building blocks of the zoo: argument checks, the ``norm=`` and ``l2=`` hooks,
and a small context object that makes conv / norm / activation layers with stable names.

Every builder is channels-last (NHWC), the layout Keras uses by default on every backend.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import keras

from kerascnn.checks import (  # noqa: F401
    check_bool,
    check_choice,
    check_float,
    check_input_shape,
    check_int,
    check_int_list,
)
from kerascnn.errors import UserInputError
from kerascnn.zoo.pixels import check_no_preprocessing

__all__ = [
    "ACTIVATION_SUFFIX",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "Builder",
    "InvertedResidual",
    "NORM_KINDS",
    "NormSpec",
    "POOLINGS",
    "activation_suffix",
    "check_classifier_activation",
    "check_top",
    "fc_head",
    "finish",
    "inverted_residual",
    "make_norm_factory",
    "make_regularizer",
    "minimum_input",
    "model_inputs",
    "read_options",
    "require_spatial",
    "resolve_num_classes",
    "squeeze_excite",
]

# Normalization defaults match PyTorch/torchvision (momentum 0.1 there = 0.9 here, eps 1e-5),
# so statistics and checkpoints behave as in the papers' reference implementations.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

NormSpec = str | Callable[[str], keras.layers.Layer] | None


# --------------------------------------------------------------------------- checks
# The generic checks live in kerascnn.checks; the builders call them as common.check_int(...).
def require_spatial(x, minimum: int, where: str, input_shape) -> None:
    """Raise if the feature map ``x`` is smaller than ``minimum`` pixels before ``where``."""
    h, w = x.shape[1], x.shape[2]
    if h < minimum or w < minimum:
        raise UserInputError(
            f"input_shape={tuple(input_shape)!r} is too small for this architecture: the feature "
            f"map is {h}x{w} before {where}, which needs at least {minimum}x{minimum}. "
            "Use a larger input_shape."
        )


def minimum_input(input_shape, factor: int, name: str = "input_shape") -> None:
    """Raise unless height and width are at least ``factor`` (total down-sampling)."""
    if input_shape[0] < factor or input_shape[1] < factor:
        raise UserInputError(
            f"{name}={tuple(input_shape)!r} is too small for this architecture, which "
            f"down-samples by {factor}: height and width must be at least {factor}."
        )


def read_options(options_type: type, options: dict, builder: str):
    """A builder's ``**options`` as ``options_type``, a frozen dataclass whose fields are the
    allowed options with their defaults; an unknown name is refused, naming the allowed ones."""
    allowed = [f.name for f in dataclasses.fields(options_type)]
    for key, value in options.items():
        if key not in allowed:
            raise UserInputError(
                f"{builder} has no argument {key}={value!r}; besides its named arguments and "
                f"the zoo's shared ones it takes {', '.join(allowed)}"
            )
    return options_type(**options)


# --------------------------------------------------------------------------- hooks
def make_regularizer(l2: float | None, kernel_regularizer):
    """The kernel regularizer for every conv and dense kernel of a model.

    ``l2=c`` adds ``c * sum(w**2)`` to the loss (Keras's ``L2`` convention; note that SGD's
    classic ``weight_decay=wd`` equals ``l2 = wd / 2``). For decoupled weight decay leave
    this off and use ``keras.optimizers.AdamW`` or ``SGD(weight_decay=...)``.
    """
    if l2 is not None and kernel_regularizer is not None:
        raise UserInputError(
            "Pass either l2 or kernel_regularizer, not both; received "
            f"l2={l2!r} and kernel_regularizer={kernel_regularizer!r}"
        )
    if l2 is not None:
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 < 0:
            raise UserInputError(f"l2 must be a number >= 0; received l2={l2!r}")
        return keras.regularizers.L2(float(l2)) if l2 > 0 else None
    if kernel_regularizer is None:
        return None
    return keras.regularizers.get(kernel_regularizer)


NORM_KINDS = ("batch", "sync_batch", "layer", "channel_layer", "instance", "group", "none")
# ``norm="channel_layer"``: Keras's LayerNormalization over the channels of each pixel, with
# the transformers' epsilon (ConvNeXt's normalization, Liu et al. 2022).
CHANNEL_LAYER_EPSILON = 1e-6


def make_norm_factory(norm: NormSpec, **defaults) -> Callable[[str], keras.layers.Layer] | None:
    """Turn the ``norm=`` argument into ``factory(name) -> layer`` (or ``None``).

    ``norm`` is ``"batch"`` (``kerascnn.layers.FusedBatchNormalization``: Keras's
    ``BatchNormalization`` on TensorFlow's fused kernel), ``"sync_batch"`` (Keras's,
    synchronized across replicas), ``"layer"``, ``"instance"``, ``"group"`` (kerascnn's
    ``AxisNormalization``), ``"channel_layer"`` (``keras.layers.LayerNormalization`` over
    the channels, epsilon 1e-6 unless given: ConvNeXt's), ``None``/``"none"``, or a callable
    ``name -> layer``.
    """
    if norm is None or norm == "none":
        return None
    if callable(norm):
        return norm
    check_choice("norm", norm, NORM_KINDS)
    momentum = defaults.get("momentum", BN_MOMENTUM)
    epsilon = defaults.get("epsilon", BN_EPSILON)
    if norm == "batch":
        # Keras's BatchNormalization with TensorFlow's fused kernel (same weights, config and
        # statistics; about 2x faster ResNet training on CPU, benchmarks/README.md).
        from kerascnn.layers.fused_batchnorm import FusedBatchNormalization

        return lambda name: FusedBatchNormalization(momentum=momentum, epsilon=epsilon, name=name)
    if norm == "channel_layer":
        epsilon = defaults.get("epsilon", CHANNEL_LAYER_EPSILON)
        return lambda name: keras.layers.LayerNormalization(epsilon=epsilon, name=name)
    if norm == "sync_batch":
        return lambda name: keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, synchronized=True, name=name
        )
    from kerascnn.layers import normalization  # the other kinds live with the layers

    return lambda name: normalization(norm, epsilon=epsilon, name=name)


@dataclasses.dataclass
class Builder:
    """Makes the layers of one model with shared settings and stable names."""

    norm: Callable[[str], keras.layers.Layer] | None
    regularizer: Any
    activation: str = "relu"
    kernel_initializer: Any = "he_normal"

    @classmethod
    def from_args(
        cls, norm: NormSpec, l2=None, kernel_regularizer=None, activation="relu", **norm_defaults
    ):
        return cls(
            norm=make_norm_factory(norm, **norm_defaults),
            regularizer=make_regularizer(l2, kernel_regularizer),
            activation=activation,
        )

    @property
    def has_norm(self) -> bool:
        return self.norm is not None

    def conv(
        self,
        x,
        filters: int,
        kernel_size: int,
        name: str,
        strides: int = 1,
        groups: int = 1,
        use_bias: bool | None = None,
        padding: str = "same",
    ):
        """A 2-D convolution initialized with the builder's ``kernel_initializer``. With
        ``padding="same"`` and a stride > 1 the input is padded symmetrically first
        (PyTorch's convention, so published weights line up)."""
        if use_bias is None:
            use_bias = not self.has_norm
        if padding == "same" and strides > 1 and kernel_size > 1:
            x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            groups=groups,
            use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.regularizer,
            name=name,
        )(x)

    def depthwise(self, x, kernel_size: int, name: str, strides: int = 1, use_bias=None):
        """A depthwise 3x3 (or k x k) convolution, padded like :meth:`conv`."""
        if use_bias is None:
            use_bias = not self.has_norm
        padding = "same"
        if strides > 1:
            x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            depthwise_initializer=self.kernel_initializer,
            depthwise_regularizer=self.regularizer,
            name=name,
        )(x)

    def normalize(self, x, name: str, zero_init: bool = False):
        """The configured normalization, or the input unchanged when ``norm=None``."""
        if self.norm is None:
            return x
        layer = self.norm(name)
        if zero_init and hasattr(layer, "gamma_initializer"):
            layer.gamma_initializer = keras.initializers.get("zeros")
        return layer(x)

    def act(self, x, name: str, activation: str | None = None):
        return keras.layers.Activation(activation or self.activation, name=name)(x)

    def conv_norm_act(
        self, x, filters, kernel_size, name: str, strides=1, groups=1, activation=None, suffix=""
    ):
        """conv -> norm -> activation with names ``{name}_conv{suffix}``, ``_bn``, ``_relu``
        (the activation's short name, :func:`activation_suffix`)."""
        x = self.conv(
            x, filters, kernel_size, f"{name}_conv{suffix}", strides=strides, groups=groups
        )
        x = self.normalize(x, f"{name}_bn{suffix}")
        if activation is False:
            return x
        short = activation_suffix(activation or self.activation)
        return self.act(x, f"{name}_{short}{suffix}", activation)

    def dense(self, x, units: int, name: str, activation=None, use_bias: bool = True):
        return keras.layers.Dense(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_regularizer=self.regularizer,
            name=name,
        )(x)

    def classifier(
        self, x, num_classes: int, classifier_activation=None, dropout: float = 0.0, name="head"
    ):
        """Global average pooling + optional dropout + the linear classifier."""
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
        return self.dense(x, num_classes, f"{name}_fc", activation=classifier_activation)


# --------------------------------------------------------------------------- the top
POOLINGS = (None, "avg", "max")


def check_top(include_top, pooling) -> None:
    """``include_top`` a bool; ``pooling`` one of :data:`POOLINGS`, only without the top."""
    check_bool("include_top", include_top)
    check_choice("pooling", pooling, POOLINGS)
    if include_top and pooling is not None:
        raise UserInputError(
            f"pooling={pooling!r} applies to include_top=False (the classifier's own pooling "
            "is part of the top); pass include_top=False or pooling=None"
        )


def finish(inputs, features, head: Callable, *, include_top: bool, pooling, name: str):
    """The functional model of a builder: ``head(features)`` when ``include_top`` (the
    family's classifier), else the feature map, or its global average / maximum with
    ``pooling="avg"`` / ``"max"`` (layers ``avg_pool`` / ``max_pool``, as keras.applications).
    """
    if include_top:
        outputs = head(features)
    elif pooling == "avg":
        outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    elif pooling == "max":
        outputs = keras.layers.GlobalMaxPooling2D(name="max_pool")(features)
    else:
        outputs = features
    return keras.Model(inputs, outputs, name=name)


def fc_head(b: Builder, num_classes, classifier_activation, hidden_units, dropout):
    """The classic classifier of AlexNet and VGG: flatten, two ``hidden_units`` dense layers
    with ReLU and dropout, the linear classifier (``head_fc``)."""

    def head(x):
        x = keras.layers.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = b.dense(x, hidden_units, f"fc{i}", activation="relu")
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        return b.dense(x, num_classes, "head_fc", activation=classifier_activation)

    return head


@dataclasses.dataclass(frozen=True)
class Shared:
    """The arguments every zoo builder takes (:func:`zoo_builder` adds them to its
    signature and hands them over in one object)."""

    input_shape: Any = None
    num_classes: Any = None
    classifier_activation: str | None = None
    include_top: bool = True
    pooling: str | None = None
    l2: float | None = None
    kernel_regularizer: Any = None
    name: str | None = None

    def __post_init__(self):
        check_classifier_activation(self.classifier_activation)
        check_top(self.include_top, self.pooling)

    def inputs(self, default_shape, minimum: int | None = None):
        """``(input_shape, keras.Input)``: the given shape or ``default_shape``, checked to
        be at least ``minimum`` pixels high and wide (the family's total down-sampling)."""
        shape, inputs = model_inputs(self.input_shape, default_shape)
        if minimum is not None:
            minimum_input(shape, minimum)
        return shape, inputs

    def classes(self, default: int) -> int:
        """The number of classes: the given one or the family's ``default``."""
        return resolve_num_classes(self.num_classes, default)

    def builder(self, norm: NormSpec, activation: str = "relu", **norm_defaults) -> Builder:
        """The :class:`Builder` of the model's layers, with ``l2`` / ``kernel_regularizer``."""
        return Builder.from_args(
            norm, self.l2, self.kernel_regularizer, activation=activation, **norm_defaults
        )

    def finish(self, inputs, features, head: Callable, default_name: str) -> keras.Model:
        """The model (:func:`finish`) named ``name`` or ``default_name``."""
        return finish(
            inputs, features, head, include_top=self.include_top, pooling=self.pooling,
            name=self.name or default_name,
        )  # fmt: skip


SHARED_DOC = """
Arguments of every zoo builder:
    input_shape: ``(height, width, channels)``, channels-last (default: the family's).
    num_classes: outputs of the classifier (default: the family's).
    classifier_activation: ``None`` returns logits (default); ``"softmax"``, ``"sigmoid"``
        or ``"linear"``.
    include_top: ``False`` leaves out the classifier: the model returns the last feature
        map, the backbone (:mod:`kerascnn.zoo.features` finds its stage outputs), or its
        global pooling with ``pooling``.
    pooling: with ``include_top=False``: ``None`` (the 4-D feature map), ``"avg"`` or
        ``"max"`` (one vector per image; layer ``avg_pool`` / ``max_pool``).
    l2: L2 penalty ``l2 * sum(w**2)`` on every conv and dense kernel.
    kernel_regularizer: any Keras regularizer instead of ``l2``.
    name: the model's name (default: derived from the configuration).
    weights: trained weights of the registered variant these arguments build (e.g.
        ``resnet(depth=20, weights="cifar10")``; ``kerascnn list`` shows which exist), or
        a torchvision checkpoint file (``resnet(depth=50, weights="resnet50.pth")``; see
        ``kerascnn.zoo.create``); ``None`` (default) initializes randomly. A model with
        weights takes raw 0..255 pixels (uint8 or float) and standardizes them as the
        weights were trained.
    include_preprocessing: with ``weights``: ``False`` returns the bare network, whose input
        is the standardized image (``kerascnn.zoo.presets.standardize``); default: the
        preset's standardization is the model's first layer (``kerascnn.zoo.pixels``).
"""


def zoo_builder(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Decorator for a family builder ``fn(..., shared: Shared)``: the returned builder takes
    the :class:`Shared` arguments as keywords (they are in its signature and its docstring)
    and passes them to ``fn`` as ``shared``."""
    signature = inspect.signature(fn)
    own = [
        p for p in signature.parameters.values()
        if p.name != "shared" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]  # fmt: skip
    options = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    names = [f.name for f in dataclasses.fields(Shared)]
    added = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
        for f in dataclasses.fields(Shared)
    ]

    @functools.wraps(fn)
    def build(*args, weights=None, include_preprocessing=None, **kwargs):
        given = {n: kwargs.pop(n) for n in names if n in kwargs}
        if weights is None:
            check_no_preprocessing(include_preprocessing)
            return fn(*args, shared=Shared(**given), **kwargs)
        from kerascnn.zoo import registry

        arguments = dict(signature.bind_partial(*args, **kwargs).arguments)
        for p in options:  # the builder's **options, unpacked
            arguments.update(arguments.pop(p.name, {}))
        return registry.load_pretrained(
            lambda **shared: fn(*args, shared=Shared(**shared), **kwargs),
            registry.variant_of(build, arguments), weights, include_preprocessing, **given,
        )  # fmt: skip

    keyword = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter("weights", keyword, default=None),
        inspect.Parameter("include_preprocessing", keyword, default=None),
    ]
    build.__signature__ = signature.replace(parameters=own + added + extra + options)
    build.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n" + SHARED_DOC
    return build


def model_inputs(input_shape, default, name="input"):
    """``keras.Input`` for ``input_shape`` (or ``default``), validated."""
    shape = check_input_shape(default if input_shape is None else input_shape)
    return shape, keras.Input(shape=shape, name=name)


def resolve_num_classes(num_classes, default: int) -> int:
    return check_int("num_classes", default if num_classes is None else num_classes, 1)


def check_classifier_activation(value):
    if value is not None and value not in ("softmax", "sigmoid", "linear"):
        raise UserInputError(
            "classifier_activation must be None (logits), 'softmax', 'sigmoid' or 'linear'; "
            f"received classifier_activation={value!r}"
        )
    return value


# Short names of activations in layer names (``stage2_block1_dw_hswish``).
ACTIVATION_SUFFIX = {
    "relu": "relu",
    "relu6": "relu6",
    "swish": "swish",
    "silu": "swish",
    "hard_swish": "hswish",
    "hard_silu": "hswish",
    "sigmoid": "sigmoid",
    "hard_sigmoid": "hsigmoid",
    "gelu": "gelu",
}


def activation_suffix(activation: str) -> str:
    """The short name of ``activation`` used in layer names."""
    return ACTIVATION_SUFFIX.get(activation, activation)


def squeeze_excite(
    b: Builder, x, squeeze_channels: int, name: str, activation="relu", gate="sigmoid"
):
    """Squeeze-and-excitation (Hu et al. 2018): global average pool, 1x1 conv to
    ``squeeze_channels`` + ``activation``, 1x1 conv back + ``gate``, channel-wise rescale.

    Both 1x1 convolutions carry biases (torchvision's ``SqueezeExcitation``). Layers are
    named ``{name}_pool``, ``_reduce``, ``_{activation}``, ``_expand``, ``_{gate}``, ``_scale``.
    """
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = b.conv(s, squeeze_channels, 1, f"{name}_reduce", use_bias=True)
    s = b.act(s, f"{name}_{activation_suffix(activation)}", activation)
    s = b.conv(s, channels, 1, f"{name}_expand", use_bias=True)
    s = b.act(s, f"{name}_{activation_suffix(gate)}", gate)
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


@dataclasses.dataclass(frozen=True)
class InvertedResidual:
    """The layout of one inverted residual block (:func:`inverted_residual`).

    Args:
        expanded: channels of the 1x1 expansion (none when equal to the input's channels).
        filters: channels of the linear 1x1 projection, the block's output.
        kernel_size: of the depthwise convolution.
        strides: of the depthwise convolution.
        activation: after the expansion and the depthwise conv (default: the builder's).
        se_channels: squeeze-and-excitation bottleneck; 0 leaves it out.
        se_activation, se_gate: the activation and the gate of the squeeze-and-excitation.
    """

    expanded: int
    filters: int
    kernel_size: int = 3
    strides: int = 1
    activation: str | None = None
    se_channels: int = 0
    se_activation: str = "relu"
    se_gate: str = "sigmoid"


def inverted_residual(b: Builder, x, block: InvertedResidual, *, drop_rate: float = 0.0, name: str):
    """The inverted residual block of MobileNet v2 / v3 and EfficientNet's MBConv (Sandler
    et al. 2018; Howard et al. 2019; Tan & Le 2019), laid out by ``block``.

    1x1 expansion conv to ``block.expanded`` channels + norm + activation (left out when
    ``expanded`` equals the input's channels); k x k depthwise conv + norm + activation;
    squeeze-and-excitation to ``se_channels`` (:func:`squeeze_excite`, with ``se_activation``
    and ``se_gate``) when ``se_channels > 0``; linear 1x1 projection to ``filters`` + norm.
    When the stride is 1 and the channels match, the input is added back, the branch first
    going through stochastic depth when ``drop_rate > 0``.

    Layers are named ``{name}_expand_conv``, ``_expand_bn``, ``_expand_{act}``, ``_dw``,
    ``_dw_bn``, ``_dw_{act}``, ``_se_*``, ``_project_conv``, ``_project_bn``, ``_drop_path``,
    ``_add`` (``{act}`` the activation's short name, :func:`activation_suffix`), created in
    this order.
    """
    in_channels = x.shape[-1]
    activation = block.activation or b.activation
    y = x
    if block.expanded != in_channels:
        y = b.conv_norm_act(y, block.expanded, 1, f"{name}_expand", activation=activation)
    y = b.depthwise(y, block.kernel_size, f"{name}_dw", strides=block.strides)
    y = b.normalize(y, f"{name}_dw_bn")
    y = b.act(y, f"{name}_dw_{activation_suffix(activation)}", activation)
    if block.se_channels > 0:
        y = squeeze_excite(
            b, y, block.se_channels, f"{name}_se",
            activation=block.se_activation, gate=block.se_gate,
        )  # fmt: skip
    y = b.conv_norm_act(y, block.filters, 1, f"{name}_project", activation=False)
    if block.strides == 1 and in_channels == block.filters:
        if drop_rate > 0:
            from kerascnn.layers import StochasticDepth

            y = StochasticDepth(drop_rate, name=f"{name}_drop_path")(y)
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y
