"""Every primitive in the table, by central finite differences in float64.

Elementwise primitives get their inputs generated from the table (scalars, vectors, matrices and
broadcast shapes, drawn from each argument's domain), so a new elementwise entry is tested with no
change here. Every other primitive needs a case in CASES: `test_every_primitive_has_a_case` fails
until it has one. Each case is checked twice: first derivatives (plain backward on arrays) and
second derivatives (the same VJPs run on tensors under create_graph).
"""

import itertools

import numpy as np
import pytest

import retrograd
from retrograd.autograd import grad, gradcheck
from retrograd.ops import PRIMITIVES
from retrograd.tensor import apply

UNARY_SHAPES = [(), (4,), (2, 3)]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)),
                 ((), (2, 3)), ((3, 1, 2), (4, 2))]
TERNARY_SHAPES = [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), ()), ((3, 1), (1, 2), (3, 2))]
PARAMS = {"clamp": [dict(min=-0.4, max=0.6), dict(min=0.1), dict(max=-0.2)],
          "leaky_relu": [{}, dict(negative_slope=0.2), dict(negative_slope=-1.5)],
          "elu": [{}, dict(alpha=0.5), dict(alpha=2.0)]}


def draw(domain: str, shape, rng):
    if domain == "bool":
        return rng.random(shape) > 0.5
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":
        return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    return rng.standard_normal(shape)


def elementwise_cases(prim):
    shapes = {1: [(s,) for s in UNARY_SHAPES], 2: BINARY_SHAPES, 3: TERNARY_SHAPES}
    rng = np.random.default_rng(0)
    for shape_set in shapes[prim.arity]:
        for params in PARAMS.get(prim.name, [{}]):
            args = [draw(d, s, rng) for d, s in zip(prim.domain, shape_set, strict=True)]
            yield args, params


def rand(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape)


def uniform(*shape, seed=5):
    return np.random.default_rng(seed + len(shape)).uniform(0, 1, shape)


def probabilities(*shape):
    e = np.exp(rand(*shape, seed=9))
    return e / e.sum(axis=1, keepdims=True)


