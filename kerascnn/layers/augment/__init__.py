"""Augmentation layers that keep XLA on and are the identity at inference (issue 4)."""

from kerascnn.layers.augment.affine import (  # noqa: F401
    RandomRotate,
    RandomShear,
    RandomTranslate,
    RandomZoom,
    affine_transform,
    rotation_matrix,
    shear_matrix,
    translation_matrix,
    zoom_matrix,
)
from kerascnn.layers.augment.base import BaseAugmentation  # noqa: F401
from kerascnn.layers.augment.color import (  # noqa: F401
    AutoContrast,
    Equalize,
    Invert,
    Posterize,
    RandomBrightness,
    RandomColor,
    RandomContrast,
    RandomSharpness,
    Solarize,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_sharpness,
    autocontrast,
    equalize,
    invert,
    posterize,
    solarize,
)
from kerascnn.layers.augment.cutout import Cutout, cutout  # noqa: F401
from kerascnn.layers.augment.flip_crop import RandomFlip, RandomPadCrop, flip, pad_crop  # noqa: F401
from kerascnn.layers.augment.mix import CutMix, MixTrainer, MixUp, cutmix, mixup  # noqa: F401
from kerascnn.layers.augment.randaugment import RandAugment, randaugment  # noqa: F401
