"""nn.GroupNorm and F.group_norm against torch 2.13.0 (float64): outputs, input, weight and bias
gradients, state_dict keys, repr, and the argument checks."""

import numpy as np
import pytest
import torch

import retrograd
import retrograd.nn.functional as F
from retrograd import nn


@pytest.mark.parametrize("shape,groups", [((4, 6, 5), 3), ((2, 6, 3, 4), 2), ((3, 4), 2),
                                          ((2, 8, 2, 2, 2), 4), ((1, 6, 7), 6), ((2, 6, 3), 1)])
@pytest.mark.parametrize("options", [{}, {"affine": False}, {"bias": False}])
def test_group_norm_matches_torch(shape, groups, options):
    channels = shape[1]
    theirs = torch.nn.GroupNorm(groups, channels, dtype=torch.float64, **options)
    ours = nn.GroupNorm(groups, channels, dtype=np.float64, **options)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(0.5, 1.5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).standard_normal(shape)
    xr, xt = retrograd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = ours(xr), theirs(xt)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    (yr * yr * yr).sum().backward()
    (yt * yt * yt).sum().backward()
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_group_norm_checks_like_torch():
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups "
                                         r"\(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"channels in input \(6\) to be divisible by "
                                         r"num_groups \(4\)"):
        F.group_norm(retrograd.zeros(2, 6, 3), 4)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        torch.nn.functional.group_norm(torch.zeros(2, 6, 3), 4)


def test_group_norm_on_the_strict_device_matches_the_host():
    from strict_backend import STRICT

    x = np.random.default_rng(3).standard_normal((2, 6, 4))
    results = []
    for device in ("cpu", STRICT):
        retrograd.manual_seed(0)
        layer = nn.GroupNorm(3, 6, dtype=np.float64).to(device)
        xs = retrograd.tensor(x, device=device, requires_grad=True)
        y = layer(xs)
        (y * y * y).sum().backward()
        assert y.device == xs.grad.device == layer.weight.grad.device == xs.device
        results.append((y.detach().cpu().numpy(), xs.grad.cpu().numpy(),
                        layer.weight.grad.cpu().numpy()))
    for ours, host in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, host, rtol=1e-13)
