"""Tensor.var, Tensor.std and Tensor.norm against torch: values and gradients over dims,
keepdim, correction / unbiased, and p (2, 'fro', 1, 3, 0.5, inf, -inf, 0), with torch's zero
gradient where a norm is 0."""

import numpy as np
import pytest
import torch

from oracle import check_layer

X = np.random.default_rng(0).standard_normal((3, 4, 5))


@pytest.mark.parametrize("method,kw", [
    ("var", {}), ("var", dict(dim=1)), ("var", dict(dim=(0, 2), keepdim=True)),
    ("var", dict(dim=0, unbiased=False)), ("var", dict(dim=-1, correction=2)),
    ("std", {}), ("std", dict(dim=2, keepdim=True)), ("std", dict(dim=(1, 2), correction=0)),
])
def test_var_and_std_match_torch(method, kw):
    check_layer(lambda t: getattr(t, method)(**kw), lambda t: getattr(t, method)(**kw), [X])


@pytest.mark.parametrize("p,dim", [(2, None), ("fro", (1, 2)), (1, 1), (3, 0), (0.5, 2),
                                   (float("inf"), 1), (float("-inf"), None), (2, -1)])
def test_norm_matches_torch(p, dim):
    x = X.copy()
    x[0, 1] = 0.0  # a row whose norm over the last axis is 0: its gradient is 0
    check_layer(lambda t: t.norm(p=p, dim=dim), lambda t: t.norm(p=p, dim=dim), [x])


def test_norm_keepdim_and_the_positional_unbiased_flag():
    check_layer(lambda t: t.norm(2, 1, True), lambda t: t.norm(2, 1, True), [X])
    check_layer(lambda t: t.var(False), lambda t: t.var(False), [X])
    assert torch.tensor(X).var(False).shape == ()
