"""Module behaviour: registration, traversal order, state_dict, modes, dtypes, initialization and
seeding, compared with torch.nn where torch has the same thing and with the formulas otherwise."""

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy import stats

import retrograd
from retrograd import nn
from retrograd.nn import init


def as_np(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


# ------------------------------------------------------------------ one model, both libraries


def build_net(M, param):
    """The same architecture on retrograd (M = retrograd.nn) or torch (M = torch.nn).

    `param(shape)` makes a Parameter of that library. The own parameter `scale` is assigned
    between submodules: torch still lists a module's own parameters before its children's.
    """

    class Block(M.Module):
        def __init__(self):
            super().__init__()
            self.inner = M.Linear(5, 5)
            self.act = M.Tanh()
            self.gain = param((5,))

        def forward(self, x):
            return self.act(self.inner(x)) * self.gain

    class Net(M.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = M.Linear(4, 5)
            self.scale = param((1,))
            self.block = Block()
            self.seq = M.Sequential(M.Linear(5, 5), M.ReLU(), M.Linear(5, 3, bias=False),
                                    M.Dropout(0.2))
            self.heads = M.ModuleList([M.Linear(3, 2), M.Linear(3, 1)])

        def forward(self, x):
            h = self.seq(self.block(self.fc1(x) * self.scale))
            return [head(h) for head in self.heads]

    return Net()


def rg_net():
    return build_net(nn, lambda shape: nn.Parameter(np.ones(shape)))


def torch_net():
    return build_net(torch.nn, lambda shape: torch.nn.Parameter(torch.ones(shape)))


def test_named_parameters_order_matches_torch():
    r_names = [n for n, _ in rg_net().named_parameters()]
    t_names = [n for n, _ in torch_net().named_parameters()]
    assert r_names == t_names
    assert r_names[0] == "scale"
    assert len(list(rg_net().parameters())) == len(t_names)


def test_parameter_shapes_match_torch():
    r_shapes = [p.shape for p in rg_net().parameters()]
    t_shapes = [tuple(p.shape) for p in torch_net().parameters()]
    assert r_shapes == t_shapes


def test_named_modules_and_children_match_torch():
    r, t = rg_net(), torch_net()
    assert [n for n, _ in r.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in r.named_children()] == [n for n, _ in t.named_children()]
    assert [type(m).__name__ for m in r.modules()] == [type(m).__name__ for m in t.modules()]


def test_state_dict_keys_match_torch():
    r, t = rg_net(), torch_net()
    assert list(r.state_dict()) == list(t.state_dict())
    assert "seq.2.bias" not in r.state_dict()


def test_state_dict_shares_memory_like_torch():
    r, t = nn.Linear(3, 2, dtype=np.float64), torch.nn.Linear(3, 2)
    r_sd, t_sd = r.state_dict(), t.state_dict()
    with retrograd.no_grad():
        r.weight.add_(1.0)
    with torch.no_grad():
        t.weight.add_(1.0)
    np.testing.assert_array_equal(r_sd["weight"].numpy(), r.weight.numpy())
    np.testing.assert_array_equal(as_np(t_sd["weight"]), as_np(t.weight))
    assert not r_sd["weight"].requires_grad and not t_sd["weight"].requires_grad


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_linear_weight_is_column_major_and_its_gradient_and_state_follow(optimizer):
    """Linear keeps W column-major (x @ W.T is then a non-transposed BLAS product); its
    gradient and the optimizer's state arrays take the same memory order, so every update
    pass is contiguous, and the values still match torch's step for step."""
    rng = np.random.default_rng(0)
    x_np, y_np = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    r = nn.Linear(5, 3, dtype=np.float64)
    t = torch.nn.Linear(5, 3).double()
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in r.state_dict().items()})
    r.load_state_dict(t.state_dict())  # loading copies into the existing column-major array
    assert r.weight._data.flags.f_contiguous and not r.weight._data.flags.c_contiguous
    kwargs = {"lr": 0.1, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.1}
    r_opt = getattr(retrograd.optim, optimizer)(r.parameters(), **kwargs)
    t_opt = getattr(torch.optim, optimizer)(t.parameters(), **kwargs)
    for _ in range(3):
        for model, opt, F, tensor in ((r, r_opt, nn.functional, retrograd.from_numpy),
                                      (t, t_opt, torch.nn.functional, torch.from_numpy)):
            opt.zero_grad()
            F.cross_entropy(model(tensor(x_np)), tensor(y_np)).backward()
            opt.step()
        assert r.weight.grad._data.flags.f_contiguous
        np.testing.assert_allclose(r.weight.grad.numpy(), as_np(t.weight.grad), rtol=1e-12)
        np.testing.assert_allclose(r.weight.numpy(), as_np(t.weight), rtol=1e-12)
    assert r.weight._data.flags.f_contiguous
    saved = r_opt.state_dict()  # as a checkpoint file holds it: row-major arrays
    for entry in saved["state"].values():
        entry.update({k: np.ascontiguousarray(v) for k, v in entry.items()
                      if isinstance(v, np.ndarray)})
    reloaded = getattr(retrograd.optim, optimizer)(r.parameters(), **kwargs)
    reloaded.load_state_dict(saved)  # loaded state takes W's memory order again
    for opt in (r_opt, reloaded):
        for name, value in opt.state[r.weight].items():
            if isinstance(value, np.ndarray) and value.ndim == 2:
                assert value.flags.f_contiguous, name
                np.testing.assert_allclose(value, as_np(t_opt.state[t.weight][name]),
                                           rtol=1e-12)


