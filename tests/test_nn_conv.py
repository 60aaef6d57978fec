"""Convolutions (nn.Conv1d, nn.Conv2d, F.conv1d, F.conv2d) against torch: forward and the
gradients of input, weight and bias, in float64 (1e-10) and float32 (torch's error scale), over
strides, paddings ('same' with even kernels, 'valid'), dilations, groups, odd sizes, batch 1,
empty batches and unbatched inputs; the layers' state_dicts load both ways; bad arguments are
one ValueError naming the sizes."""

import numpy as np
import pytest
import torch

import retrograd
from oracle import as_np, check_layer, rel_err
from retrograd import nn
from retrograd.nn import functional as F

TF = torch.nn.functional

# (input shape, out channels, kernel, stride, padding, dilation, groups, bias)
CONV1D = [
    ((2, 3, 11), 4, 3, 1, 1, 1, 1, True),
    ((1, 1, 40), 25, 5, 2, 1, 1, 1, True),  # the MNIST-1D CNN's first layer, batch 1
    ((3, 4, 9), 6, 3, 2, 2, 2, 2, True),
    ((2, 6, 7), 6, 2, 1, "same", 3, 3, False),  # even kernel: torch pads one more at the end
    ((2, 3, 6), 2, 6, 1, "valid", 1, 1, True),  # the kernel as wide as the input
    ((2, 4, 13), 8, 4, 3, 0, 1, 4, True),  # depthwise
    ((0, 3, 8), 5, 3, 1, 1, 1, 1, True),  # an empty batch
    ((3, 10), 4, 3, 2, 1, 1, 1, True),  # unbatched
]
CONV2D = [
    ((2, 3, 8, 8), 4, 3, 1, 1, 1, 1, True),
    ((1, 2, 7, 5), 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, True),
    ((2, 4, 9, 6), 4, 3, 1, "same", 2, 1, False),
    ((2, 4, 6, 6), 8, (4, 2), 1, "same", 1, 4, True),
    ((3, 1, 5, 5), 2, 5, 1, 0, 1, 1, True),
    ((0, 2, 6, 6), 3, 3, 2, 1, 1, 1, True),
    ((2, 5, 5), 3, 2, 2, 1, 1, 1, True),  # unbatched
]


