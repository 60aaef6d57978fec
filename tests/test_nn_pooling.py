"""Pooling (max, average, adaptive average; 1-D and 2-D) against torch: forward and input
gradient in float64 and float32 over kernels, strides, paddings, dilations, ceil_mode,
count_include_pad, divisor_override, batch 1 and unbatched inputs; ties go to the first
maximum, as in torch."""

import numpy as np
import pytest
import torch

import retrograd
from oracle import check_layer, rel_err
from retrograd import nn
from retrograd.nn import functional as F

TF = torch.nn.functional

# (function name, input shape, keyword arguments)
POOLS = [
    ("max_pool1d", (2, 3, 10), dict(kernel_size=2)),
    ("max_pool1d", (1, 2, 11), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", (2, 2, 12), dict(kernel_size=3, stride=2, padding=1, dilation=2,
                                    ceil_mode=True)),
    ("max_pool1d", (3, 9), dict(kernel_size=4, stride=3, ceil_mode=True)),
    ("max_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("max_pool2d", (1, 2, 7, 9), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                                      dilation=(1, 2), ceil_mode=True)),
    ("max_pool2d", (2, 5, 5), dict(kernel_size=3, stride=1, padding=1)),
    ("avg_pool1d", (2, 3, 10), dict(kernel_size=3)),
    ("avg_pool1d", (2, 2, 11), dict(kernel_size=3, stride=2, padding=1,
                                    count_include_pad=False, ceil_mode=True)),
    ("avg_pool1d", (1, 1, 7), dict(kernel_size=4, stride=2, padding=2, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("avg_pool2d", (1, 2, 7, 9), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1),
                                      ceil_mode=True)),
    ("avg_pool2d", (2, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1,
                                      count_include_pad=False)),
    ("avg_pool2d", (2, 2, 6, 6), dict(kernel_size=2, divisor_override=3)),
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=1)),
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=3)),
    ("adaptive_avg_pool1d", (3, 7), dict(output_size=4)),
    ("adaptive_avg_pool2d", (2, 3, 8, 7), dict(output_size=1)),
    ("adaptive_avg_pool2d", (2, 3, 8, 7), dict(output_size=(3, None))),
    ("adaptive_avg_pool2d", (1, 2, 5, 9), dict(output_size=(2, 4))),
]


@pytest.mark.parametrize("name,shape,kw", POOLS, ids=[f"{p[0]}{p[1]}" for p in POOLS])
def test_pooling_matches_torch(name, shape, kw):
    x = np.random.default_rng(0).standard_normal(shape)
    check_layer(lambda t: getattr(F, name)(t, **kw), lambda t: getattr(TF, name)(t, **kw), [x])


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_as_torch():
    """After a ReLU whole windows are 0: torch gives the window's gradient to its first
    element, once (not split, not repeated)."""
    x = np.array([[[0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 2.0]]])
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=4,
                                                                          stride=2, padding=2)):
        ours, theirs = retrograd.tensor(x, requires_grad=True), torch.tensor(x,
                                                                             requires_grad=True)
        F.max_pool1d(ours, **kw).sum().backward()
        TF.max_pool1d(theirs, **kw).sum().backward()
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_max_pool_propagates_nan_as_torch():
    x = np.array([[[1.0, np.nan, 3.0, 0.5, 2.0, 4.0]]])
    ours = F.max_pool1d(retrograd.tensor(x), 2).numpy()
    np.testing.assert_array_equal(ours, TF.max_pool1d(torch.tensor(x), 2).numpy())


def test_pool_modules_match_torch_and_have_no_state():
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9))
    for cls, kw in (("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
                    ("AvgPool2d", dict(kernel_size=3, stride=2, ceil_mode=True)),
                    ("AdaptiveAvgPool2d", dict(output_size=(2, 2)))):
        ours, theirs = getattr(nn, cls)(**kw), getattr(torch.nn, cls)(**kw)
        assert ours.state_dict() == {} and not list(ours.parameters())
        assert rel_err(ours(retrograd.tensor(x)), theirs(torch.tensor(x))) < 1e-14
    x1 = np.random.default_rng(2).standard_normal((2, 3, 12))
    for cls, kw in (("MaxPool1d", dict(kernel_size=2)), ("AvgPool1d", dict(kernel_size=4)),
                    ("AdaptiveAvgPool1d", dict(output_size=1))):
        ours, theirs = getattr(nn, cls)(**kw), getattr(torch.nn, cls)(**kw)
        assert rel_err(ours(retrograd.tensor(x1)), theirs(torch.tensor(x1))) < 1e-14


@pytest.mark.parametrize("call,message", [
    (lambda: F.max_pool2d(retrograd.zeros(2, 3, 4), 5),
     r"max_pool2d: the kernel of size \(5, 5\) .* does not fit the input of spatial size"),
    (lambda: F.max_pool1d(retrograd.zeros(2, 3, 8), 2, padding=2),
     r"max_pool1d: padding \(2,\) must be at most half of the kernel size \(2,\)"),
    (lambda: F.avg_pool1d(retrograd.zeros(2, 3, 4, 4), 2),
     r"avg_pool1d: expected 2-D \(unbatched\) or 3-D \(batched\) input, got input of shape "
     r"\(2, 3, 4, 4\)"),
    (lambda: nn.MaxPool1d(2, stride=0.5), r"MaxPool1d: stride must be positive integers"),
    (lambda: F.adaptive_avg_pool1d(retrograd.zeros(2, 3, 4), 0),
     r"adaptive_avg_pool1d: output_size must be positive integers"),
])
def test_bad_pool_arguments_are_one_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