def _tied(M):
    class Tied(M.Module):
        def __init__(self):
            super().__init__()
            self.a = M.Linear(3, 3)
            self.b = M.Linear(3, 3)
            self.b.weight = self.a.weight

    return Tied()


def test_shared_parameter_listed_once_like_torch():
    r, t = _tied(nn), _tied(torch.nn)
    r_names = [n for n, _ in r.named_parameters()]
    assert r_names == [n for n, _ in t.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    params = list(r.parameters())
    assert len(params) == 3 and params[0] is r.a.weight is r.b.weight
    assert list(r.state_dict()) == list(t.state_dict())


def test_reassigned_parameter_keeps_its_place_like_torch():
    r, t = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    r.weight = nn.Parameter(np.zeros((2, 3)))
    t.weight = torch.nn.Parameter(torch.zeros(2, 3))
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(r.state_dict()) == list(t.state_dict()) == ["weight", "bias"]


def test_shared_parameter_gets_both_gradients():
    r = _tied(nn).double()
    x = retrograd.tensor(np.ones((2, 3)))
    (r.a(x) + r.b(x)).sum().backward()
    t = _tied(torch.nn)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in r.state_dict().items()})
    tx = torch.ones(2, 3)
    (t.a(tx) + t.b(tx)).sum().backward()
    np.testing.assert_allclose(r.a.weight.grad.numpy(), as_np(t.a.weight.grad), rtol=1e-12)


def test_shared_submodule_like_torch():
    """A module used twice: parameters once, but state_dict keys under both names (as torch)."""
    r_lin, t_lin = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    r, t = nn.Sequential(r_lin, nn.ReLU(), r_lin), torch.nn.Sequential(t_lin, torch.nn.ReLU(),
                                                                       t_lin)
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(r.state_dict()) == list(t.state_dict())


def test_sequential_slice_keeps_keys_like_torch():
    r = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4), nn.Linear(4, 1))
    t = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 4),
                            torch.nn.Linear(4, 1))
    assert len(r) == len(t) == 4
    assert isinstance(r[1:], nn.Sequential)
    assert r[2] is list(r)[2]
    assert list(r[1:].state_dict()) == list(t[1:].state_dict())


def test_sequential_ordered_dict_keys_like_torch():
    r = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.ReLU(), out=nn.Linear(3, 1)))
    t = torch.nn.Sequential(OrderedDict(fc=torch.nn.Linear(2, 3), act=torch.nn.ReLU(),
                                        out=torch.nn.Linear(3, 1)))
    assert list(r.state_dict()) == list(t.state_dict()) == \
        ["fc.weight", "fc.bias", "out.weight", "out.bias"]


def test_register_buffer_state_dict_like_torch():
    def make(M, tensor):
        m = M.Linear(2, 2)
        m.register_buffer("running", tensor(np.zeros(2)))
        m.register_buffer("scratch", tensor(np.ones(2)), persistent=False)
        return m

    r = make(nn, retrograd.tensor)
    t = make(torch.nn, torch.tensor)
    assert list(r.state_dict()) == list(t.state_dict()) == ["weight", "bias", "running"]
    assert [n for n, _ in r.named_buffers()] == [n for n, _ in t.named_buffers()]