def conv_case(shape, cout, kernel, groups, bias, d, seed=0):
    rng = np.random.default_rng(seed)
    cin = shape[-d - 1]
    kernel = (kernel,) * d if isinstance(kernel, int) else kernel
    arrays = [rng.standard_normal(shape), rng.standard_normal((cout, cin // groups, *kernel))]
    if bias:
        arrays.append(rng.standard_normal(cout))
    return arrays


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("case", CONV1D + CONV2D, ids=lambda c: str(c[0]))
def test_conv_matches_torch(case):
    shape, cout, kernel, stride, padding, dilation, groups, bias = case
    d = 1 if case in CONV1D else 2
    ours, theirs = (F.conv1d, TF.conv1d) if d == 1 else (F.conv2d, TF.conv2d)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_layer(lambda *t: ours(*t, **kw), lambda *t: theirs(*t, **kw),
                conv_case(shape, cout, kernel, groups, bias, d))


def test_conv_relu_fused_in_sequential_equals_separate_nodes():
    """Sequential fuses Conv1d + ReLU into one node (its grad_fn is a conv), with the values
    and gradients of the two separate layers; a subclass that overrides forward is not fused."""
    retrograd.manual_seed(1)
    conv = nn.Conv1d(3, 5, 3, padding=1).double()
    x = np.random.default_rng(2).standard_normal((4, 3, 9))
    fused_in, plain_in = retrograd.tensor(x, requires_grad=True), retrograd.tensor(x,
                                                                                requires_grad=True)
    fused = nn.Sequential(conv, nn.ReLU())(fused_in)
    plain = conv(plain_in).relu()
    assert fused.grad_fn.prim.name == "conv" and fused.grad_fn.params["relu"]
    g = retrograd.tensor(np.random.default_rng(3).standard_normal(fused.shape))
    fused.backward(g)
    plain.backward(g)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    np.testing.assert_allclose(fused_in.grad.numpy(), plain_in.grad.numpy(), rtol=1e-14)

    class Scaled(nn.Conv1d):
        def forward(self, x):
            return super().forward(x) * 2

    retrograd.manual_seed(1)
    out = nn.Sequential(Scaled(3, 5, 3, padding=1).double(), nn.ReLU())(retrograd.tensor(x))
    np.testing.assert_allclose(out.numpy(), np.maximum(2 * conv(retrograd.tensor(x)).numpy(), 0))


@pytest.mark.parametrize("cls,shape", [("Conv1d", (2, 4, 12)), ("Conv2d", (2, 4, 7, 6))])
def test_conv_module_state_dict_loads_both_ways(cls, shape):
    """Same keys and shapes as torch's layer; weights moved either way give the same output."""
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    ours, theirs = getattr(nn, cls)(4, 6, 3, **kw).double(), getattr(torch.nn, cls)(4, 6, 3, **kw)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()},
                           strict=True)
    x = np.random.default_rng(0).standard_normal(shape)
    assert rel_err(ours(retrograd.tensor(x)), theirs(torch.tensor(x))) < 1e-12
    ours.load_state_dict(theirs.state_dict())
    assert rel_err(ours(retrograd.tensor(x)), theirs(torch.tensor(x))) < 1e-12


def test_conv_initialization_follows_torch_bounds():
    """kaiming_uniform(a=sqrt 5): weight and bias uniform in +-1/sqrt(fan_in)."""
    conv = nn.Conv2d(6, 64, (3, 2), groups=2)
    bound = 1 / np.sqrt(3 * 3 * 2)
    for p in (conv.weight.numpy(), conv.bias.numpy()):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert repr(conv) == "Conv2d(6, 64, kernel_size=(3, 2), stride=(1, 1), groups=2)"
    assert repr(torch.nn.Conv2d(6, 64, (3, 2), groups=2)) == repr(conv)


def test_conv_float32_stays_float32_and_output_is_torch_layout_independent():
    x = retrograd.tensor(np.random.default_rng(0).standard_normal((3, 2, 10)).astype(np.float32),
                         requires_grad=True)
    conv = nn.Conv1d(2, 4, 3)
    out = conv(x)
    assert out.dtype == np.float32 and out.shape == (3, 4, 8)
    out.sum().backward()
    assert x.grad.dtype == conv.weight.grad.dtype == conv.bias.grad.dtype == np.float32
    # values do not depend on the memory order the output comes in
    np.testing.assert_array_equal(np.ascontiguousarray(out.numpy()), out.numpy())


BAD = [
    (lambda: F.conv1d(retrograd.zeros(2, 3, 4, 5), retrograd.zeros(4, 3, 3)),
     r"conv1d: expected 2-D \(unbatched\) or 3-D \(batched\) input, got input of shape "
     r"\(2, 3, 4, 5\)"),
    (lambda: nn.Conv2d(3, 4, 3)(retrograd.zeros(2, 5, 8, 8)),
     r"Conv2d: groups=1 and a weight of shape \(4, 3, 3, 3\) expect input with 3 channels, got "
     r"input of shape \(2, 5, 8, 8\) with 5 channels"),
    (lambda: nn.Conv1d(1, 2, 7, padding=1)(retrograd.zeros(1, 1, 4)),
     r"Conv1d: the kernel of size \(7,\) is larger than the padded input of size \(6,\)"),
    (lambda: nn.Conv1d(1, 2, 3, dilation=3)(retrograd.zeros(1, 1, 5)),
     r"kernel of size \(3,\) \(dilated to \(7,\)\) is larger than the padded input"),
    (lambda: nn.Conv1d(2, 2, 3, stride=1.5), r"Conv1d: stride must be positive integers .* 1\.5"),
    (lambda: F.conv2d(retrograd.zeros(1, 2, 5, 5), retrograd.zeros(2, 2, 3, 3), stride=(1, 0)),
     r"conv2d: stride must be positive integers"),
    (lambda: nn.Conv2d(6, 4, 3, groups=4), r"in_channels \(6\) must be divisible by groups \(4\)"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), r"out_channels \(6\) must be divisible by groups"),
    (lambda: nn.Conv1d(2, 2, 3, stride=2, padding="same"),
     r"padding='same' is not supported for strided convolutions"),
    (lambda: F.conv1d(retrograd.zeros(1, 2, 5), retrograd.zeros(3, 2, 2), retrograd.zeros(4)),
     r"conv1d: bias must have shape \(3,\), got \(4,\)"),
]


