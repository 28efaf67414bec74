"""The model zoo: family builders, named variants and the registry.

    kerascnn.zoo.resnet(depth=56)
    kerascnn.zoo.create("resnet56", num_classes=100)
    kerascnn.zoo.list_models("resnet*")
"""

from kerascnn.zoo.registry import ModelInfo, create, list_models, model_info, register  # noqa: F401
from kerascnn.zoo.resnet import resnet  # noqa: F401
