"""retrograd against PyTorch 2.13.0, the oracle: forward values and gradients w.r.t. every input.

Every case runs the same code on both libraries. Expressions are lambdas `fn(lib, *xs)`, where
`lib` is a small namespace shim (RG or TH below) holding the free functions both libraries share
under one name plus `F`, the functional module; tensor methods (.sum, .reshape, ...) and the
operators are called directly, since retrograd spells them as torch does. Comparisons are in
float64 to rtol 1e-10 and, for a subset, in float32 to rtol 1e-5.
"""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import retrograd
import retrograd.nn.functional as F
from oracle import TORCH_DTYPE, as_np, assert_close
from retrograd import nn
from retrograd.autograd import grad as rgrad

_SHARED = ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "clamp", "softmax",
           "log_softmax", "where", "cat", "stack", "amax", "amin", "matmul", "sum", "mean",
           "tensor", "transpose", "permute", "reshape", "unsqueeze", "squeeze")
RG = SimpleNamespace(**{n: getattr(retrograd, n) for n in _SHARED}, F=F, nn=nn)
TH = SimpleNamespace(**{n: getattr(torch, n) for n in _SHARED}, F=TF, nn=torch.nn)


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def draw(spec, rng, dtype=np.float64) -> np.ndarray:
    """spec is a shape (standard normal) or ("pos", shape) for a positive operand."""
    if isinstance(spec, tuple) and spec and spec[0] == "pos":
        return rng.uniform(0.5, 2.0, spec[1]).astype(dtype)
    return rng.standard_normal(spec).astype(dtype)