CONV1 = dict(stride=(1,), padding=((1, 1),), dilation=(1,), groups=1)
# 2-D, stride 1: the channels-last algorithm (uneven padding, dilation, groups)
CONV2_S1 = dict(stride=(1, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)

# (arguments, parameters) for the primitives that are not elementwise
CASES = {
    # a copy to a device (here the host; tests/test_strict_backend.py crosses devices with it)
    "to_device": [([rand(2, 3)], dict(device=retrograd.device("cpu")))],
    "matmul": [([rand(3), rand(3)], {}), ([rand(2, 3), rand(3)], {}), ([rand(3), rand(3, 4)], {}),
               ([rand(2, 3), rand(3, 4)], {}), ([rand(2, 2, 3), rand(3, 4)], {}),
               ([rand(3), rand(2, 3, 4)], {}), ([rand(1, 2, 3), rand(2, 3, 2)], {})],
    "linear": [([rand(4, 3), rand(2, 3), rand(2)], {}), ([rand(4, 3), rand(2, 3)], {}),
               ([rand(3), rand(2, 3), rand(2)], {}), ([rand(2, 4, 3), rand(2, 3), rand(2)], {})],
    "linear_relu": [([rand(4, 3), rand(2, 3), rand(2)], {}), ([rand(4, 3), rand(2, 3)], {}),
                    ([rand(2, 4, 3), rand(2, 3), rand(2)], {})],
    "sum": [([rand(2, 3)], dict(axis=None)), ([rand(2, 3)], dict(axis=1)),
            ([rand(2, 3, 4)], dict(axis=(0, 2), keepdims=True)), ([rand(3)], dict(axis=-1))],
    "amax": [([rand(2, 3)], dict(axis=None)), ([rand(2, 3, 4)], dict(axis=1, keepdims=True)),
             ([rand(3, 4)], dict(axis=(0, 1)))],
    "reshape": [([rand(2, 3)], dict(shape=(3, 2))), ([rand(6)], dict(shape=(2, -1)))],
    "transpose": [([rand(2, 3)], dict(axes=(1, 0))), ([rand(2, 3, 4)], dict(axes=(2, 0, 1)))],
    "broadcast_to": [([rand(3)], dict(shape=(2, 3))), ([rand(2, 1)], dict(shape=(4, 2, 3)))],
    "sum_to": [([rand(2, 3)], dict(shape=(3,))), ([rand(4, 2, 3)], dict(shape=(2, 1)))],
    "getitem": [([rand(4, 3)], dict(index=(slice(1, 3), 0))),
                ([rand(5)], dict(index=np.array([0, 2, 2, 4, 0]))),
                ([rand(4, 3)], dict(index=(np.array([1, 1, 3]), np.array([0, 0, 2])))),
                ([rand(3, 4)], dict(index=(Ellipsis, None, slice(None, None, -2))))],
    "scatter_add": [([rand(3)], dict(shape=(5,), index=np.array([0, 4, 0]))),
                    ([rand(2)], dict(shape=(4, 3), index=(slice(1, 3), 1)))],
    "cat": [([rand(2, 3), rand(1, 3), rand(4, 3)], dict(axis=0)),
            ([rand(2, 3), rand(2, 1)], dict(axis=-1))],
    "softmax": [([rand(3, 4)], dict(axis=1)), ([rand(2, 3, 4)], dict(axis=0))],
    "log_softmax": [([rand(3, 4)], dict(axis=1)), ([rand(5)], dict(axis=0))],
    "astype": [([rand(2, 3)], dict(dtype=np.float64))],
    "softmax_cross_entropy": [
        ([rand(4, 3), np.array([0, 2, 1, 2])], {}),
        ([rand(4, 3), np.array([0, 2, 1, 2])],
         dict(weight=np.array([0.5, 2.0, 1.0]), ignore_index=1, smoothing=0.2)),
        ([rand(4, 3), np.array([0, 2, 1, 2])], dict(gamma=2.0)),
        ([rand(4, 3), np.array([0, 2, 1, 2])], dict(gamma=0.5, weight=np.array([1.0, 3.0, 0.5]))),
        ([rand(4, 3), np.array([0, 2, 1, 2])], dict(sample_weight=np.array([1.0, -2.0, 0.5, 3]))),
        ([rand(2, 3, 4), np.array([[0, 1, 2, 1], [2, 2, 0, 1]])],
         dict(weight=np.array([0.5, 2.0, 1.0]), smoothing=0.1, ignore_index=0)),
        ([rand(4, 3), probabilities(4, 3)], {}),
        ([rand(4, 3), probabilities(4, 3)], dict(weight=np.array([0.5, 2.0, 1.0]), smoothing=0.3)),
        ([rand(2, 3, 2), probabilities(2, 3, 2)], dict(sample_weight=uniform(2, 2) + 0.5)),
        ([rand(4, 3), np.array([0, 2, 1, 2])], dict(reduce_by=2.5, smoothing=0.1)),
        ([rand(4, 3), probabilities(4, 3)], dict(reduce_by=4)),
    ],
    # convolutions: strides, (asymmetric) padding, dilation, groups, 1-D and 2-D, no bias
    "conv": [([rand(2, 3, 7), rand(4, 3, 3), rand(4)], CONV1),
             ([rand(2, 4, 9), rand(6, 2, 2)], dict(CONV1, stride=(2,), padding=((2, 1),),
                                                   dilation=(3,), groups=2)),
             ([rand(1, 2, 5, 4), rand(3, 2, 3, 2), rand(3)],
              dict(stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2), groups=1)),
             ([rand(2, 3, 7), rand(4, 3, 3), rand(4)], dict(CONV1, relu=True)),
             ([rand(2, 4, 5, 4), rand(4, 2, 3, 2), rand(4)], CONV2_S1)],  # channels-last
    "conv_input_grad": [([rand(2, 4, 7), rand(4, 3, 3)], dict(CONV1, shape=(2, 3, 7))),
                        ([rand(1, 4, 3, 2), rand(4, 1, 2, 2)],
                         dict(stride=(2, 2), padding=((1, 0), (0, 0)), dilation=(1, 1),
                              groups=2, shape=(1, 2, 6, 4))),
                        ([rand(2, 4, 4, 5), rand(4, 2, 3, 2)], dict(CONV2_S1, shape=(2, 4, 5, 4)))],
    "conv_weight_grad": [([rand(2, 3, 7), rand(2, 4, 7)], dict(CONV1, shape=(4, 3, 3))),
                         ([rand(1, 2, 6, 4), rand(1, 4, 3, 2)],
                          dict(stride=(2, 2), padding=((1, 0), (0, 0)), dilation=(1, 1),
                               groups=2, shape=(4, 1, 2, 2))),
                         ([rand(2, 4, 5, 4), rand(2, 4, 4, 5)],
                          dict(CONV2_S1, shape=(4, 2, 3, 2)))],
    # pools: overlapping windows, padding, dilation, the partial window of ceil_mode
    "max_pool": [([rand(2, 3, 8)], dict(kernel=(2,), stride=(2,), padding=((0, 0),),
                                        dilation=(1,))),
                 ([rand(2, 2, 7)], dict(kernel=(3,), stride=(2,), padding=((1, 2),),
                                        dilation=(1,))),
                 ([rand(1, 2, 5, 6)], dict(kernel=(2, 3), stride=(1, 2), padding=((1, 1), (0, 0)),
                                           dilation=(2, 1)))],
    "avg_pool": [([rand(2, 3, 8)], dict(kernel=(3,), stride=(2,), padding=((1, 2),))),
                 ([rand(1, 2, 5, 6)], dict(kernel=(2, 3), stride=(2, 2), padding=((1, 1), (1, 1)),
                                           count_include_pad=False)),
                 ([rand(1, 2, 4, 4)], dict(kernel=(2, 2), stride=(2, 2), padding=((0, 0),) * 2,
                                           divisor_override=3))],
    "avg_pool_backward": [([rand(2, 3, 5)], dict(shape=(2, 3, 8), kernel=(3,), stride=(2,),
                                                 padding=((1, 2),))),
                          ([rand(1, 2, 3, 3)], dict(shape=(1, 2, 5, 6), kernel=(2, 3),
                                                    stride=(2, 2), padding=((1, 1), (1, 1)),
                                                    count_include_pad=False))],
    # BatchNorm (moments over batch and length, per-channel affine) and LayerNorm
    "normalize": [([rand(4, 3, 5), rand(3), rand(3)],
                   dict(axes=(0, 2), eps=1e-5, affine_shape=(3, 1))),
                  ([rand(4, 3, 2, 2), rand(3), rand(3)],
                   dict(axes=(0, 2, 3), eps=0.1, affine_shape=(3, 1, 1))),
                  ([rand(3, 4, 5), rand(4, 5), rand(4, 5)],
                   dict(axes=(1, 2), eps=1e-5, affine_shape=(4, 5))),
                  ([rand(3, 6), rand(6)], dict(axes=(1,), eps=1e-5, affine_shape=(6,))),
                  ([rand(5, 3)], dict(axes=(0,), eps=1e-5))],
    "vector_norm": [([rand(3, 4)], {}), ([rand(3, 4)], dict(axis=1, keepdims=True)),
                    ([rand(2, 3, 4)], dict(ord=1, axis=(0, 2))),
                    ([rand(3, 4)], dict(ord=3, axis=0)), ([rand(3, 4)], dict(ord=0.5)),
                    ([rand(3, 4)], dict(ord=0, axis=1))],  # (a zero norm: against torch)
    # (padding_idx's zero gradient is a convention, not a derivative: tested against torch)
    "embedding": [([rand(5, 3), np.array([[0, 4, 4], [2, 1, 0]])], {}),
                  ([rand(5, 3), np.array([0, 2, 2, 3])], dict(padding_idx=4))],
    "bce_with_logits": [([rand(3, 4), uniform(3, 4)], {}),
                        ([rand(3, 4), uniform(3, 4)],
                         dict(weight=uniform(4) + 0.5, pos_weight=uniform(4) * 3))],
    "bce": [([uniform(3, 4) * 0.8 + 0.1, uniform(3, 4)], {}),
            ([uniform(3, 4) * 0.8 + 0.1, uniform(3, 4)], dict(weight=uniform(3, 1) + 0.5))],
}


