"""retrograd: deep learning from first principles on NumPy.

Tensors with reverse-mode autodiff under PyTorch's names (`retrograd.tensor`, `.backward()`,
`retrograd.nn`, `retrograd.optim`), every gradient a vector-Jacobian product in one table
(`retrograd.ops`), checked against PyTorch and finite differences. NumPy is reached only through
`retrograd.backend`, the seam where a second array library plugs in.
"""

from . import autograd, cuda
from .autograd import GradcheckError, gradcheck
from .backend.device import device
from .backend.dtypes import bool_, float32, float64, int32, int64
from .contraction import einsum
from .cpu import set_flush_denormal
from .functions import (
    abs,
    amax,
    amin,
    arange,
    argmax,
    argmin,
    as_tensor,
    cat,
    clamp,
    concatenate,
    empty,
    empty_like,
    exp,
    eye,
    flatten,
    from_numpy,
    full,
    full_like,
    linspace,
    log,
    log_softmax,
    matmul,
    mean,
    ones,
    ones_like,
    permute,
    relu,
    reshape,
    sigmoid,
    sign,
    softmax,
    sqrt,
    squeeze,
    stack,
    sum,
    tanh,
    tensor,
    transpose,
    unsqueeze,
    where,
    zeros,
    zeros_like,
)
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import (
    get_rng_state,
    initial_seed,
    manual_seed,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    set_rng_state,
)
from .tensor import Parameter, Tensor, get_default_dtype, set_default_dtype

float = float32  # noqa: A001  (torch.float is float32)
double = float64
long = int64

from . import nn, optim, targets  # noqa: E402  (they build on everything above)
from .compiled import CompileWarning, VerifyError, compile  # noqa: E402,A004  (torch's name)

# Subpackages with optional dependencies or a larger import cost load on first use, so that
# `import retrograd` stays fast and needs NumPy alone: retrograd.data, retrograd.viz, ...
_LAZY = ("data", "train", "viz", "distributed", "sklearn", "rl", "course", "registry")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "load_run":
        from .train.saved_run import load_run

        return load_run
    raise AttributeError(f"module 'retrograd' has no attribute {name!r}")

__version__ = "0.1.0"
