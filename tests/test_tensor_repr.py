"""Tensors print as PyTorch prints them: the same text, value for value (torch is the oracle)."""

import re

import numpy as np
import pytest
import torch

import retrograd as rg

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _same_default_dtype():
    """Both libraries omit the default float dtype from the text: make it the same one."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, str(np.dtype(rg.get_default_dtype()))))
    yield
    torch.set_default_dtype(previous)


def _cases():
    normal = RNG.standard_normal
    yield "scalar", np.float32(3.25)
    yield "int-valued scalar", np.float32(3.0)
    yield "vector", normal(5).astype(np.float32)
    yield "int-valued floats", np.array([1.0, -2.0, 30.0], np.float32)
    yield "zeros", np.zeros(4, np.float32)
    yield "nan and inf", np.array([np.nan, 1.5, -np.inf, 0.0], np.float32)
    yield "nan, int-valued", np.array([np.nan, 1.0, np.inf], np.float32)
    yield "tiny values", np.array([1e-5, 0.5, 2.0], np.float32)
    yield "wide range", np.array([1e-3, 5.0, 4e3], np.float64)
    yield "huge", np.array([3e9, 1.0], np.float64)
    yield "matrix", normal((4, 3))
    yield "3-d", normal((3, 2, 4)).astype(np.float32)
    yield "wrapping row", normal(40).astype(np.float32)
    yield "summarized vector", np.arange(2000.0)
    yield "summarized matrix", normal((50, 40)).astype(np.float32)
    yield "summarized 3-d", normal((12, 10, 11)).astype(np.float32)
    yield "int64", RNG.integers(-1000, 1000, (3, 5))
    yield "int32", RNG.integers(0, 9, 6).astype(np.int32)
    yield "bool", np.array([[True, False], [False, True]])
    yield "empty", np.zeros(0, np.float32)
    yield "empty 2-d", np.zeros((2, 0), np.float32)


def _as_torch(text: str) -> str:
    """retrograd's text with torch's dtype names and keyword suffixes on one line (the
    longer name "retrograd.float64" may move a suffix to the next line where torch's fits)."""
    text = text.replace("retrograd.", "torch.")
    return re.sub(r",\n *(?=[a-z_]+=)", ", ", text)


@pytest.mark.parametrize("name,values", list(_cases()), ids=[c[0] for c in _cases()])
def test_repr_matches_torch(name, values):
    assert _as_torch(repr(rg.tensor(values))) == _as_torch(repr(torch.tensor(values)))


def test_requires_grad_and_grad_fn_suffixes_as_torch():
    values = RNG.standard_normal((2, 3))
    leaf, torch_leaf = (rg.tensor(values, requires_grad=True),
                        torch.tensor(values, requires_grad=True))
    assert _as_torch(repr(leaf)) == _as_torch(repr(torch_leaf))
    # torch names the primitive's backward "MulBackward0": so does retrograd
    assert _as_torch(repr(leaf * 2)) == _as_torch(repr(torch_leaf * 2))


def test_parameter_prints_like_torchs():
    values = np.array([[0.5, -1.25]], np.float32)
    ours = repr(rg.nn.Parameter(rg.tensor(values)))
    assert _as_torch(ours) == _as_torch(repr(torch.nn.Parameter(torch.tensor(values))))