def cases():
    for name, prim in PRIMITIVES.items():
        generated = elementwise_cases(prim) if prim.elementwise else CASES.get(name, [])
        for k, (args, params) in enumerate(generated):
            yield pytest.param(name, args, params, id=f"{name}-{k}")


def as_inputs(prim, args):
    """Float arguments with a VJP become tensors that require grad; others stay constants."""
    inputs = []
    for i, a in enumerate(args):
        differentiable = prim.has_gradient(i) and a.dtype.kind == "f"
        inputs.append(retrograd.tensor(a, requires_grad=differentiable) if differentiable else a)
    return inputs


def test_every_primitive_has_a_case():
    missing = [n for n, p in PRIMITIVES.items() if not p.elementwise and n not in CASES]
    assert missing == [], f"primitives without a finite-difference case: {missing}"


@pytest.mark.parametrize("name,args,params", list(cases()))
def test_first_derivatives(name, args, params):
    prim = PRIMITIVES[name]
    assert gradcheck(lambda *xs: apply(prim, *xs, **params), as_inputs(prim, args),
                     atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,args,params", list(cases()))
def test_second_derivatives(name, args, params):
    """d/dx <v, J(x)^T w>: the VJP evaluated on tensors must itself be differentiable."""
    prim = PRIMITIVES[name]
    inputs = as_inputs(prim, args)
    wrt = [t for t in inputs if isinstance(t, retrograd.Tensor)]
    out_shape = apply(prim, *inputs, **params).shape
    rng = np.random.default_rng(7)
    w = retrograd.tensor(rng.standard_normal(out_shape))
    vs = [retrograd.tensor(rng.standard_normal(t.shape)) for t in wrt]

    @retrograd.enable_grad()  # gradcheck evaluates the function under no_grad for differences
    def vjp_dot(*xs):
        out = apply(prim, *xs, **params)
        xs_wrt = [x for x in xs if isinstance(x, retrograd.Tensor)]
        grads = grad(out, xs_wrt, grad_outputs=w, create_graph=True, allow_unused=True)
        total = retrograd.tensor(0.0, dtype=np.float64)
        for g, v in zip(grads, vs, strict=True):
            if g is not None:
                total = total + (g * v).sum()
        return total

    assert gradcheck(vjp_dot, inputs, atol=1e-6, rtol=1e-5)


def test_broadcast_gradients_sum_back_to_each_shape():
    a = retrograd.tensor(np.ones((3, 1)), requires_grad=True)
    b = retrograd.tensor(np.ones(4), requires_grad=True)
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 3.0))


@pytest.mark.parametrize("name", [n for n, p in PRIMITIVES.items() if p.elementwise])
def test_elementwise_forward_keeps_float32(name):
    """No accidental float64 promotion: float32 in, float32 out, float32 gradients."""
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(0)
    args = [draw(d, (2, 3), rng) for d in prim.domain]
    args = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in args]
    params = PARAMS.get(name, [{}])[0]
    inputs = as_inputs(prim, args)
    out = apply(prim, *inputs, **params)
    assert out.dtype == np.float32
    out.sum().backward()
    for t in inputs:
        if isinstance(t, retrograd.Tensor):
            assert t.grad.dtype == np.float32


def test_domains_cover_every_argument():
    for prim in PRIMITIVES.values():
        if prim.elementwise:
            assert len(prim.domain) == prim.arity, prim.name
            assert set(prim.domain) <= {"real", "positive", "nonzero", "bool"}
    assert list(itertools.chain(PARAMS)) == ["clamp", "leaky_relu", "elu"]
