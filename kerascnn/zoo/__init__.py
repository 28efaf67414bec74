"""The model zoo: family builders, named variants and the registry.

kerascnn.zoo.resnet(depth=56)
kerascnn.zoo.create("resnet56", num_classes=100)
kerascnn.zoo.list_models("resnet*")
"""

from kerascnn.zoo.classic import alexnet, lenet  # noqa: F401
from kerascnn.zoo.convnext import LayerScale, convnext  # noqa: F401
from kerascnn.zoo.densenet import densenet  # noqa: F401
from kerascnn.zoo.efficientnet import efficientnet  # noqa: F401
from kerascnn.zoo.flops import count_flops  # noqa: F401
from kerascnn.zoo.inception import googlenet  # noqa: F401
from kerascnn.zoo.inception_v3 import inception_v3  # noqa: F401
from kerascnn.zoo.mobilenet import mobilenet  # noqa: F401
from kerascnn.zoo.odenet import odenet  # noqa: F401
from kerascnn.zoo.registry import ModelInfo, create, list_models, model_info, register  # noqa: F401
from kerascnn.zoo.resnet import resnet  # noqa: F401
from kerascnn.zoo.vgg import vgg, vgg_blocks  # noqa: F401