# ------------------------------------------------------------------ load_state_dict


def _snapshot(model):
    return {n: p.numpy().copy() for n, p in model.named_parameters()}


def _assert_unchanged(model, snapshot):
    now = _snapshot(model)
    assert list(now) == list(snapshot)
    for name, value in snapshot.items():
        np.testing.assert_array_equal(now[name], value, err_msg=name)


def _shifted_state(model):
    return OrderedDict((k, v.numpy() + 1.0) for k, v in model.state_dict().items())


def test_load_state_dict_from_torch_copies_values():
    r, t = rg_net().double(), torch_net()
    result = r.load_state_dict(t.state_dict())
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for key, value in t.state_dict().items():
        np.testing.assert_array_equal(r.state_dict()[key].numpy(), as_np(value))


def test_load_state_dict_keeps_parameter_objects():
    r = rg_net()
    before = list(r.parameters())
    r.load_state_dict(_shifted_state(r))
    assert all(a is b for a, b in zip(before, r.parameters(), strict=True))


def test_load_state_dict_missing_key_raises_and_changes_nothing():
    r = rg_net()
    snapshot = _snapshot(r)
    state = _shifted_state(r)
    del state["block.inner.bias"]
    with pytest.raises((RuntimeError, ValueError, KeyError), match="block.inner.bias"):
        r.load_state_dict(state)
    _assert_unchanged(r, snapshot)


def test_load_state_dict_unexpected_key_raises_and_changes_nothing():
    r = rg_net()
    snapshot = _snapshot(r)
    state = _shifted_state(r)
    state["seq.2.bias"] = np.zeros(3)
    with pytest.raises((RuntimeError, ValueError, KeyError), match="seq.2.bias"):
        r.load_state_dict(state)
    _assert_unchanged(r, snapshot)


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_wrong_shape_raises_and_changes_nothing(strict):
    r = rg_net()
    snapshot = _snapshot(r)
    state = _shifted_state(r)
    state.move_to_end("fc1.weight")  # the bad entry comes last: nothing may be copied first
    state["fc1.weight"] = np.zeros((4, 5))
    with pytest.raises((RuntimeError, ValueError), match="fc1.weight"):
        r.load_state_dict(state, strict=strict)
    _assert_unchanged(r, snapshot)
    t = torch_net()
    with pytest.raises(RuntimeError, match="fc1.weight"):
        t.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=strict)


def test_load_state_dict_non_strict_reports_keys_like_torch():
    r, t = rg_net(), torch_net()
    state = _shifted_state(r)
    del state["scale"], state["heads.1.weight"]
    state["extra.weight"] = np.zeros(2)
    r_result = r.load_state_dict(state, strict=False)
    t_result = t.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    assert sorted(r_result.missing_keys) == sorted(t_result.missing_keys)
    assert sorted(r_result.unexpected_keys) == sorted(t_result.unexpected_keys)
    np.testing.assert_array_equal(r.fc1.weight.numpy(), state["fc1.weight"])
    np.testing.assert_array_equal(r.scale.numpy(), np.ones(1))  # missing: left alone


@pytest.mark.parametrize("source", ["numpy", "torch", "retrograd"])
def test_load_state_dict_casts_into_existing_dtype(source, rng):
    r = nn.Sequential(nn.Linear(3, 4, dtype=np.float32), nn.Linear(4, 2, dtype=np.float32))
    params = list(r.parameters())
    arrays = {k: rng.standard_normal(v.shape) for k, v in r.state_dict().items()}
    wrap = {"numpy": lambda a: a, "torch": torch.tensor, "retrograd": retrograd.tensor}[source]
    r.load_state_dict({k: wrap(a) for k, a in arrays.items()})
    for key, value in r.state_dict().items():
        assert value.dtype == np.float32, key
        np.testing.assert_array_equal(value.numpy(), arrays[key].astype(np.float32))
    assert all(a is b for a, b in zip(params, r.parameters(), strict=True))


