"""retrograd.nn: modules, layers and their functional forms."""

from ..tensor import Parameter
from . import functional, init, utils
from .layers import (
    Dense,
    Dropout,
    Flatten,
    Identity,
    Linear,
    LogSoftmax,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    Unflatten,
)
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    FocalLoss,
    MSELoss,
    NLLLoss,
)
from .module import Module
from .modules import (
    ELU,
    GELU,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Embedding,
    GroupNorm,
    LayerNorm,
    LeakyReLU,
    MaxPool1d,
    MaxPool2d,
    SiLU,
)

__all__ = ["Module", "Parameter", "Linear", "Dense", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "LogSoftmax", "Dropout", "Identity", "Flatten", "Sequential", "ModuleList",
           "functional", "init", "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss",
           "BCEWithLogitsLoss", "FocalLoss", "Unflatten", "Conv1d", "Conv2d", "MaxPool1d",
           "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
           "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "Embedding", "GELU", "SiLU",
           "LeakyReLU", "ELU"]