@pytest.mark.parametrize("call,message", BAD, ids=range(len(BAD)))
def test_bad_arguments_are_one_value_error_naming_the_sizes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_torch_refuses_the_same_bad_arguments():
    """The cases above are errors in torch too (the oracle for what is bad input)."""
    with pytest.raises(RuntimeError):
        TF.conv1d(torch.zeros(2, 3, 4, 5), torch.zeros(4, 3, 3))
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(3, 4, 3)(torch.zeros(2, 5, 8, 8))
    with pytest.raises(RuntimeError):
        torch.nn.Conv1d(1, 2, 7, padding=1)(torch.zeros(1, 1, 4))
    with pytest.raises(ValueError):
        torch.nn.Conv2d(6, 4, 3, groups=4)


@pytest.mark.parametrize("d,stride,dilation", [(1, 2, 1), (1, 1, 1), (2, 1, 1), (2, 1, 2),
                                                (2, 2, 1)])
def test_conv_gradient_is_differentiable_again_against_torch(d, stride, dilation):
    """Second order through a convolution: d/dx of |d loss / d w|^2, with torch's double
    backward (2-D stride 1: the channels-last algorithm; otherwise the channels-first one)."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, *(7,) * d)), rng.standard_normal((4, 3, *(3,) * d))
    ours_conv, torch_conv = (F.conv1d, TF.conv1d) if d == 1 else (F.conv2d, TF.conv2d)

    def run(lib, tensor, conv):
        xt, wt = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
        out = conv(xt, wt, stride=stride, padding=1, dilation=dilation)
        if lib == "torch":
            (gw,) = torch.autograd.grad((out ** 2).sum(), wt, create_graph=True)
        else:
            (gw,) = retrograd.autograd.grad((out ** 2).sum(), wt, create_graph=True)
        (gw ** 2).sum().backward()
        return as_np(xt.grad)

    ours = run("retrograd", retrograd.tensor, ours_conv)
    theirs = run("torch", torch.tensor, torch_conv)
    assert rel_err(ours, theirs) < 1e-10


@pytest.mark.parametrize("chunk,kw", [(3000, dict(padding=2, dilation=2, groups=2)),
                                      (6000, dict(padding=(1, 0)))])
def test_chunked_input_gradient_matches_torch(monkeypatch, chunk, kw):
    """The 2-D stride-1 input gradient made a few samples at a time (as it is for large
    windows): forced here with tiny chunk sizes (1 and 2 samples a chunk, a ragged last one),
    with groups, dilation and uneven padding, against torch's input gradient in float64."""
    from retrograd.ops import conv as conv_ops

    monkeypatch.setattr(conv_ops, "_WHOLE_BYTES", 0)
    monkeypatch.setattr(conv_ops, "_CHUNK_BYTES", chunk)
    rng = np.random.default_rng(7)
    groups = kw.get("groups", 1)
    x, w = rng.standard_normal((5, 4, 6, 5)), rng.standard_normal((6, 4 // groups, 3, 3))
    ours, theirs = F.conv2d, TF.conv2d
    g = rng.standard_normal(tuple(theirs(torch.tensor(x), torch.tensor(w), **kw).shape))
    xr, xt = retrograd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours(xr, retrograd.tensor(w), **kw).backward(retrograd.tensor(g))
    theirs(xt, torch.tensor(w), **kw).backward(torch.tensor(g))
    assert rel_err(as_np(xr.grad), as_np(xt.grad)) < 1e-10