def test_load_state_dict_does_not_alias_source():
    r = nn.Linear(2, 2, dtype=np.float64)
    state = {"weight": np.ones((2, 2)), "bias": np.zeros(2)}
    r.load_state_dict(state)
    state["weight"][0, 0] = 5.0
    assert r.weight.numpy()[0, 0] == 1.0


# ------------------------------------------------------------------ modes, grads, dtypes


def _flags(model):
    return [(n, m.training) for n, m in model.named_modules()]


def test_train_eval_propagate_like_torch():
    r, t = rg_net(), torch_net()
    assert _flags(r) == _flags(t) and all(f for _, f in _flags(r))
    assert r.eval() is r
    t.eval()
    assert _flags(r) == _flags(t) and not any(f for _, f in _flags(r))
    r.seq.train()
    t.seq.train()
    assert _flags(r) == _flags(t)
    assert r.train() is r
    assert all(f for _, f in _flags(r))


def test_eval_turns_off_dropout_inside_model(rng):
    r = rg_net().double()
    x = retrograd.tensor(rng.standard_normal((50, 4)))
    r.eval()
    first = [o.numpy().copy() for o in r(x)]
    second = [o.numpy() for o in r(x)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    t = torch_net()
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in r.state_dict().items()})
    t.eval()
    for a, b in zip(first, t(torch.tensor(x.numpy())), strict=True):
        np.testing.assert_allclose(a, as_np(b), rtol=1e-10, atol=1e-12)


def _backward_once(model, rng):
    x = retrograd.tensor(rng.standard_normal((3, 4)).astype(model.fc1.weight.dtype))
    sum(o.sum() for o in model(x)).backward()


def test_zero_grad_sets_to_none_by_default_like_torch(rng):
    r = rg_net()
    _backward_once(r, rng)
    assert all(p.grad is not None for p in r.parameters())
    r.zero_grad()
    assert all(p.grad is None for p in r.parameters())
    t = torch_net()
    sum(o.sum() for o in t(torch.ones(3, 4))).backward()
    t.zero_grad()
    assert all(p.grad is None for p in t.parameters())


def test_zero_grad_keep_tensors(rng):
    r = rg_net()
    _backward_once(r, rng)
    grads = [p.grad for p in r.parameters()]
    r.zero_grad(set_to_none=False)
    for p, g in zip(r.parameters(), grads, strict=True):
        assert p.grad is g
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape))


def test_zero_grad_then_backward_equals_single_backward(rng):
    r = rg_net().eval()  # no dropout: every forward is the same function
    x = retrograd.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    sum(o.sum() for o in r(x)).backward()
    once = [p.grad.numpy().copy() for p in r.parameters()]
    sum(o.sum() for o in r(x)).backward()
    twice = [p.grad.numpy().copy() for p in r.parameters()]
    for a, b in zip(once, twice, strict=True):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-6)
    r.zero_grad(set_to_none=False)
    sum(o.sum() for o in r(x)).backward()
    for a, p in zip(once, r.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), a)


@pytest.mark.parametrize("method, dtype", [("double", np.float64), ("float", np.float32),
                                           ("to64", np.float64), ("to32", np.float32)])
def test_dtype_conversion_in_place_like_torch(method, dtype, rng):
    start = np.float32 if dtype == np.float64 else np.float64
    r = nn.Sequential(nn.Linear(3, 4, dtype=start), nn.Tanh(), nn.Linear(4, 2, dtype=start))
    x = retrograd.tensor(rng.standard_normal((2, 3)).astype(start))
    r(x).sum().backward()
    params = list(r.parameters())
    values = [p.numpy().copy() for p in params]
    convert = {"double": lambda m: m.double(), "float": lambda m: m.float(),
               "to64": lambda m: m.to(np.float64), "to32": lambda m: m.to(retrograd.float32)}
    assert convert[method](r) is r
    for p, v in zip(r.parameters(), values, strict=True):
        assert p.dtype == dtype and p.grad.dtype == dtype
        np.testing.assert_array_equal(p.numpy(), v.astype(dtype))
    assert all(a is b for a, b in zip(params, r.parameters(), strict=True))
    out = r(retrograd.tensor(x.numpy().astype(dtype)))
    assert out.dtype == dtype

    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    t_params = list(t.parameters())
    {"double": t.double, "float": t.float, "to64": lambda: t.to(torch.float64),
     "to32": lambda: t.to(torch.float32)}[method]()
    assert all(a is b for a, b in zip(t_params, t.parameters(), strict=True))


