"""Fold batch normalization into the preceding convolution for inference.

At inference a batch-norm layer is a per-channel affine map,
``y = gamma * (z - mean) / sqrt(var + eps) + beta``. When ``z`` is the output of a
convolution (or dense layer) with a linear activation that feeds nothing else, the map moves
into that layer's kernel and bias:

    s = gamma / sqrt(var + eps)
    kernel' = kernel * s          (per output channel)
    bias'   = (bias - mean) * s + beta

``fold_batchnorm(model)`` returns a new functional model in which every such pair is one
convolution with a bias; the batch-norm layers become ``keras.layers.Identity`` (which costs
nothing in a traced graph), so layer names and the topology stay those of the original.
Use it for export only: the folded model has no batch statistics left to train.

    folded = kerascnn.fold.fold_batchnorm(model)
    kerascnn.export.saved_model(folded, "saved_models/resnet56/1")
"""

from __future__ import annotations

import keras
import numpy as np

from kerascnn.activations import activation_name
from kerascnn.errors import UserInputError

__all__ = [
    "fold_batchnorm",
    "foldable_pairs",
]

# Exact types: subclasses (kerascnn's DropConnectConv2D, HadamardConv2D, ...) transform their
# kernel in call(), so scaling the stored kernel would not scale what they compute.
_FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def _is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization) and not layer.renorm


def _channel_axis(layer) -> int:
    """The output channel axis of a conv/dense layer, as a negative index (rank 4 or 2)."""
    if isinstance(layer, keras.layers.Dense):
        return -1
    return -3 if layer.data_format == "channels_first" else -1


def _node_input_layer(node):
    """The single layer whose output feeds ``node``, or ``None``."""
    tensors = node.input_tensors
    if len(tensors) != 1:
        return None
    return tensors[0]._keras_history.operation


def _config_of(layer) -> dict:
    """``layer.get_config()`` with an activation given as another library's function
    (``tf.nn.softmax``, which Keras cannot deserialize) replaced by the name of the Keras
    activation it computes (:func:`kerascnn.activations.activation_name`)."""
    config = layer.get_config()
    if not isinstance(config.get("activation", ""), str):
        name = activation_name(layer.activation)
        if name is not None:
            config["activation"] = name
    return config


def foldable_pairs(model: keras.Model) -> list[tuple[str, str]]:
    """``[(conv name, batch-norm name), ...]`` that :func:`fold_batchnorm` would fold.

    A pair qualifies when the batch norm is called once, on the output of a ``Conv2D``,
    ``DepthwiseConv2D`` or ``Dense`` layer that is called once, has a linear activation and
    feeds only that batch norm, and the batch norm normalizes that layer's channel axis.
    """
    pairs = []
    for layer in model.layers:
        if not _is_batch_norm(layer) or len(layer._inbound_nodes) != 1:
            continue
        prev = _node_input_layer(layer._inbound_nodes[0])
        if type(prev) not in _FOLDABLE or len(prev._inbound_nodes) != 1:
            continue
        if len(prev._outbound_nodes) != 1 or activation_name(prev.activation) != "linear":
            continue
        rank = len(prev.output.shape)
        if isinstance(prev, keras.layers.Dense) and rank != 2:
            continue
        if (layer.axis % rank) != (_channel_axis(prev) % rank):
            continue
        pairs.append((prev.name, layer.name))
    return pairs


def _scale_and_shift(bn):
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), dtype=np.float64)
    var = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), dtype=np.float64)
    gamma = np.ones_like(mean) if bn.gamma is None else keras.ops.convert_to_numpy(bn.gamma)
    beta = np.zeros_like(mean) if bn.beta is None else keras.ops.convert_to_numpy(bn.beta)
    scale = np.asarray(gamma, np.float64) / np.sqrt(var + bn.epsilon)
    return scale, np.asarray(beta, np.float64) - mean * scale


def _folded_weights(conv, bn):
    """``(kernel, bias)`` of ``conv`` with ``bn`` folded in, computed in float64."""
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), np.float64)
    scale, shift = _scale_and_shift(bn)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # kernel (kh, kw, in, multiplier); output channel c = i * multiplier + m
        s = scale.reshape(kernel.shape[2], kernel.shape[3])
        kernel = kernel * s
    else:
        kernel = kernel * scale  # output channels are the last kernel axis
    bias = shift.copy()
    if conv.use_bias:
        bias += np.asarray(keras.ops.convert_to_numpy(conv.bias), np.float64) * scale
    return kernel, bias


def fold_batchnorm(model: keras.Model, verbose: bool = False) -> keras.Model:
    """A copy of ``model`` for inference with batch norms folded into their convolutions.

    Args:
        model: a functional or Sequential Keras model (``keras.layers.BatchNormalization``
            and subclasses such as kerascnn's ``FusedBatchNormalization`` are folded;
            batch norms that follow anything else are kept). Nested functional or
            Sequential models, such as a zoo model behind preprocessing layers, are folded
            too.
        verbose: print how many pairs were folded.

    Returns:
        A new functional model with the same inputs, outputs and layer names; each folded
        convolution has a bias and each folded batch norm is a ``keras.layers.Identity``.
        Its inference outputs equal ``model(x, training=False)`` up to float rounding
        (about 1e-6 relative). The original model is not changed.

    Raises:
        ValueError: ``model`` is a subclassed model (no graph to rewrite).

    Example:
        >>> model = kerascnn.zoo.resnet(depth=20)
        >>> folded = fold_batchnorm(model)
        >>> len(foldable_pairs(folded))
        0
    """
    from keras.src.models.functional import Functional

    if not (isinstance(model, Functional) or (isinstance(model, keras.Sequential) and model.built)):
        raise UserInputError(
            "fold_batchnorm needs a functional or built Sequential model; received a "
            f"{type(model).__name__}"
        )
    pairs = foldable_pairs(model)
    conv_to_bn = {c: model.get_layer(b) for c, b in pairs}
    bn_names = {b for _, b in pairs}

    def is_graph(layer):
        return isinstance(layer, Functional) or (
            isinstance(layer, keras.Sequential) and layer.built
        )

    def clone(layer):
        if is_graph(layer):  # a nested model (e.g. a zoo model behind preprocessing layers)
            return fold_batchnorm(layer)
        if layer.name in bn_names:
            return keras.layers.Identity(name=layer.name)
        config = _config_of(layer)
        if layer.name in conv_to_bn:
            config["use_bias"] = True
            config["bias_initializer"] = "zeros"
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.Identity):  # a folded BN: drop training=, mask=
            return layer(args[0])
        return layer(*args, **kwargs)

    graph = model
    if isinstance(model, keras.Sequential):  # clone_model's call_function needs a Functional
        graph = keras.Model(model.inputs, model.outputs, name=model.name)
    folded = keras.models.clone_model(graph, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in bn_names or not layer.weights or is_graph(layer):
            continue
        new = folded.get_layer(layer.name)
        if layer.name in conv_to_bn:
            kernel, bias = _folded_weights(layer, conv_to_bn[layer.name])
            new.kernel.assign(kernel.astype(keras.backend.standardize_dtype(new.kernel.dtype)))
            new.bias.assign(bias.astype(keras.backend.standardize_dtype(new.bias.dtype)))
        elif layer.weights:
            new.set_weights(layer.get_weights())
    if verbose:
        print(
            f"fold_batchnorm: folded {len(pairs)} batch norms into their convolutions (nested models included)"
        )
    return folded
