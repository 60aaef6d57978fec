"""F.pad and the convolutions' padding_mode against torch 2.13.0: values, input gradients and
weight gradients in float64 (to 1e-12 / 1e-10), the argument checks torch makes (one ValueError
here), and the layers' repr."""

import numpy as np
import pytest
import torch

import retrograd
import retrograd.nn.functional as F
from retrograd import nn

TF = torch.nn.functional

PAD_CASES = [
    ((2, 3, 5), (2, 1), "reflect"), ((2, 3, 5), (4, 4), "reflect"),
    ((3, 5), (1, 3), "replicate"), ((2, 3, 4, 5), (1, 2, 3, 0), "reflect"),
    ((2, 3, 4, 5), (2, 2, 1, 1), "replicate"), ((2, 3, 4, 5), (5, 5, 4, 4), "circular"),
    ((2, 3, 4, 5), (1, 0, 2, 3), "circular"), ((2, 3, 4, 5), (1, -2, 0, 3), "constant"),
    ((4,), (2, 3), "constant"), ((2, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), "replicate"),
    ((2, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), "reflect"), ((2, 3, 4), (1, 1, 1, 1, 1, 1), "constant"),
    ((0, 3, 4), (1, 2), "reflect"),
]


@pytest.mark.parametrize("shape,pad,mode", PAD_CASES)
def test_pad_matches_torch_in_value_and_gradient(shape, pad, mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    kwargs = {"value": 0.5} if mode == "constant" else {}
    xr, xt = retrograd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = F.pad(xr, pad, mode=mode, **kwargs), TF.pad(xt, pad, mode=mode, **kwargs)
    assert yr.shape == tuple(yt.shape)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    w = rng.standard_normal(tuple(yt.shape))
    (yr * retrograd.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape,pad,mode,match", [
    ((2, 3, 5), (5, 1), "reflect", "should be less than the corresponding input dimension"),
    ((5,), (1, 1), "reflect", r"shape \(5,\)"),
    ((2, 3, 5), (1,), "constant", "divisible by 2"),
    ((2, 3, 5), (6, 1), "circular", "more than once"),
    ((2, 3), (1, 1, 1, 1, 1, 1), "constant", "too large"),
    ((2, 3, 5), (1, 1), "wrap", "mode must be one of"),
])
def test_bad_padding_is_refused_like_torch(shape, pad, mode, match):
    x = np.zeros(shape)
    with pytest.raises(ValueError, match=match):
        F.pad(retrograd.tensor(x), pad, mode=mode)
    if mode != "wrap":
        with pytest.raises((RuntimeError, NotImplementedError, ValueError)):
            TF.pad(torch.tensor(x), pad, mode=mode)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("layer,shape", [("Conv1d", (2, 3, 9)), ("Conv2d", (2, 3, 7, 6))])
@pytest.mark.parametrize("options", [dict(kernel_size=3, padding=1),
                                     dict(kernel_size=3, padding=2, stride=2),
                                     dict(kernel_size=4, padding="same", dilation=1)])
def test_conv_padding_modes_match_torch(mode, layer, shape, options):
    theirs = getattr(torch.nn, layer)(3, 4, padding_mode=mode, dtype=torch.float64, **options)
    ours = getattr(nn, layer)(3, 4, padding_mode=mode, dtype=np.float64, **options)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(1).standard_normal(shape)
    xr, xt = retrograd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = ours(xr), theirs(xt)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=1e-10)
    (yr * yr).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10)


def test_padding_on_the_strict_device_matches_the_host():
    """Every mode through the array seam: on the strict device (tests/strict_backend.py) the
    values and gradients are the host's, and a NumPy call past the seam would fail."""
    from strict_backend import STRICT

    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    for mode in ("constant", "reflect", "replicate", "circular"):
        results = []
        for device in ("cpu", STRICT):
            xs = retrograd.tensor(x, device=device, requires_grad=True)
            y = F.pad(xs, (1, 2, 2, 1), mode=mode)
            (y * y).sum().backward()
            assert y.device == xs.grad.device == xs.device
            results.append((y.detach().cpu().numpy(), xs.grad.cpu().numpy()))
        for ours, host in zip(results[1], results[0], strict=True):
            np.testing.assert_array_equal(ours, host)
