"""Layers by family beyond Linear and the basic activations (those are in nn/layers.py):
convolutions, pooling, normalization, more activations, embeddings. Reached as retrograd.nn.X."""

from .activation import ELU, GELU, LeakyReLU, SiLU
from .conv import Conv1d, Conv2d
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from .sparse import Embedding

__all__ = ["Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
           "LayerNorm", "Embedding", "GELU", "SiLU", "LeakyReLU", "ELU"]
