"""kerascnn: faithful classic deep CNNs for Keras 3.

    import kerascnn
    model = kerascnn.zoo.resnet(depth=56)
"""

__version__ = "0.1.0"

from kerascnn import layers, zoo  # noqa: E402,F401
