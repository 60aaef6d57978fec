"""Layers: Linear (the course's Dense), activations, Dropout, Identity, Flatten, Unflatten,
Sequential (the other families are in nn/modules/)."""

from __future__ import annotations

import math
from collections import OrderedDict

from ..backend import INTEGER_TYPES, as_dtype
from ..backend import host as _host
from ..tensor import Parameter, Tensor, get_default_dtype
from . import functional as F
from . import init
from .module import Module


class Linear(Module):
    """y = x W^T + b, weight of shape (out_features, in_features), torch's default initialization:
    W and b uniform in +-1/sqrt(in_features)."""

    _optional_parameters = ("bias",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, INTEGER_TYPES) or n <= 0:
                raise ValueError(f"Linear: {name} must be a positive integer, got {n!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
        # Stored column-major, as the transpose of a row-major (in, out) array: the forward's
        # x @ W.T is then a plain (non-transposed) BLAS product, which OpenBLAS runs 10-35%
        # faster than the transposed one for these shapes (BENCHMARKS.md). Shape, values and
        # state_dict are torch's; only the memory order differs.
        self.weight = Parameter(_host.empty((in_features, out_features), dtype=dtype).T)
        self.bias = Parameter(_host.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()
        if device is not None:  # made (and initialized) on the host, then moved: one seed
            self.to(device)     # gives the same weights on every device

    def reset_parameters(self) -> None:
        init.layer_default_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def forward_relu(self, x: Tensor) -> Tensor:
        """relu(self(x)) as one node (Sequential's fusion rule)."""
        return F.linear_relu(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


Dense = Linear  # the course's name for the same layer


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Softmax(Module):
    """Softmax along `dim`, with its true Jacobian (use cross_entropy on logits for training)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return x.log_softmax(self.dim)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Axis `dim` split into `unflattened_size` (one entry may be -1), as torch.nn.Unflatten."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        size = tuple(unflattened_size) if isinstance(unflattened_size, (tuple, list)) else None
        if not size or not all(isinstance(n, INTEGER_TYPES) and (n > 0 or n == -1)
                                for n in size) or list(size).count(-1) > 1:
            raise ValueError(f"Unflatten: unflattened_size must be a tuple of positive integers "
                             f"(one may be -1), got {unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(int(n) for n in size)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim if self.dim >= 0 else self.dim + x.ndim
        if not 0 <= dim < x.ndim:
            raise IndexError(f"Unflatten: dim {self.dim} is out of range for input of shape "
                             f"{tuple(x.shape)}")
        size, n = self.unflattened_size, x.shape[dim]
        known = math.prod(k for k in size if k != -1)
        if (-1 in size and (known == 0 or n % known)) or (-1 not in size and known != n):
            raise ValueError(f"Unflatten: cannot split axis {self.dim} of size {n} (input of "
                             f"shape {tuple(x.shape)}) into {size}")
        return x.reshape(x.shape[:dim] + size + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def fused_relu(module: Module):
    """The module's `forward_relu` (relu(module(x)) as one node), when the class whose forward
    it runs defines one beside it; else None. Sequential's one fusion rule: any such layer
    followed by a ReLU runs fused (Linear, Conv1d, Conv2d), and a subclass that overrides
    forward is never fused by accident."""
    for cls in type(module).__mro__:
        if "forward" in cls.__dict__:
            return module.forward_relu if "forward_relu" in cls.__dict__ else None
    return None


class Sequential(Module):
    """Modules applied in order; keys "0", "1", ... (or the names of an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is {type(m).__name__}, "
                                    "not a Module")
                self.add_module(str(i), m)

    def forward(self, x):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            m = modules[i]
            # a layer with a forward_relu then a ReLU run as one fused node: the same values
            # and gradients, and the ReLU costs no extra pass over the activations
            fused = fused_relu(m) if i + 1 < len(modules) and type(modules[i + 1]) is ReLU \
                else None
            if fused is not None:
                x = fused(x)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def __getitem__(self, i):
        if isinstance(i, slice):  # keeps the original names, as torch does
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
