"""Custom Keras layers of kerascnn, each registered for serialization (package "kerascnn")."""

# ruff: noqa: I001  (keep the per-issue sections below in this order)

from kerascnn.layers.shortcut import ZeroPadShortcut, zero_pad_shortcut  # noqa: F401
from kerascnn.layers.standardize import Standardize  # noqa: F401
from kerascnn.layers.fused_batchnorm import (  # noqa: F401
    FusedBatchNormalization,
    fused_batch_norm,
    fused_batch_norm_factory,
)

# --- regularization and normalization (issue 3) ---
from kerascnn.layers.dropconnect import DropConnectConv2D, DropConnectDense, drop_connect  # noqa: F401
from kerascnn.layers.dropout import (  # noqa: F401
    Dropout,
    DropoutBase,
    MCDropout,
    SpatialDropout,
    dropout,
    spatial_dropout,
)
from kerascnn.layers.hadamard import HadamardConv2D, HadamardDense, hadamard_kernel  # noqa: F401
from kerascnn.layers.mc import MCPrediction, is_dropout_layer, mc_model, mc_predict  # noqa: F401
from kerascnn.layers.normalization import (  # noqa: F401
    AxisNormalization,
    axis_normalization,
    normalization,
)
from kerascnn.layers.stochastic_depth import (  # noqa: F401
    StochasticDepth,
    drop_path,
    linear_drop_path_rates,
)

# --- augmentation (issue 4) ---
from kerascnn.layers.augment import (  # noqa: F401
    AutoContrast,
    CutMix,
    Cutout,
    Equalize,
    Invert,
    MixTrainer,
    MixUp,
    Posterize,
    RandAugment,
    RandomBrightness,
    RandomColor,
    RandomContrast,
    RandomFlip,
    RandomPadCrop,
    RandomRotate,
    RandomSharpness,
    RandomShear,
    RandomTranslate,
    RandomZoom,
    Solarize,
    affine_transform,
    cutout,
)

# --- neural ODE blocks (issue 7) ---
from kerascnn.layers.ode import ODEBlock, ODEFunction, evaluations_per_step, odeint  # noqa: F401