def compare(fn, arrays, rng, dtype=np.float64):
    """fn on retrograd and on torch: the same value, dtype and shape, and the same gradient for
    every input under a random cotangent."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    rs = [retrograd.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    r_out, t_out = fn(RG, *rs), fn(TH, *ts)
    assert r_out.dtype == np.dtype(dtype) and t_out.dtype == TORCH_DTYPE[dtype]
    assert_close(r_out, t_out, dtype, "forward")
    cot = np.asarray(rng.standard_normal(r_out.shape), dtype=dtype)
    r_out.backward(cot)
    t_out.backward(torch.from_numpy(cot))
    for i, (r, t) in enumerate(zip(rs, ts, strict=True)):
        assert r.grad is not None, f"no gradient for input {i}"
        assert r.grad.dtype == np.dtype(dtype)
        assert_close(r.grad, t.grad, dtype, f"gradient of input {i}")


P = "pos"
EXPRESSIONS = [
    # broadcasting arithmetic
    ("add_3d_2d", lambda L, a, b: a + b, [(3, 1, 4), (2, 4)]),
    ("sub_mul_row_col", lambda L, a, b, c: a - b * c, [(3, 4), (4,), (3, 1)]),
    ("div_broadcast", lambda L, a, b: a / b, [(2, 3), (P, (3,))]),
    ("row_times_col", lambda L, a, b: a * b, [(1, 4), (3, 1)]),
    ("scalar_tensor_operand", lambda L, a, s: a * s + s / (a * a + 1), [(2, 3), ()]),
    ("python_scalars", lambda L, a: 3 - 2.5 * a + a / 4 - 1 / (a * a + 1), [(2, 3)]),
    ("rsub_rdiv", lambda L, a, b: 1.5 - a / (2.0 + b * b), [(3, 2), (2,)]),
    ("neg", lambda L, a, b: -a * b - (-b), [(2, 3), (3,)]),
    ("pow_int_and_half", lambda L, a, b: a ** 2 + b ** 0.5 - a ** 3, [(2, 3), (P, (2, 3))]),
    ("pow_negative_exponent", lambda L, a: a ** -1.5, [(P, (4,))]),
    ("pow_tensor_tensor", lambda L, a, b: a ** b, [(P, (2, 3)), (3,)]),
    ("rpow", lambda L, a: 2.0 ** a + 3 ** (a / 2), [(2, 3)]),
    ("reuse_input", lambda L, a: a * a + L.exp(a) * a - a, [(3, 3)]),
    # elementwise functions
    ("exp_log", lambda L, a, b: L.log(b) * L.exp(a), [(2, 3), (P, (2, 3))]),
    ("sqrt_abs", lambda L, a, b: L.sqrt(b) * L.abs(a), [(3, 4), (P, (4,))]),
    ("tanh_sigmoid_relu", lambda L, a: L.tanh(a) + L.sigmoid(a) * L.relu(a), [(4, 5)]),
    ("sigmoid_tails", lambda L, a: L.sigmoid(a * 30), [(20,)]),
    ("methods", lambda L, a, b: a.exp() * b.log() + a.tanh().abs().sqrt(),
     [(3, 2), (P, (3, 2))]),
    ("clamp_both", lambda L, a: L.clamp(a, min=-0.5, max=0.4), [(5, 6)]),
    ("clamp_min", lambda L, a: L.clamp(a, min=0.1) * a, [(5, 6)]),
    ("clamp_max_method", lambda L, a: a.clamp(max=-0.2) + 1, [(5, 6)]),
    # reductions
    ("sum_all", lambda L, a: a.sum(), [(3, 4)]),
    ("sum_dim", lambda L, a, b: (a * b).sum(dim=1), [(3, 4), (4,)]),
    ("sum_keepdim", lambda L, a: a.sum(dim=0, keepdim=True) * a, [(3, 4)]),
    ("sum_tuple_dims", lambda L, a: a.sum(dim=(0, 2)), [(2, 3, 4)]),
    ("sum_negative_dim", lambda L, a: L.sum(a, -1), [(2, 3, 4)]),
    ("mean_all", lambda L, a: a.mean(), [(3, 4)]),
    ("mean_keepdim_centre", lambda L, a: a - a.mean(dim=0, keepdim=True), [(5, 3)]),
    ("mean_tuple", lambda L, a: L.mean(a, (1, 2)), [(2, 3, 4)]),
    ("amax_all", lambda L, a: a.amax(), [(3, 4)]),
    ("amax_keepdim", lambda L, a: a - a.amax(dim=-1, keepdim=True), [(3, 4)]),
    ("amax_tuple", lambda L, a: L.amax(a, dim=(0, 2)), [(2, 3, 4)]),
    ("amin", lambda L, a: L.amin(a, dim=1) * 2, [(4, 5)]),
    ("max_min_dim_values", lambda L, a: a.max(dim=1, keepdim=True).values - a.min(0).values,
     [(4, 5)]),
    ("max_min_all", lambda L, a: a.max() * a.min(), [(3, 4)]),
    ("clone", lambda L, a: a.clone() * a.detach(), [(2, 3)]),
    # shapes
    ("reshape_matmul", lambda L, a, b: a.reshape(6, 2) @ b, [(3, 4), (2, 5)]),
    ("reshape_minus_one", lambda L, a: L.reshape(a, (-1,)) * 2, [(2, 3, 2)]),
    ("transpose", lambda L, a, b: a.transpose(0, 2) * b, [(2, 3, 4), (3, 2)]),
    ("transpose_fn_negative", lambda L, a: L.transpose(a, -1, 0) + 1, [(2, 3, 4)]),
    ("permute", lambda L, a, b: a.permute(2, 0, 1) + b, [(2, 3, 4), (3,)]),
    ("permute_fn", lambda L, a: L.permute(a, (1, 2, 0)).sum(0), [(2, 3, 4)]),
    ("unsqueeze_outer", lambda L, a, b: a.unsqueeze(1) * b.unsqueeze(0), [(3, 4), (5, 4)]),
    ("unsqueeze_negative", lambda L, a: L.unsqueeze(a, -1) * a.unsqueeze(-2), [(4,)]),
    ("squeeze", lambda L, a: a.squeeze(1) * 2 + L.squeeze(a).sum(), [(3, 1, 4)]),
    ("squeeze_all", lambda L, a: a.squeeze() ** 2, [(1, 4, 1)]),
    ("expand", lambda L, a: a.expand(2, 3, 4) * 1.5, [(3, 1)]),
    ("flatten", lambda L, a: a.flatten(1) @ a.flatten(1).T, [(3, 2, 2)]),
    ("matrix_T", lambda L, a, b: a.T @ b, [(4, 3), (4, 2)]),
    # softmax family
    ("softmax_dim1", lambda L, a: L.softmax(a, dim=1), [(3, 5)]),
    ("softmax_dim0", lambda L, a: L.softmax(a, 0) * a, [(3, 5)]),
    ("log_softmax_dim_last", lambda L, a: L.log_softmax(a, dim=-1), [(2, 3, 4)]),
    ("log_softmax_large", lambda L, a: L.log_softmax(a * 100, dim=1), [(3, 5)]),
    ("softmax_method", lambda L, a: a.softmax(1) + a.log_softmax(0), [(3, 4)]),
    # where, cat, stack
    ("where_self", lambda L, a, b: L.where(a > 0, a, b * 2), [(3, 4), (3, 4)]),
    ("where_broadcast", lambda L, a, b, c: L.where(a > b, b, c) * a, [(3, 1), (4,), ()]),
    ("where_scalar_other", lambda L, a, b: L.where(a > b, a * b, 0.0), [(2, 5), (5,)]),
    ("cat_dim0", lambda L, a, b: L.cat([a, b], dim=0), [(2, 3), (4, 3)]),
    ("cat_last", lambda L, a, b, c: L.cat([a, b, c], dim=-1) * 2, [(2, 1), (2, 3), (2, 2)]),
    ("cat_repeated", lambda L, a: L.cat([a, a * 2, a], 1), [(2, 3)]),
    ("stack_dim0", lambda L, a, b: L.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack_dim1", lambda L, a, b: L.stack([a, b, a], dim=1), [(2, 3), (2, 3)]),
    ("stack_negative", lambda L, a, b: L.stack([a, b], dim=-1).sum(0), [(4,), (4,)]),
    # composites
    ("mlp_like", lambda L, x, w, b: L.log_softmax(L.relu(x @ w + b), dim=1).amax(dim=1).sum(),
     [(5, 4), (4, 3), (3,)]),
    ("composite_chain",
     lambda L, a, b, c: ((a @ b).relu().sum(0) / L.exp(c)).mean() + L.tanh(a).amax(),
     [(3, 4), (4, 5), (5,)]),
    ("composite_norm", lambda L, a: a / L.sqrt((a * a).sum(dim=1, keepdim=True) + 1e-3),
     [(4, 3)]),
    ("composite_gelu_like",
     lambda L, a: 0.5 * a * (1 + L.tanh(0.79788 * (a + 0.044715 * a ** 3))), [(3, 4)]),
    ("composite_logsumexp",
     lambda L, a: a.amax(1) + L.log(L.exp(a - a.amax(1, keepdim=True)).sum(1)), [(4, 6)]),
    ("composite_where_cat_stack",
     lambda L, a, b: L.stack([L.where(a > 0, L.sigmoid(a), -b), L.cat([b[1:], b[:1]], 0)])
     .softmax(-1), [(3, 2), (3, 2)]),
    ("composite_broadcast_3d",
     lambda L, a, b, c: (L.clamp(a * b, min=-1.0) - c).permute(1, 0, 2).reshape(2, -1).mean(1),
     [(3, 1, 4), (2, 4), (1, 1, 4)]),
]


@pytest.mark.parametrize("name, fn, specs", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expression_float64(name, fn, specs, rng):
    compare(fn, [draw(s, rng) for s in specs], rng)


FLOAT32 = {"add_3d_2d", "div_broadcast", "pow_int_and_half", "exp_log", "tanh_sigmoid_relu",
           "sum_keepdim", "amax_keepdim", "softmax_dim1", "log_softmax_dim_last",
           "where_broadcast", "cat_last", "stack_dim1", "mlp_like", "composite_chain",
           "composite_logsumexp"}


@pytest.mark.parametrize("name, fn, specs", [e for e in EXPRESSIONS if e[0] in FLOAT32],
                         ids=[e[0] for e in EXPRESSIONS if e[0] in FLOAT32])
def test_expression_float32(name, fn, specs, rng):
    compare(fn, [draw(s, rng, np.float32) for s in specs], rng, np.float32)


def test_float32_stays_float32_with_python_scalars(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    r = retrograd.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    r_out, t_out = r * 0.5 + 2 - r ** 2 / 3.0, t * 0.5 + 2 - t ** 2 / 3.0
    assert r_out.dtype == np.float32 and t_out.dtype == torch.float32
    assert_close(r_out, t_out, np.float32)


# Points where a derivative is a convention: torch's choices are the oracle.
EDGES = [
    ("relu_at_zero", lambda L, a: L.relu(a), [[-1.0, 0.0, 0.0, 2.0]]),
    ("abs_at_zero", lambda L, a: L.abs(a), [[-1.0, 0.0, 3.0]]),
    ("clamp_at_bounds", lambda L, a: L.clamp(a, min=-0.5, max=0.5), [[-0.5, 0.5, 0.0, 1.0]]),
    ("amax_ties", lambda L, a: L.amax(a, dim=1), [[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]]),
    ("amax_ties_all", lambda L, a: a.amax(), [[[1.0, 3.0], [3.0, 0.5]]]),
    ("max_ties_all", lambda L, a: a.max() + a.min(), [[[1.0, 3.0], [3.0, 1.0]]]),
    ("pow_zero_base", lambda L, a, b: a ** b, [[0.0, 1.5, 0.0], [2.0, 1.0, 0.5]]),
    ("pow_zero_exponent", lambda L, a: a ** 0, [[0.0, 1.5, -2.0]]),
    ("sqrt_times_zero", lambda L, a: L.sqrt(a) * 0, [[1.0, 4.0]]),
]


@pytest.mark.parametrize("name, fn, arrays", EDGES, ids=[e[0] for e in EDGES])
def test_derivative_conventions(name, fn, arrays, rng):
    compare(fn, [np.array(a) for a in arrays], rng)


@pytest.mark.parametrize("op", ["add", "mul", "div"])
def test_mixed_precision_promotes_and_grads_keep_dtype(op, rng):
    fn = BINARY[op][0]
    a32 = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    b64 = rng.uniform(0.5, 2.0, (4,))
    ra, rb = (retrograd.tensor(a32, requires_grad=True), retrograd.tensor(b64, requires_grad=True))
    ta, tb = torch.tensor(a32, requires_grad=True), torch.tensor(b64, requires_grad=True)
    r_out, t_out = fn(ra, rb), fn(ta, tb)
    assert r_out.dtype == np.float64 and t_out.dtype == torch.float64
    assert_close(r_out, t_out)
    r_out.sum().backward()
    t_out.sum().backward()
    assert ra.grad.dtype == np.float32 and rb.grad.dtype == np.float64
    assert_close(ra.grad, ta.grad, np.float32)
    assert_close(rb.grad, tb.grad)


# ------------------------------------------------------------------ hypothesis: random shapes

BINARY = {
    "add": (lambda a, b: a + b, ("real", "real")),
    "sub": (lambda a, b: a - b, ("real", "real")),
    "mul": (lambda a, b: a * b, ("real", "real")),
    "div": (lambda a, b: a / b, ("real", "pos")),
    "pow": (lambda a, b: a ** b, ("pos", "real")),
}


def _array(domain, shape, rng):
    return rng.uniform(0.5, 2.0, shape) if domain == "pos" else rng.standard_normal(shape)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4,
                                                 max_side=4),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2 ** 32 - 1))
def test_broadcast_binary_random_shapes(shapes, op, seed):
    rng = np.random.default_rng(seed)
    fn, domains = BINARY[op]
    arrays = [_array(d, s, rng) for d, s in zip(domains, shapes.input_shapes, strict=True)]
    compare(lambda L, a, b: fn(a, b), arrays, rng)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                 max_side=3),
       seed=st.integers(0, 2 ** 32 - 1))
def test_where_random_shapes(shapes, seed):
    rng = np.random.default_rng(seed)
    cond = rng.random(shapes.input_shapes[0]) > 0.5
    arrays = [rng.standard_normal(s) for s in shapes.input_shapes[1:]]
    compare(lambda L, a, b: L.where(L.tensor(cond), a, b), arrays, rng)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
       reduction=st.sampled_from(["sum", "mean", "amax"]), keepdim=st.booleans(),
       data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
def test_reductions_random_shapes(shape, reduction, keepdim, data, seed):
    rng = np.random.default_rng(seed)
    dims = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                              max_size=len(shape), unique_by=lambda d: d % len(shape)))
    dim = dims[0] if len(dims) == 1 else tuple(dims)
    compare(lambda L, a: getattr(a, reduction)(dim=dim, keepdim=keepdim),
            [rng.standard_normal(shape)], rng)


# ------------------------------------------------------------------ matmul

MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((3, 4), (4,)), ((3, 4), (4, 5)),
                 ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5))]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_shapes(sa, sb, rng):
    arrays = [rng.standard_normal(sa), rng.standard_normal(sb)]
    compare(lambda L, a, b: a @ b, arrays, rng)
    compare(lambda L, a, b: L.matmul(a, b), arrays, rng)


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES[:6], ids=[f"{a}@{b}" for a, b in
                                                            MATMUL_SHAPES[:6]])
def test_matmul_shapes_float32(sa, sb, rng):
    arrays = [rng.standard_normal(sa), rng.standard_normal(sb)]
    compare(lambda L, a, b: a @ b, arrays, rng, np.float32)


def test_matmul_same_operand_twice(rng):
    compare(lambda L, a: a @ a @ a, [rng.standard_normal((3, 3))], rng)


# ------------------------------------------------------------------ indexing

MASK = np.random.default_rng(7).random((4, 5)) > 0.4
INDEXES = [
    ("int", lambda L, a: a[1]),
    ("negative_int", lambda L, a: a[-1, 2]),
    ("slice", lambda L, a: a[1:3]),
    ("slice_steps", lambda L, a: a[:, 1:5:2, ::3]),
    ("none", lambda L, a: a[None, 1, :, None]),
    ("ellipsis", lambda L, a: a[..., 2]),
    ("ellipsis_none", lambda L, a: a[1, ..., None, 3:]),
    ("int_list_repeated", lambda L, a: a[[0, 0, 3, 0]]),
    ("int_list_negative", lambda L, a: a[[-1, 0, -1]]),
    ("int_arrays_pairs_repeated", lambda L, a: a[[0, 0, 2], [1, 1, 1]]),
    ("int_list_inner_dim", lambda L, a: a[:, [4, 4, 0]]),
    ("slice_then_list", lambda L, a: a[1:, [0, 0, 2], ::2]),
    ("int_tensor", lambda L, a: a[L.tensor([0, 3, 3])]),
    ("int_tensor_2d", lambda L, a: a[L.tensor([[0, 1], [1, 1]])]),
    ("int_tensors_split", lambda L, a: a[L.tensor([0, 2, 2]), :, L.tensor([1, 1, 5])]),
    ("bool_mask_computed", lambda L, a: a[a > 0.3]),
    ("bool_mask_2d", lambda L, a: a[L.tensor(MASK)]),
    ("bool_mask_inner", lambda L, a: a[:, L.tensor(MASK[0])]),
    ("chained", lambda L, a: a[1:][:, [2, 2]][..., 1::2] * 2),
]

# torch rejects negative slice steps; its flip() is the oracle for them.
NEGATIVE_STEPS = [
    ("reverse", lambda a: a[::-1], lambda a: a.flip(0)),
    ("inner_steps", lambda a: a[:, ::-2, 4:0:-1], lambda a: a.flip(1)[:, ::2].flip(2)[..., 1:5]),
    ("chained", lambda a: a[1:][:, [2, 2]][..., ::-1] * 2,
     lambda a: a[1:][:, [2, 2]].flip(-1) * 2),
]


@pytest.mark.parametrize("name, index", INDEXES, ids=[n for n, _ in INDEXES])
def test_indexing(name, index, rng):
    compare(index, [rng.standard_normal((4, 5, 6))], rng)


@pytest.mark.parametrize("name, mine, theirs", NEGATIVE_STEPS, ids=[n for n, *_ in NEGATIVE_STEPS])
def test_negative_step_slices(name, mine, theirs, rng):
    compare(lambda L, a: (mine if L is RG else theirs)(a), [rng.standard_normal((4, 5, 6))], rng)


def test_max_min_dim_indices(rng):
    x = rng.standard_normal((4, 5))
    for dim, keepdim in [(0, False), (1, True), (-1, False)]:
        r_max, t_max = retrograd.tensor(x).max(dim, keepdim), torch.tensor(x).max(dim, keepdim)
        np.testing.assert_array_equal(r_max.indices.numpy(), t_max.indices.numpy())
        np.testing.assert_array_equal(r_max.values.numpy(), t_max.values.numpy())
        r_min, t_min = retrograd.tensor(x).min(dim, keepdim), torch.tensor(x).min(dim, keepdim)
        np.testing.assert_array_equal(r_min.indices.numpy(), t_min.indices.numpy())
        np.testing.assert_array_equal(retrograd.tensor(x).argmax(dim, keepdim).numpy(),
                                      torch.tensor(x).argmax(dim, keepdim).numpy())


def test_index_gradient_accumulates_repeats():
    x = retrograd.tensor(np.arange(5.0), requires_grad=True)
    x[[1, 1, 1, 4, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 4, 0, 0, 1])


# ------------------------------------------------------------------ modules and losses


def torch_mlp(dtype=torch.float64):
    return torch.nn.Sequential(
        torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 3)).to(dtype)


def rg_mlp(dtype=np.float64):
    return nn.Sequential(nn.Linear(7, 16, dtype=dtype), nn.ReLU(), nn.Linear(16, 16, dtype=dtype),
                         nn.ReLU(), nn.Linear(16, 3, dtype=dtype))


def mlp_pair(dtype=np.float64):
    tmodel, rmodel = torch_mlp(TORCH_DTYPE[dtype]), rg_mlp(dtype)
    rmodel.load_state_dict(tmodel.state_dict())
    return tmodel, rmodel


def data(rng, n=32, dtype=np.float64):
    return rng.standard_normal((n, 7)).astype(dtype), rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_forward_loss_and_gradients(dtype, rng):
    tmodel, rmodel = mlp_pair(dtype)
    assert list(rmodel.state_dict()) == list(tmodel.state_dict())
    for key, value in tmodel.state_dict().items():
        assert_close(rmodel.state_dict()[key], value, dtype, key)
        assert rmodel.state_dict()[key].dtype == np.dtype(dtype)
    x, y = data(rng, dtype=dtype)
    r_out, t_out = rmodel(retrograd.tensor(x)), tmodel(torch.tensor(x))
    assert_close(r_out, t_out, dtype, "logits")
    r_loss = F.cross_entropy(r_out, retrograd.tensor(y))
    t_loss = TF.cross_entropy(t_out, torch.tensor(y))
    assert r_loss.shape == () and r_loss.dtype == np.dtype(dtype)
    assert_close(r_loss, t_loss, dtype, "loss")
    r_loss.backward()
    t_loss.backward()
    r_params = dict(rmodel.named_parameters())
    t_params = dict(tmodel.named_parameters())
    assert list(r_params) == list(t_params)
    for name, tp in t_params.items():
        assert_close(r_params[name].grad, tp.grad, dtype, f"grad of {name}")


def test_cross_entropy_large_logits_and_input_gradient(rng):
    logits = rng.standard_normal((6, 5)) * 50
    y = rng.integers(0, 5, 6)
    compare(lambda L, z: L.F.cross_entropy(z, L.tensor(y)), [logits], rng)


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (3,)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_functional(shape, bias, rng):
    arrays = [rng.standard_normal(shape), rng.standard_normal((2, 3))]
    if bias:
        arrays.append(rng.standard_normal(2))
    compare(lambda L, x, w, *b: L.F.linear(x, w, *b), arrays, rng)


LAYERS = [
    ("softmax_dim1", lambda M: M.Softmax(dim=1)),
    ("softmax_dim0", lambda M: M.Softmax(dim=0)),
    ("log_softmax_dim1", lambda M: M.LogSoftmax(dim=1)),
    ("log_softmax_dim_neg", lambda M: M.LogSoftmax(dim=-1)),
    ("sigmoid", lambda M: M.Sigmoid()),
    ("tanh", lambda M: M.Tanh()),
    ("relu", lambda M: M.ReLU()),
    ("identity", lambda M: M.Identity()),
    ("flatten", lambda M: M.Flatten()),
    ("dropout_eval", lambda M: M.Dropout(0.5).eval()),
    ("sequential_eval", lambda M: M.Sequential(M.Tanh(), M.Dropout(0.3), M.Softmax(dim=1)).eval()),
]


@pytest.mark.parametrize("name, make", LAYERS, ids=[n for n, _ in LAYERS])
def test_layers(name, make, rng):
    compare(lambda L, x: make(L.nn)(x), [rng.standard_normal((4, 3, 2))], rng)


def test_dropout_eval_is_identity_and_train_is_not(rng):
    x = retrograd.tensor(rng.standard_normal((50, 20)) + 5)
    layer = nn.Dropout(0.5)
    assert layer.eval() is layer
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    layer.train()
    out = layer(x).numpy()
    assert (out == 0).any()
    np.testing.assert_allclose(out[out != 0], 2 * x.numpy()[out != 0], rtol=1e-15)


# ------------------------------------------------------------------ one_hot and dropout


@pytest.mark.parametrize("labels, num_classes", [
    ([0, 2, 1, 2], -1), ([0, 2, 1, 2], 5), ([[1, 0], [3, 3]], -1), ([[1, 0], [3, 3]], 4), (3, 6),
], ids=["1d_infer", "1d_given", "2d_infer", "2d_given", "scalar"])
def test_one_hot(labels, num_classes):
    r = F.one_hot(retrograd.tensor(labels), num_classes)
    t = TF.one_hot(torch.tensor(labels), num_classes)
    assert r.dtype == np.int64 and t.dtype == torch.int64
    np.testing.assert_array_equal(r.numpy(), t.numpy())


def test_one_hot_out_of_range_raises_like_torch():
    with pytest.raises(RuntimeError):
        TF.one_hot(torch.tensor([0, 3]), 3)
    with pytest.raises((ValueError, RuntimeError, IndexError)):
        F.one_hot(retrograd.tensor([0, 3]), 3)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_dropout_scaling_and_gradient(p, rng):
    x_np = rng.uniform(0.5, 2.0, (400, 250)) * rng.choice([-1.0, 1.0], (400, 250))
    x = retrograd.tensor(x_np, requires_grad=True)
    out = F.dropout(x, p=p, training=True)
    out_np = out.numpy()
    kept = out_np != 0
    np.testing.assert_allclose(out_np[kept], x_np[kept] / (1 - p), rtol=1e-15)
    n = kept.size
    sigma = np.sqrt(n * p * (1 - p))
    assert abs((~kept).sum() - n * p) < 5 * sigma
    cot = rng.standard_normal(x_np.shape)
    out.backward(cot)
    np.testing.assert_allclose(x.grad.numpy(), cot * kept / (1 - p), rtol=1e-15)


def test_dropout_edge_probabilities(rng):
    x_np = rng.standard_normal((5, 4))
    x = retrograd.tensor(x_np, requires_grad=True)
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x_np)
    np.testing.assert_array_equal(F.dropout(x, 0.7, training=False).numpy(), x_np)
    out = F.dropout(x, 1.0)
    np.testing.assert_array_equal(out.numpy(), np.zeros_like(x_np))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros_like(x_np))


# ------------------------------------------------------------------ second order


def logistic_loss(L, w, X, y):
    p = L.sigmoid(X @ w)
    return -(y * L.log(p) + (1 - y) * L.log(1 - p)).mean() + 0.05 * (w * w).sum()


def mlp_tanh_loss(L, w, X, t):
    w1, b1 = w[0:12].reshape(4, 3), w[12:16]
    w2, b2 = w[16:24].reshape(2, 4), w[24:26]
    h = L.tanh(L.F.linear(X, w1, b1))
    return L.F.cross_entropy(h @ w2.T + b2, t)


def mlp_tanh_mse(L, w, X, t):
    w1, b1 = w[0:12].reshape(4, 3), w[12:16]
    w2, b2 = w[16:24].reshape(2, 4), w[24:26]
    out = L.sigmoid(L.tanh(X @ w1.T + b1) @ w2.T + b2)
    return ((out - L.F.one_hot(t, 2)) ** 2).mean()


def mixed_loss(L, w, X, t):
    a = w[:6].reshape(2, 3)
    z = L.cat([X @ a.T + L.sigmoid(w[6:8]), L.tanh(X[:, :2] * w[[8, 8]])], dim=1)
    s = L.softmax(z, dim=1)
    lsm = L.log_softmax(z * w[9], dim=0)
    gathered = lsm[L.tensor(np.arange(5)), t]
    return ((s * lsm).sum() + z.amax(dim=1).sum() * 0.1 + (s[:, 0] ** 2).mean()
            + L.sqrt(L.exp(w[:3]) + 1).sum() - gathered.mean() + L.relu(w[3:9]).sum() ** 2)


def _problem(name, rng):
    X = rng.standard_normal((5, 3))
    if name == "logistic":
        return logistic_loss, rng.standard_normal(3), X, (rng.random(5) > 0.5).astype(float)
    fn = {"mlp_tanh": mlp_tanh_loss, "mlp_tanh_mse": mlp_tanh_mse, "mixed": mixed_loss}[name]
    size = 10 if name == "mixed" else 26
    t = rng.integers(0, 4 if name == "mixed" else 2, 5)
    return fn, rng.standard_normal(size) * 0.7, X, t


def _consts(L, X, t):
    return L.tensor(X), L.tensor(t)


@pytest.mark.parametrize("problem", ["logistic", "mlp_tanh", "mlp_tanh_mse", "mixed"])
def test_hessian_vector_product(problem, rng):
    fn, w0, X, t = _problem(problem, rng)
    v0 = rng.standard_normal(w0.shape)

    w = retrograd.tensor(w0, requires_grad=True)
    f = fn(RG, w, *_consts(RG, X, t))
    (g,) = rgrad(f, w, create_graph=True)
    assert g.requires_grad
    (hv,) = rgrad((g * retrograd.tensor(v0)).sum(), w)

    tw = torch.tensor(w0, requires_grad=True)
    tf = fn(TH, tw, *_consts(TH, X, t))
    (tg,) = torch.autograd.grad(tf, tw, create_graph=True)
    (thv,) = torch.autograd.grad((tg * torch.tensor(v0)).sum(), tw)

    assert_close(f, tf, what="loss")
    assert_close(g, tg, what="gradient")
    assert_close(hv, thv, what="Hessian-vector product")


def small_function(L, x):
    return ((L.tanh(x) * x.sum()).sum() + (x ** 3).sum() + L.log_softmax(x, dim=0)[0]
            + L.sqrt(x * x + 1).sum() + (L.sigmoid(x[:2]) @ L.exp(x[2:])) * x[1]
            + L.softmax(L.stack([x, x * x]), dim=0)[1].amax())


def test_full_hessian_matches_torch(rng):
    x0 = rng.standard_normal(4)
    x = retrograd.tensor(x0, requires_grad=True)
    (g,) = rgrad(small_function(RG, x), x, create_graph=True)
    rows = [rgrad(g[i], x, retain_graph=True)[0].numpy() for i in range(4)]
    hessian = np.stack(rows)
    expected = torch.autograd.functional.hessian(lambda t: small_function(TH, t),
                                                 torch.tensor(x0))
    assert_close(hessian, expected, what="Hessian")
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_then_grad_of_grad(rng):
    x0 = rng.standard_normal(5)
    x = retrograd.tensor(x0, requires_grad=True)
    (RG.tanh(x) ** 2 * RG.sigmoid(x)).sum().backward(create_graph=True)
    gx = x.grad
    assert gx.requires_grad
    (second,) = rgrad(gx.sum(), x)

    tx = torch.tensor(x0, requires_grad=True)
    (torch.tanh(tx) ** 2 * torch.sigmoid(tx)).sum().backward(create_graph=True)
    (tsecond,) = torch.autograd.grad(tx.grad.sum(), tx)
    assert_close(gx, tx.grad, what="first derivative")
    assert_close(second, tsecond, what="second derivative")


def test_third_derivative(rng):
    x0 = rng.standard_normal(6)

    def derivs(L, grad_fn, x):
        y = (L.tanh(x) * L.exp(x / 3) + x ** 4 / L.sqrt(x * x + 2)).sum()
        out = []
        for _ in range(3):
            (y,) = grad_fn(y, x)
            out.append(y)
            y = y.sum()
        return out

    x = retrograd.tensor(x0, requires_grad=True)
    tx = torch.tensor(x0, requires_grad=True)
    mine = derivs(RG, lambda y, x: rgrad(y, x, create_graph=True), x)
    theirs = derivs(TH, lambda y, x: torch.autograd.grad(y, x, create_graph=True), tx)
    for k, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert_close(a, b, what=f"derivative {k + 1}")


def test_hvp_through_model_parameters(rng):
    """grad w.r.t. several module parameters with create_graph, then an HVP, as in torch."""
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    rmodel = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(),
                           nn.Linear(4, 2, dtype=np.float64))
    rmodel.load_state_dict(tmodel.state_dict())
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    vs = [rng.standard_normal(tuple(p.shape)) for p in tmodel.parameters()]

    r_params = list(rmodel.parameters())
    r_grads = rgrad(F.cross_entropy(rmodel(retrograd.tensor(X)), retrograd.tensor(y)),
                    r_params, create_graph=True)
    r_dot = sum((g * retrograd.tensor(v)).sum() for g, v in zip(r_grads, vs, strict=True))
    r_hv = rgrad(r_dot, r_params)

    t_params = list(tmodel.parameters())
    t_grads = torch.autograd.grad(TF.cross_entropy(tmodel(torch.tensor(X)), torch.tensor(y)),
                                  t_params, create_graph=True)
    t_dot = sum((g * torch.tensor(v)).sum() for g, v in zip(t_grads, vs, strict=True))
    t_hv = torch.autograd.grad(t_dot, t_params)
    for a, b in zip(r_hv, t_hv, strict=True):
        assert_close(a, b, what="HVP block")


# ------------------------------------------------------------------ SGD


def train(model, opt, loss_fn, X, y, steps, on_step=None):
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step)


SGD_OPTIONS = [
    ("plain", dict(lr=0.1)),
    ("momentum", dict(lr=0.05, momentum=0.9)),
    ("dampening", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("nesterov", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("weight_decay", dict(lr=0.05, weight_decay=1e-2, momentum=0.5)),
    ("maximize", dict(lr=0.01, maximize=True)),
]


@pytest.mark.parametrize("name, options", SGD_OPTIONS, ids=[n for n, _ in SGD_OPTIONS])
def test_sgd_matches_torch(name, options, rng):
    tmodel, rmodel = mlp_pair()
    x, y = data(rng)
    t_opt = torch.optim.SGD(tmodel.parameters(), **options)
    r_opt = retrograd.optim.SGD(rmodel.parameters(), **options)
    tX, ty, rX, ry = torch.tensor(x), torch.tensor(y), retrograd.tensor(x), retrograd.tensor(y)
    r_params, t_params = list(rmodel.parameters()), list(tmodel.parameters())
    start = [p.numpy().copy() for p in r_params]
    for step in range(40):
        train(tmodel, t_opt, TF.cross_entropy, tX, ty, 1)
        train(rmodel, r_opt, F.cross_entropy, rX, ry, 1)
        for i, (rp, tp) in enumerate(zip(r_params, t_params, strict=True)):
            np.testing.assert_allclose(rp.numpy(), as_np(tp), rtol=1e-7, atol=1e-10,
                                       err_msg=f"step {step}, parameter {i}")
    assert all(not np.allclose(p.numpy(), p0) for p, p0 in zip(r_params, start, strict=True))


def test_sgd_param_groups_match_torch(rng):
    tmodel, rmodel = mlp_pair()
    x, y = data(rng)

    def groups(model):
        params = list(model.parameters())
        return [{"params": params[:2], "lr": 0.2},
                {"params": params[2:4], "momentum": 0.9, "nesterov": True},
                {"params": params[4:], "lr": 0.01, "weight_decay": 0.1, "momentum": 0.3,
                 "dampening": 0.2}]

    t_opt = torch.optim.SGD(groups(tmodel), lr=0.05)
    r_opt = retrograd.optim.SGD(groups(rmodel), lr=0.05)
    for rg, tg in zip(r_opt.param_groups, t_opt.param_groups, strict=True):
        for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"):
            assert rg[key] == tg[key], key
    train(tmodel, t_opt, TF.cross_entropy, torch.tensor(x), torch.tensor(y), 40)
    train(rmodel, r_opt, F.cross_entropy, retrograd.tensor(x), retrograd.tensor(y), 40)
    for (name, rp), tp in zip(rmodel.named_parameters(), tmodel.parameters(), strict=True):
        np.testing.assert_allclose(rp.numpy(), as_np(tp), rtol=1e-7, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("options", [dict(lr=0.05, momentum=0.9, dampening=0.1),
                                     dict(lr=0.05, momentum=0.9, nesterov=True,
                                          weight_decay=1e-3)], ids=["dampening", "nesterov"])
def test_sgd_state_dict_resume_reproduces_run(options, rng):
    tmodel, full = mlp_pair()
    x, y = data(rng)
    X, Y = retrograd.tensor(x), retrograd.tensor(y)
    r_opt = retrograd.optim.SGD(full.parameters(), **options)
    train(full, r_opt, F.cross_entropy, X, Y, 40)

    first = rg_mlp()
    first.load_state_dict(tmodel.state_dict())
    opt = retrograd.optim.SGD(first.parameters(), **options)
    train(first, opt, F.cross_entropy, X, Y, 20)
    model_state = {k: v.numpy().copy() for k, v in first.state_dict().items()}
    opt_state = opt.state_dict()
    assert sorted(opt_state["state"]) == list(range(6))
    train(first, opt, F.cross_entropy, X, Y, 5)  # the saved state must not follow the old run

    resumed = rg_mlp()
    resumed.load_state_dict(model_state)
    new_opt = retrograd.optim.SGD(resumed.parameters(), lr=1.0)
    new_opt.load_state_dict(copy.deepcopy(opt_state))
    assert new_opt.param_groups[0]["lr"] == options["lr"]
    train(resumed, new_opt, F.cross_entropy, X, Y, 20)
    for (name, a), b in zip(full.named_parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)

    t_opt = torch.optim.SGD(tmodel.parameters(), **options)
    train(tmodel, t_opt, TF.cross_entropy, torch.tensor(x), torch.tensor(y), 40)
    for a, b in zip(resumed.parameters(), tmodel.parameters(), strict=True):
        np.testing.assert_allclose(a.numpy(), as_np(b), rtol=1e-7, atol=1e-10)


def test_sgd_state_dict_momentum_buffers_match_torch(rng):
    tmodel, rmodel = mlp_pair()
    x, y = data(rng)
    t_opt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9)
    r_opt = retrograd.optim.SGD(rmodel.parameters(), lr=0.05, momentum=0.9)
    train(tmodel, t_opt, TF.cross_entropy, torch.tensor(x), torch.tensor(y), 5)
    train(rmodel, r_opt, F.cross_entropy, retrograd.tensor(x), retrograd.tensor(y), 5)
    r_sd, t_sd = r_opt.state_dict(), t_opt.state_dict()
    assert sorted(r_sd["state"]) == sorted(t_sd["state"])
    assert [g["params"] for g in r_sd["param_groups"]] == \
        [g["params"] for g in t_sd["param_groups"]]
    for i, t_state in t_sd["state"].items():
        np.testing.assert_allclose(np.asarray(r_sd["state"][i]["momentum_buffer"]),
                                   as_np(t_state["momentum_buffer"]), rtol=1e-8, atol=1e-12)
