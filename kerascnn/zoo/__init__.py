"""The model zoo: family builders, named variants and the registry.

kerascnn.zoo.resnet(depth=56)
kerascnn.zoo.create("resnet56", num_classes=100)
kerascnn.zoo.list_models("resnet*")
"""

from kerascnn.zoo.classic import alexnet, lenet
from kerascnn.zoo.convnext import LayerScale, convnext
from kerascnn.zoo.densenet import densenet
from kerascnn.zoo.efficientnet import efficientnet
from kerascnn.zoo.features import FeatureInfo, feature_extractor, feature_info
from kerascnn.zoo.flops import count_flops
from kerascnn.zoo.inception import googlenet
from kerascnn.zoo.inception_v3 import inception_v3
from kerascnn.zoo.mobilenet import mobilenet
from kerascnn.zoo.odenet import odenet
from kerascnn.zoo.registry import (
    ModelInfo,
    create,
    list_models,
    model_info,
    register,
    register_rows,
    register_variant,
)
from kerascnn.zoo.resnet import resnet
from kerascnn.zoo.vgg import vgg, vgg_blocks

__all__ = [
    "FeatureInfo",
    "LayerScale",
    "ModelInfo",
    "alexnet",
    "convnext",
    "count_flops",
    "create",
    "densenet",
    "efficientnet",
    "feature_extractor",
    "feature_info",
    "googlenet",
    "inception_v3",
    "lenet",
    "list_models",
    "mobilenet",
    "model_info",
    "odenet",
    "register",
    "register_rows",
    "register_variant",
    "resnet",
    "vgg",
    "vgg_blocks",
]
