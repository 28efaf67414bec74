"""Custom Keras layers of kerascnn, each registered for serialization (package "kerascnn")."""

# ruff: noqa: I001  (keep the sections below in this order)

from kerascnn.layers.shortcut import ZeroPadShortcut, zero_pad_shortcut
from kerascnn.layers.standardize import Standardize
from kerascnn.layers.fused_batchnorm import (
    FusedBatchNormalization,
    fused_batch_norm,
    fused_batch_norm_factory,
)

# --- regularization and normalization ---
from kerascnn.layers.dropconnect import DropConnectConv2D, DropConnectDense, drop_connect
from kerascnn.layers.dropout import (
    Dropout,
    DropoutBase,
    MCDropout,
    SpatialDropout,
    dropout,
    spatial_dropout,
)
from kerascnn.layers.hadamard import HadamardConv2D, HadamardDense, hadamard_kernel
from kerascnn.layers.mc import MCPrediction, is_dropout_layer, mc_model, mc_predict
from kerascnn.layers.normalization import (
    AxisNormalization,
    axis_normalization,
    normalization,
)
from kerascnn.layers.stochastic_depth import (
    StochasticDepth,
    drop_path,
    linear_drop_path_rates,
)

# --- augmentation: everything kerascnn.layers.augment exports ---
from kerascnn.layers import augment
from kerascnn.layers.augment import *  # noqa: F403 (listed by augment.__all__)

# --- neural ODE blocks ---
from kerascnn.layers.ode import ODEBlock, ODEFunction, evaluations_per_step, odeint
from kerascnn.layers.pooling import AdaptiveAveragePooling2D, adaptive_average_pool

__all__ = [
    "AdaptiveAveragePooling2D",
    "adaptive_average_pool",
    "axis_normalization",
    "AxisNormalization",
    "drop_connect",
    "drop_path",
    "DropConnectConv2D",
    "DropConnectDense",
    "Dropout",
    "dropout",
    "DropoutBase",
    "evaluations_per_step",
    "fused_batch_norm",
    "fused_batch_norm_factory",
    "FusedBatchNormalization",
    "hadamard_kernel",
    "HadamardConv2D",
    "HadamardDense",
    "is_dropout_layer",
    "linear_drop_path_rates",
    "mc_model",
    "mc_predict",
    "MCDropout",
    "MCPrediction",
    "normalization",
    "ODEBlock",
    "ODEFunction",
    "odeint",
    "spatial_dropout",
    "SpatialDropout",
    "Standardize",
    "StochasticDepth",
    "zero_pad_shortcut",
    "ZeroPadShortcut",
    *augment.__all__,
]