def test_requires_grad_toggle():
    r = nn.Linear(2, 2)
    assert all(p.requires_grad for p in r.parameters())
    r.requires_grad_(False)
    assert not any(p.requires_grad for p in r.parameters())


# ------------------------------------------------------------------ Linear and init


def test_dense_is_linear():
    assert nn.Dense is nn.Linear
    d = nn.Dense(3, 2)
    assert list(d.state_dict()) == list(torch.nn.Linear(3, 2).state_dict())
    assert d.weight.shape == (2, 3) and d.bias.shape == (2,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_default_dtype_and_no_bias(dtype):
    assert nn.Linear(2, 3, dtype=dtype).weight.dtype == dtype
    assert nn.Linear(2, 3).weight.dtype == retrograd.get_default_dtype()
    layer = nn.Linear(2, 3, bias=False)
    assert layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == list(torch.nn.Linear(2, 3, bias=False).state_dict())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_init_statistics(dtype):
    fan_in, fan_out = 400, 300
    layer = nn.Linear(fan_in, fan_out, dtype=dtype)
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.numpy().astype(np.float64).ravel()
    b = layer.bias.numpy().astype(np.float64)
    assert layer.weight.dtype == dtype and layer.bias.dtype == dtype
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # the bound is the real support, not a loose cap
    n = w.size
    np.testing.assert_allclose(w.var(), 1 / (3 * fan_in), rtol=0.02)
    assert abs(w.mean()) < 5 * bound / math.sqrt(3 * n)
    assert stats.kstest(w, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    assert stats.kstest(b, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    np.testing.assert_allclose(b.var(), 1 / (3 * fan_in), rtol=0.3)


def test_linear_init_matches_torch_distribution():
    """Same law as torch's default init: compare two samples with a two-sample KS test."""
    mine = nn.Linear(200, 100, dtype=np.float64).weight.numpy().ravel()
    theirs = as_np(torch.nn.Linear(200, 100).weight).ravel()
    assert stats.ks_2samp(mine, theirs).pvalue > 1e-3


SHAPE = (200, 300)  # fan_out = 200, fan_in = 300
FAN_IN, FAN_OUT = 300, 200


def _param(dtype=np.float64):
    return nn.Parameter(np.full(SHAPE, 7.0, dtype=dtype))


UNIFORM_INITS = [
    ("uniform", lambda t: init.uniform_(t, -2.0, 3.0), -2.0, 3.0),
    ("uniform_default", lambda t: init.uniform_(t), 0.0, 1.0),
    ("xavier_uniform", lambda t: init.xavier_uniform_(t),
     -math.sqrt(6 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform_gain", lambda t: init.xavier_uniform_(t, gain=2.0),
     -2 * math.sqrt(6 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("kaiming_uniform_default", lambda t: init.kaiming_uniform_(t),
     -math.sqrt(6 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ("kaiming_uniform_relu_fan_out",
     lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
     -math.sqrt(6 / FAN_OUT), math.sqrt(6 / FAN_OUT)),
    ("kaiming_uniform_sqrt5", lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)),
     -1 / math.sqrt(FAN_IN), 1 / math.sqrt(FAN_IN)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, fill, low, high", UNIFORM_INITS, ids=[u[0] for u in UNIFORM_INITS])
def test_uniform_inits(name, fill, low, high, dtype):
    t = _param(dtype)
    assert fill(t) is t
    assert t.dtype == dtype
    x = t.numpy().astype(np.float64).ravel()
    assert x.min() >= low and x.max() <= high
    width = high - low
    assert x.min() < low + 0.01 * width and x.max() > high - 0.01 * width
    np.testing.assert_allclose(x.mean(), (low + high) / 2, atol=5 * width / math.sqrt(12 * x.size))
    np.testing.assert_allclose(x.var(), width ** 2 / 12, rtol=0.02)
    assert stats.kstest(x, "uniform", args=(low, width)).pvalue > 1e-3


NORMAL_INITS = [
    ("normal_default", lambda t: init.normal_(t), 0.0, 1.0),
    ("normal", lambda t: init.normal_(t, mean=1.5, std=0.3), 1.5, 0.3),
    ("xavier_normal", lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_normal_gain", lambda t: init.xavier_normal_(t, gain=1.5), 0.0,
     1.5 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("kaiming_normal_default", lambda t: init.kaiming_normal_(t), 0.0, math.sqrt(2 / FAN_IN)),
    ("kaiming_normal_relu_fan_out",
     lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), 0.0,
     math.sqrt(2 / FAN_OUT)),
    ("kaiming_normal_leaky", lambda t: init.kaiming_normal_(t, a=0.2), 0.0,
     math.sqrt(2 / (1 + 0.04)) / math.sqrt(FAN_IN)),
    ("kaiming_normal_tanh", lambda t: init.kaiming_normal_(t, nonlinearity="tanh"), 0.0,
     (5 / 3) / math.sqrt(FAN_IN)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, fill, mean, std", NORMAL_INITS, ids=[n[0] for n in NORMAL_INITS])
def test_normal_inits(name, fill, mean, std, dtype):
    t = _param(dtype)
    assert fill(t) is t
    assert t.dtype == dtype
    x = t.numpy().astype(np.float64).ravel()
    np.testing.assert_allclose(x.mean(), mean, atol=5 * std / math.sqrt(x.size))
    np.testing.assert_allclose(x.std(), std, rtol=0.02)
    assert stats.kstest(x, "norm", args=(mean, std)).pvalue > 1e-3


def test_constant_inits():
    t = _param()
    assert init.zeros_(t) is t
    np.testing.assert_array_equal(t.numpy(), np.zeros(SHAPE))
    init.ones_(t)
    np.testing.assert_array_equal(t.numpy(), np.ones(SHAPE))
    init.constant_(t, -2.5)
    np.testing.assert_array_equal(t.numpy(), np.full(SHAPE, -2.5))


def test_init_fan_needs_two_dims_like_torch():
    with pytest.raises(ValueError):
        torch.nn.init.xavier_uniform_(torch.empty(5))
    with pytest.raises(ValueError):
        init.xavier_uniform_(nn.Parameter(np.empty(5)))


def test_init_fans_of_higher_dim_tensor():
    """fan_in = shape[1] * receptive field, as torch: a (8, 4, 3, 3) kernel has fan_in 36."""
    t = nn.Parameter(np.zeros((8, 4, 3, 3)))
    init.kaiming_uniform_(t, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 36)
    assert np.abs(t.numpy()).max() <= bound and np.abs(t.numpy()).max() > 0.95 * bound


GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
         ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
         ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
         ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 1), ("selu", None)]


@pytest.mark.parametrize("nonlinearity, param", GAINS, ids=[f"{n}-{p}" for n, p in GAINS])
def test_calculate_gain_matches_torch(nonlinearity, param):
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_unknown_raises_like_torch():
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain("swish")
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


# ------------------------------------------------------------------ seeding


def _draw_everything():
    layer = nn.Linear(6, 5, dtype=np.float32)
    mask = nn.functional.dropout(retrograd.ones(20, 10, dtype=np.float64), p=0.5).numpy()
    return [layer.weight.numpy().copy(), layer.bias.numpy().copy(), mask.copy(),
            retrograd.randn(4).numpy().copy()]


def test_manual_seed_reproduces_weights_and_dropout_masks_bit_for_bit():
    retrograd.manual_seed(123)
    first = _draw_everything()
    retrograd.manual_seed(123)
    second = _draw_everything()
    for a, b in zip(first, second, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    retrograd.manual_seed(124)
    other = _draw_everything()
    for a, b in zip(first, other, strict=True):
        assert not np.array_equal(a, b)
    assert retrograd.initial_seed() == 124


def test_dropout_masks_differ_between_calls_but_repeat_after_reseed():
    layer = nn.Dropout(0.5)
    x = retrograd.ones(30, 30, dtype=np.float64)
    retrograd.manual_seed(9)
    m1, m2 = layer(x).numpy().copy(), layer(x).numpy().copy()
    assert not np.array_equal(m1, m2)
    retrograd.manual_seed(9)
    np.testing.assert_array_equal(layer(x).numpy(), m1)
    np.testing.assert_array_equal(layer(x).numpy(), m2)


def test_rng_state_roundtrip():
    state = retrograd.get_rng_state()
    a = _draw_everything()
    retrograd.set_rng_state(state)
    b = _draw_everything()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
