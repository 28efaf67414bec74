"""kerascnn: faithful classic deep CNNs for Keras 3.

import kerascnn
model = kerascnn.zoo.resnet(depth=56)
"""

import sys

__version__ = "0.1.0"

# Keras builds, saves and loads functional graphs recursively; the deepest zoo models
# (ResNet-1202: about 4,200 layers in one chain) need more than Python's default of 1,000
# frames, also when a saved model is loaded in a fresh process.
RECURSION_LIMIT = 30_000
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)

from kerascnn import layers, zoo  # noqa: E402,F401
