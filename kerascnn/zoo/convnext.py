"""ConvNeXt (Liu et al. 2022): a ResNet modernized towards vision transformers.

A 4x4 stride-4 "patchify" stem, four stages of ConvNeXt blocks (7x7 depthwise conv,
LayerNorm over channels, 1x1 expansion to 4x with GELU, 1x1 projection, layer scale,
stochastic depth, identity shortcut), downsampling layers of LayerNorm + 2x2 stride-2 conv
between stages. The architecture is data: ``SIZES`` holds each size's channels and blocks.
"""

from __future__ import annotations

import keras

from kerascnn.errors import UserInputError
from kerascnn.zoo import common
from kerascnn.zoo.registry import ModelInfo, register_rows

__all__ = [
    "LayerScale",
    "ROWS",
    "SIZES",
    "convnext",
    "convnext_block",
]

LIU2022 = "Liu et al. 2022, A ConvNet for the 2020s (arXiv:2201.03545)"

# Section 3 and torchvision: channels and blocks per stage, and the stochastic depth rate
# of the ImageNet-1K recipe (torchvision's ``stochastic_depth_prob``).
SIZES = {
    "tiny": ((96, 192, 384, 768), (3, 3, 9, 3), 0.1),
    "small": ((96, 192, 384, 768), (3, 3, 27, 3), 0.4),
    "base": ((128, 256, 512, 1024), (3, 3, 27, 3), 0.5),
    "large": ((192, 384, 768, 1536), (3, 3, 27, 3), 0.5),
}


@keras.saving.register_keras_serializable(package="kerascnn")
class LayerScale(keras.layers.Layer):
    """Multiplies its input by a learned per-channel vector (Touvron et al. 2021, CaiT).

    Args:
        init_value: the initial value of every scale (1e-6 in ConvNeXt, so each block
            starts close to the identity).

    Call arguments:
        inputs: a tensor whose last axis holds the channels.

    Input shape: ``(batch, ..., channels)``. Output shape: same as the input.

    Example:
        >>> y = LayerScale(1e-6)(keras.ops.ones((2, 7, 7, 96)))
    """

    def __init__(self, init_value: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(init_value, (int, float)) and not isinstance(init_value, bool)
        if not ok or init_value <= 0:
            raise UserInputError(
                f"init_value must be a number > 0; received init_value={init_value!r}"
            )
        self.init_value = float(init_value)

    def build(self, input_shape):
        self.scale = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init_value),
            trainable=True,
            name="scale",
        )

    def call(self, inputs):
        return inputs * keras.ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}


def convnext_block(b: common.Builder, x, layer_scale, drop_rate: float, name: str):
    """7x7 depthwise conv -> norm -> 1x1 conv to 4x + GELU -> 1x1 conv back -> layer scale
    -> stochastic depth, added to the input."""
    channels = x.shape[-1]
    y = b.depthwise(x, 7, f"{name}_dwconv", use_bias=True)
    y = b.normalize(y, f"{name}_norm")
    y = b.dense(y, 4 * channels, f"{name}_pwconv1")
    y = b.act(y, f"{name}_gelu", "gelu")
    y = b.dense(y, channels, f"{name}_pwconv2")
    if layer_scale:
        y = LayerScale(layer_scale, name=f"{name}_layer_scale")(y)
    if drop_rate > 0:
        from kerascnn.layers import StochasticDepth

        y = StochasticDepth(drop_rate, name=f"{name}_drop_path")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


@common.zoo_builder
def convnext(
    size: str = "tiny",
    *,
    channels=None,
    blocks=None,
    layer_scale: float | None = 1e-6,
    drop_path_rate: float | None = None,
    norm: common.NormSpec = "channel_layer",
    shared: common.Shared,
) -> keras.Model:
    """ConvNeXt (torchvision's layout and parameter counts).

    Stem: 4x4 stride-4 conv (with bias) + norm; four stages of ConvNeXt blocks, each stage
    after the first preceded by norm + 2x2 stride-2 conv; global average pooling, norm,
    linear classifier. ConvNeXt-T: 28,589,128 trainable parameters at 224x224x3 / 1000
    classes.

    Args:
        size: ``"tiny"``, ``"small"``, ``"base"`` or ``"large"``: channels, blocks and
            default stochastic depth of that size.
        channels, blocks: per-stage channels and blocks, overriding the size's.
        layer_scale: initial value of the per-channel layer scale (1e-6 in the paper);
            ``None`` or 0 leaves it out.
        drop_path_rate: stochastic depth; block ``i`` (0-based) of ``N`` drops its branch
            with rate ``drop_path_rate * i / (N - 1)`` (torchvision's rule). Default: the
            size's ImageNet-1K rate (0.1 tiny, 0.4 small, 0.5 base and large).
        norm: ``"channel_layer"`` (default: ``keras.layers.LayerNormalization`` over the
            channels, eps 1e-6, as the paper) or any other of the zoo's ``norm=`` values
            (e.g. ``"batch"``, the paper's ablation).

    Returns:
        A functional ``keras.Model`` with layer names like ``stage3_block9_pwconv1``.
    """
    common.check_choice("size", size, tuple(SIZES))
    default_channels, default_blocks, default_rate = SIZES[size]
    channels = common.check_int_list("channels", default_channels if channels is None else channels)
    blocks = common.check_int_list("blocks", default_blocks if blocks is None else blocks)
    if len(channels) != len(blocks):
        raise UserInputError(
            f"channels and blocks must have one entry per stage; received channels={channels!r} "
            f"and blocks={blocks!r}"
        )
    if layer_scale is not None:
        common.check_float("layer_scale", layer_scale, 0.0, 1e3)
    drop_path_rate = default_rate if drop_path_rate is None else drop_path_rate
    common.check_float("drop_path_rate", drop_path_rate, 0.0, 1.0)
    input_shape, inputs = shared.inputs((224, 224, 3), 4 * 2 ** (len(blocks) - 1))
    num_classes = shared.classes(1000)
    b = shared.builder(norm, activation="gelu")

    x = b.conv(inputs, channels[0], 4, "stem_conv", strides=4, padding="valid", use_bias=True)
    x = b.normalize(x, "stem_norm")
    total = sum(blocks)
    index = 0
    for stage, (c, n) in enumerate(zip(channels, blocks, strict=True), start=1):
        if stage > 1:
            x = b.normalize(x, f"downsample{stage}_norm")
            x = b.conv(
                x, c, 2, f"downsample{stage}_conv", strides=2, padding="valid", use_bias=True
            )
        for i in range(1, n + 1):
            rate = drop_path_rate * index / (total - 1) if total > 1 else 0.0
            x = convnext_block(b, x, layer_scale, rate, f"stage{stage}_block{i}")
            index += 1

    def head(x):
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="head_pool")(x)
        x = b.normalize(x, "head_norm")
        x = keras.layers.Flatten(name="head_flatten")(x)
        return b.dense(x, num_classes, "head_fc", activation=shared.classifier_activation)

    return shared.finish(inputs, x, head, f"convnext_{size}")


ROWS = (
    ModelInfo("convnext_tiny", convnext, {"size": "tiny"},
              family="convnext", dataset="imagenet", paper=LIU2022),
    ModelInfo("convnext_small", convnext, {"size": "small"},
              family="convnext", dataset="imagenet", paper=LIU2022),
    ModelInfo("convnext_base", convnext, {"size": "base"},
              family="convnext", dataset="imagenet", paper=LIU2022),
)  # fmt: skip
register_rows(*ROWS)
