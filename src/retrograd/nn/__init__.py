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

__all__ = ["Module", "Parameter", "Linear", "Dense", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "LogSoftmax", "Dropout", "Identity", "Flatten", "Sequential", "ModuleList",
           "functional", "init", "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss",
           "BCEWithLogitsLoss", "FocalLoss"]
