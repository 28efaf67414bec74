"""``augment=`` specs: a list of layers, or a string such as ``"flip,padcrop,randaugment:2:9"``.

Grammar: comma-separated items ``name[:arg[:arg]]``. Per-image layers (kerascnn
augmentation layers, in order):

==================  ====================================================  ==================
item                layer                                                 default args
==================  ====================================================  ==================
``flip[:mode]``     ``RandomFlip(mode)`` (horizontal, vertical, both)     ``horizontal``
``padcrop[:p[:f]]`` ``RandomPadCrop(padding=p)``, fill ``f`` (below)       ``4:reflect``
``randaugment:N:M`` ``RandAugment(num_ops=N, magnitude=M)``               ``2:9``
``cutout[:s]``      ``Cutout(size=s)`` (pixels, or a fraction if < 1)     ``16``
``translate[:f]``   ``RandomTranslate(f, f)``                             ``0.125``
``rotate[:deg]``    ``RandomRotate(deg)``                                 ``15``
``zoom[:f]``        ``RandomZoom(f)``                                     ``0.2``
==================  ====================================================  ==================

``padcrop``'s fill: ``reflect`` or ``symmetric`` (mirror the image), ``zero`` (black
pixels, as ``torchvision.transforms.RandomCrop(padding=4)`` before normalization) or ``mean``
(the data's per-channel mean pixel, i.e. zeros after standardization: He et al.'s padding of
the standardized image; needs the data's mean: :func:`fill_mean`).

Batch-level mixing (the task's ``mixer``, in its train step; labels become one-hot there):
``mixup[:alpha]`` -> ``MixUp(alpha)`` (default 0.2) and ``cutmix[:alpha]`` -> ``CutMix(alpha)``
(default 1.0). ``MixUp`` / ``CutMix`` instances in a list are used the same way.

The layers are those of :mod:`kerascnn.layers`. A malformed spec raises
:class:`~kerascnn.errors.UserInputError` naming the item.
"""

from __future__ import annotations

import dataclasses

import keras

from kerascnn.errors import UserInputError

__all__ = [
    "AugmentPlan",
    "fill_mean",
    "FLIP_MODES",
    "kerascnn_layer",
    "LAYER_NAMES",
    "MIX_KINDS",
    "parse_augment",
]

MIX_KINDS = ("mixup", "cutmix")
LAYER_NAMES = ("flip", "padcrop", "randaugment", "cutout", "translate", "rotate", "zoom")
PADCROP_FILLS = ("reflect", "symmetric", "zero", "mean")
FLIP_MODES = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}


@dataclasses.dataclass
class AugmentPlan:
    """The parsed ``augment=``: per-image ``layers`` and at most one batch ``mix`` layer
    (kerascnn ``MixUp`` / ``CutMix``, called as ``mix(images, labels, training=True)``)."""

    layers: list[keras.layers.Layer]
    mix: keras.layers.Layer | None = None


def kerascnn_layer(name: str):
    """The layer class ``kerascnn.layers.<name>`` (imported on first use)."""
    import kerascnn.layers as kl

    return getattr(kl, name)


