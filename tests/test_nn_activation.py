"""GELU (exact and tanh), SiLU, LeakyReLU, ELU and erf against torch in float64 and float32,
over a range that includes the tails; the modules' reprs and arguments are torch's."""

import numpy as np
import pytest
import torch

import retrograd
from oracle import check_layer, rel_err
from retrograd import nn
from retrograd.nn import functional as F
from retrograd.ops import PRIMITIVES
from retrograd.tensor import apply

TF = torch.nn.functional
X = np.concatenate([np.random.default_rng(0).standard_normal(500) * 3,
                    np.linspace(-9, 9, 37), [0.0, 1e-12, -1e-12, 40.0, -40.0]])


@pytest.mark.parametrize("ours,theirs", [
    (lambda t: F.gelu(t), lambda t: TF.gelu(t)),
    (lambda t: F.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh")),
    (lambda t: F.silu(t), lambda t: TF.silu(t)),
    (lambda t: F.leaky_relu(t), lambda t: TF.leaky_relu(t)),
    (lambda t: F.leaky_relu(t, 0.3), lambda t: TF.leaky_relu(t, 0.3)),
    (lambda t: F.elu(t), lambda t: TF.elu(t)),
    (lambda t: F.elu(t, alpha=0.7), lambda t: TF.elu(t, alpha=0.7)),
    (lambda t: apply(PRIMITIVES["erf"], t), torch.erf),
], ids=["gelu", "gelu-tanh", "silu", "leaky", "leaky-0.3", "elu", "elu-0.7", "erf"])
def test_activation_matches_torch(ours, theirs):
    check_layer(ours, theirs, [X])


def test_erf_against_the_standard_library_elementwise():
    """erf is computed without a library erf: compared value by value with math.erf."""
    import math

    x = np.concatenate([np.linspace(-6, 6, 2001), np.geomspace(1e-10, 0.7, 300)])
    ours = apply(PRIMITIVES["erf"], retrograd.tensor(x)).numpy()
    exact = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(ours, exact, rtol=5e-15, atol=0)


@pytest.mark.parametrize("cls,args", [("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()),
                                      ("LeakyReLU", (0.2,)), ("ELU", (0.5,))])
def test_activation_modules_match_torch(cls, args):
    ours, theirs = getattr(nn, cls)(*args), getattr(torch.nn, cls)(*args)
    assert repr(ours) == repr(theirs)
    assert rel_err(ours(retrograd.tensor(X)), theirs(torch.tensor(X))) < 1e-10
    assert ours.state_dict() == {}


def test_gelu_refuses_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")
