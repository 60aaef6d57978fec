"""Helpers shared by the oracle tests: arrays out of either library, and torch-grade tolerances."""

import numpy as np
import torch

import retrograd

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def as_np(t) -> np.ndarray:
    """The values of a torch tensor, a retrograd tensor or anything array-like."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    if isinstance(t, retrograd.Tensor):
        return t.numpy()
    return np.asarray(t)


def assert_close(actual, expected, dtype=np.float64, what=""):
    """Same shape, and equal within the dtype's tolerance (TOL)."""
    a, e = as_np(actual), as_np(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a, e, err_msg=what, **TOL[dtype])


# ------------------------------------------------------------------ layers against torch


def rel_err(actual, expected) -> float:
    """Normwise relative error max|a - e| / max|e| (0 for empty arrays)."""
    a, e = np.asarray(as_np(actual), np.float64), np.asarray(as_np(expected), np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - e)) / max(np.max(np.abs(e)), 1e-300))


def forward_backward(f, arrays, grad_of, cotangent_seed: int = 99, library: str = "retrograd",
                     dtype=np.float64):
    """f(*tensors) on `library`'s tensors made from arrays (cast to dtype where floating),
    then backward of a fixed random cotangent: (output, [gradient of each position in
    grad_of])."""
    tensors = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        if library == "torch":
            tensors.append(torch.tensor(a, requires_grad=i in grad_of))
        else:
            tensors.append(retrograd.tensor(a, requires_grad=i in grad_of))
    out = f(*tensors)
    g = np.random.default_rng(cotangent_seed).standard_normal(out.shape).astype(dtype)
    if out.numel():
        out.backward(torch.tensor(g) if library == "torch" else retrograd.tensor(g))
    grads = [tensors[i].grad for i in grad_of]
    return out, [np.zeros(tensors[i].shape) if gr is None else as_np(gr)
                 for i, gr in zip(grad_of, grads, strict=True)]


def check_layer(f_rg, f_torch, arrays, grad_of=None, rtol=1e-10, float32=True):
    """retrograd against torch on the same function: float64 forward and every gradient within
    rtol (normwise); float32 within torch's own float32 error scale (each measured against
    the float64 result: ours at most 8 times torch's, or 1e-6)."""
    grad_of = [i for i, a in enumerate(arrays) if np.asarray(a).dtype.kind == "f"] \
        if grad_of is None else grad_of
    ours = forward_backward(f_rg, arrays, grad_of)
    theirs = forward_backward(f_torch, arrays, grad_of, library="torch")
    names = ["output"] + [f"gradient {i}" for i in grad_of]
    for name, a, e in zip(names, [ours[0], *ours[1]], [theirs[0], *theirs[1]], strict=True):
        assert rel_err(a, e) <= rtol, f"float64 {name}: relative error {rel_err(a, e):.3g}"
    if not float32:
        return
    ours32 = forward_backward(f_rg, arrays, grad_of, dtype=np.float32)
    theirs32 = forward_backward(f_torch, arrays, grad_of, library="torch", dtype=np.float32)
    assert as_np(ours32[0]).dtype == np.float32
    for name, a, t, e in zip(names, [ours32[0], *ours32[1]], [theirs32[0], *theirs32[1]],
                             [theirs[0], *theirs[1]], strict=True):
        ours_err, torch_err = rel_err(a, e), rel_err(t, e)
        assert ours_err <= max(8 * torch_err, 1e-6), \
            f"float32 {name}: error {ours_err:.3g}, torch's {torch_err:.3g}"
