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