def _number(item: str, text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise UserInputError(
            f"augment item {item!r}: its ':' arguments must be numbers ({kind.__name__}); "
            f"received {text!r}"
        ) from None


def _check_arguments(item: str, name: str, args: list[str], most: int) -> None:
    if len(args) > most:
        raise UserInputError(
            f"augment item {item!r} has {len(args)} ':' arguments; {name} takes at most {most}"
        )


def _make_layer(item: str, name: str, args: list[str], seed, image_shape, mean):
    _check_arguments(item, name, args, 2 if name in ("randaugment", "padcrop") else 1)
    if name == "flip":
        mode = args[0] if args else "horizontal"
        if mode not in FLIP_MODES:
            raise UserInputError(
                f"augment item {item!r}: flip mode must be one of {', '.join(FLIP_MODES)}; "
                f"received {mode!r}"
            )
        return kerascnn_layer("RandomFlip")(mode=FLIP_MODES[mode], seed=seed)
    if name == "padcrop":
        padding = _number(item, args[0], int) if args else 4
        fill = args[1] if len(args) > 1 else "reflect"
        if fill not in PADCROP_FILLS:
            raise UserInputError(
                f"augment item {item!r}: padcrop fill must be one of {', '.join(PADCROP_FILLS)}; "
                f"received {fill!r}"
            )
        if fill == "mean" and mean is None:
            raise UserInputError(
                f"augment item {item!r}: fill 'mean' needs the data's mean pixel (parse_augment's "
                "mean=: fill_mean(augment, normalization, dataset)); received mean=None"
            )
        cls = kerascnn_layer("RandomPadCrop")
        if fill in ("zero", "mean"):
            value = 0.0 if fill == "zero" else [float(m) for m in mean]
            return cls(padding=padding, fill="constant", fill_value=value, seed=seed)
        return cls(padding=padding, fill=fill, seed=seed)
    if name == "randaugment":
        n = _number(item, args[0], int) if args else 2
        m = _number(item, args[1]) if len(args) > 1 else 9.0
        return kerascnn_layer("RandAugment")(num_ops=n, magnitude=m, seed=seed)
    if name == "cutout":
        size = args[0] if args else "16"
        size = _number(item, size) if "." in size else _number(item, size, int)
        return kerascnn_layer("Cutout")(size=size, seed=seed)
    if name == "translate":
        f = _number(item, args[0]) if args else 0.125
        return kerascnn_layer("RandomTranslate")(height_factor=f, width_factor=f, seed=seed)
    if name == "rotate":
        return kerascnn_layer("RandomRotate")(
            degrees=_number(item, args[0]) if args else 15.0, seed=seed
        )
    return kerascnn_layer("RandomZoom")(factor=_number(item, args[0]) if args else 0.2, seed=seed)


def _check_image_size(item, layer, image_shape) -> None:
    """Refuse up front a layer whose size argument does not fit ``image_shape`` (``Cutout``
    larger than the image, ``RandomPadCrop`` padding beyond what its fill allows)."""
    check = getattr(layer, "check_image_shape", None)
    if check is None or image_shape is None or len(image_shape) < 2:
        return
    try:
        check((image_shape[0], image_shape[1], None))
    except ValueError as error:
        raise UserInputError(f"augment item {item!r}: {error}") from None


def _is_mixer(layer) -> bool:
    return isinstance(layer, (kerascnn_layer("MixUp"), kerascnn_layer("CutMix")))


def fill_mean(augment, normalization, dataset):
    """The per-channel mean pixel that ``padcrop``'s ``mean`` fill pads with: the
    standardization's own mean (so the padding is zero after it), else the data's. Read only
    when a spec string of ``augment`` asks for it (the data's mean may take a pass over the
    images); ``None`` otherwise."""
    items = [augment] if isinstance(augment, str) else list(augment or ())
    if not any(isinstance(item, str) and ":mean" in item for item in items):
        return None
    return normalization.mean if normalization.mode == "standardize" else dataset.mean


def parse_augment(
    augment,
    *,
    seed: int | None = None,
    image_shape=None,
    num_classes: int | None = None,
    mean=None,
) -> AugmentPlan:
    """Parse ``augment=`` (``None``, a spec string, or a list of layers and spec strings).

    Layers built from a spec get seeds ``seed, seed + 1, ...`` in order, so the same spec and
    seed give the same augmentation. Layer instances are used as they are (their own seeds).
    With ``image_shape`` (``(height, width, channels)``), sizes are checked against it here,
    before any training: ``padcrop:40`` or ``cutout:100`` on 32x32 images raise a
    :class:`~kerascnn.errors.UserInputError` naming the item. ``mean`` (the data's per-channel mean pixel) serves
    ``padcrop``'s ``mean`` fill.
    """
    if augment is None or augment == "" or augment == []:
        return AugmentPlan([])
    items = augment.split(",") if isinstance(augment, str) else list(augment)
    plan = AugmentPlan([])
    for pos, item in enumerate(items):
        if isinstance(item, keras.layers.Layer):
            if _is_mixer(item):
                if plan.mix is not None:
                    raise UserInputError(
                        f"augment may hold one of mixup / cutmix; received {augment!r}"
                    )
                plan.mix = item
            else:
                _check_image_size(item.name, item, image_shape)
                plan.layers.append(item)
            continue
        if not isinstance(item, str):
            raise UserInputError(
                "augment must be a spec string like 'flip,padcrop,mixup:0.2' or a list of Keras "
                f"layers / spec strings; received item {item!r}"
            )
        item = item.strip()
        name, *args = [p.strip() for p in item.split(":")]
        name = name.lower()
        item_seed = None if seed is None else seed + pos
        if name in MIX_KINDS:
            if plan.mix is not None:
                raise UserInputError(
                    f"augment may hold one of mixup / cutmix; received {augment!r}"
                )
            _check_arguments(item, name, args, 1)
            alpha = _number(item, args[0]) if args else (0.2 if name == "mixup" else 1.0)
            if alpha <= 0:
                raise UserInputError(
                    f"augment item {item!r}: alpha must be > 0; received {alpha!r}"
                )
            cls = kerascnn_layer("MixUp" if name == "mixup" else "CutMix")
            plan.mix = cls(alpha=alpha, num_classes=num_classes, seed=item_seed)
        elif name in LAYER_NAMES:
            layer = _make_layer(item, name, args, item_seed, image_shape, mean)
            _check_image_size(item, layer, image_shape)
            plan.layers.append(layer)
        else:
            raise UserInputError(
                f"unknown augment item {item!r}; known: {', '.join(LAYER_NAMES + MIX_KINDS)} "
                "(e.g. 'flip,padcrop:4,randaugment:2:9,cutout:16,mixup:0.2')"
            )
    return plan
