"""The flat multi-tensor path (optim/flat.py) and the foreach= / fused= switches.

Oracles: torch.optim 2.13.0 (its foreach path where it has one, and its behaviour when a user
rebinds a parameter, replaces state, loads a state dict or leaves a gradient None), and
retrograd's own per-tensor path (foreach=False), which runs the same operations tensor by tensor
and must give the same bits as the flat path (the flat path's chunking, gathering and bucketing
must not change a single rounding).
"""

import numpy as np
import pytest
import torch

import retrograd
from oracle import as_np
from retrograd import nn
from test_optim import TOL32, TOL64, Run, assert_params_match, data, mlp_pair, optimizers

# (optimizer, options): each runs with foreach=False, the default, foreach=True and fused=True.
VARIANTS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.5, weight_decay=0.01)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
]
VARIANT_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(VARIANTS)]
SWITCHES = [dict(foreach=False), {}, dict(foreach=True), dict(fused=True)]


def _has_fused(name):
    return name in ("SGD", "Adam", "AdamW", "Adagrad")


def _run(name, options, switches, dtype=np.float64, steps=12, init=None, drop=lambda s: ()):
    tmodel, rmodel = mlp_pair(dtype)
    if init is not None:
        rmodel.load_state_dict(init)
    x, y = data(dtype)
    opt = getattr(retrograd.optim, name)(rmodel.parameters(), **options, **switches)
    run = Run("retrograd", rmodel, opt, x, y)
    for s in range(steps):
        run.step(drop_grads=drop(s))
    return run, tmodel


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, options", VARIANTS, ids=VARIANT_IDS)
def test_every_switch_gives_the_per_tensor_bits(name, options, dtype):
    """foreach=False, the default, foreach=True and fused=True: identical parameters and state,
    also when some gradients are None at some steps (parameters whose step counts differ)."""
    def drop(s):
        return (0, 1) if s % 3 == 0 else (5,) if s % 4 == 1 else ()
    tmodel, _ = mlp_pair(dtype)
    init = tmodel.state_dict()
    ref, _ = _run(name, options, SWITCHES[0], dtype, init=init, drop=drop)
    for switches in SWITCHES[1:]:
        if switches.get("fused") and not _has_fused(name):
            continue
        run, _ = _run(name, options, switches, dtype, init=init, drop=drop)
        for i, (a, b) in enumerate(zip(ref.model.parameters(), run.model.parameters(),
                                       strict=True)):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{switches} param {i}")
            assert b.numpy().dtype == dtype
        sa, sb = ref.opt.state_dict()["state"], run.opt.state_dict()["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            assert sa[i].keys() == sb[i].keys()
            for key in sa[i]:
                np.testing.assert_array_equal(np.asarray(sa[i][key]), np.asarray(sb[i][key]),
                                              err_msg=f"{switches} {key} of parameter {i}")


@pytest.mark.parametrize("name, options", VARIANTS, ids=VARIANT_IDS)
def test_default_path_matches_torch_foreach(name, options):
    """The default (flat) path against torch's multi-tensor implementation, step by step."""
    tmodel, rmodel = mlp_pair()
    x, y = data()
    r_opt = getattr(retrograd.optim, name)(rmodel.parameters(), **options)
    t_opt = getattr(torch.optim, name)(tmodel.parameters(), **options, foreach=True)
    r_run, t_run = Run("retrograd", rmodel, r_opt, x, y), Run("torch", tmodel, t_opt, x, y)
    for step in range(15):
        r_run.step()
        t_run.step()
        assert_params_match(r_run, t_run, what=f"step {step}")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_groups_with_their_own_lr_and_weight_decay_match_torch(name):
    """Three groups (lr and weight decay differ, one group mixes float32 and float64
    parameters: two buckets) on the flat path, against torch."""
    def groups(model):
        p = list(model.parameters())
        return [{"params": p[:2], "lr": 0.02, "weight_decay": 0.1},
                {"params": p[2:4]},
                {"params": p[4:], "lr": 3e-3, "weight_decay": 0.0}]
    tmodel, rmodel = mlp_pair()
    with torch.no_grad():  # the last layer's weight in float32 on both sides
        tmodel[4].weight.data = tmodel[4].weight.data.float()
    rmodel[4].weight.data = rmodel[4].weight.numpy().astype(np.float32)
    x, y = data()
    r_opt, t_opt = optimizers(name, groups(rmodel), groups(tmodel), {"lr": 0.01})

    def loss(model, lib):
        out = model[:4](lib.tensor(x))
        w = model[4].weight
        logits = out @ (w.double() if lib is torch else w.to(np.float64)).T + model[4].bias
        f = torch.nn.functional if lib is torch else retrograd.nn.functional
        return f.cross_entropy(logits, lib.tensor(y))

    for step in range(15):
        for model, opt, lib in ((rmodel, r_opt, retrograd), (tmodel, t_opt, torch)):
            opt.zero_grad()
            loss(model, lib).backward()
            opt.step()
        for i, (rp, tp) in enumerate(zip(rmodel.parameters(), tmodel.parameters(),
                                         strict=True)):
            # float32 rounding in the last layer reaches the float64 ones through the forward
            tol = TOL32
            assert rp.numpy().dtype == as_np(tp).dtype
            np.testing.assert_allclose(rp.numpy(), as_np(tp), err_msg=f"step {step} param {i}",
                                       **tol)


def _to_torch_state(sd):
    """retrograd's optimizer state dict in torch's format (tensors; the step as a float
    tensor, as torch keeps it)."""
    state = {i: {k: (torch.tensor(float(v)) if k == "step" else torch.from_numpy(np.array(v)))
                 for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name, options", VARIANTS, ids=VARIANT_IDS)
def test_state_dict_crosses_to_torch_and_back(name, options):
    """Train 6 steps in retrograd, continue 6 in torch from retrograd's state dict and 6 more
    in retrograd from torch's: the same parameters as torch running all 18 steps."""
    tmodel, rmodel = mlp_pair()
    t_ref, _ = mlp_pair()
    t_ref.load_state_dict(tmodel.state_dict())
    x, y = data()
    r_opt = getattr(retrograd.optim, name)(rmodel.parameters(), **options)
    t_opt = getattr(torch.optim, name)(tmodel.parameters(), **options)
    ref_opt = getattr(torch.optim, name)(t_ref.parameters(), **options)
    r_run, t_run = Run("retrograd", rmodel, r_opt, x, y), Run("torch", tmodel, t_opt, x, y)
    ref = Run("torch", t_ref, ref_opt, x, y)
    ref.step(18)

    r_run.step(6)
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in rmodel.state_dict().items()})
    sd = r_run.opt.state_dict()
    sd["param_groups"] = [{k: v for k, v in g.items() if k in ref_opt.param_groups[0]}
                          for g in sd["param_groups"]]
    t_opt.load_state_dict(_to_torch_state(sd))
    t_run.step(6)
    rmodel.load_state_dict(tmodel.state_dict())  # copies into the parameters' arrays
    r_opt.load_state_dict(t_opt.state_dict())  # torch's tensors, taken as they are
    r_run.step(6)
    assert_params_match(r_run, ref, what="after crossing twice")
    for p, t_p in zip(rmodel.parameters(), t_ref.parameters(), strict=True):
        r_state, t_state = r_opt.state[p], ref_opt.state[t_p]
        for key, value in t_state.items():
            if key == "step":
                assert r_state[key] == float(value) == 18 and type(r_state[key]) is int
            elif value is not None:
                assert isinstance(r_state[key], np.ndarray), key
                np.testing.assert_allclose(r_state[key], as_np(value), **TOL64, err_msg=key)


@pytest.mark.parametrize("name, options", VARIANTS[1:9:2], ids=VARIANT_IDS[1:9:2])
def test_load_state_dict_then_continue_is_uninterrupted(name, options):
    """A fresh optimizer (the per-tensor path) loads a flat optimizer's state dict mid-run and
    hands it back to a fresh flat one: bit for bit the uninterrupted run."""
    tmodel, _ = mlp_pair()
    init = tmodel.state_dict()
    full, _ = _run(name, options, {}, steps=30, init=init)
    half, _ = _run(name, options, {}, steps=10, init=init)
    params = list(half.model.parameters())
    for switches in (dict(foreach=False), {}):
        fresh = getattr(retrograd.optim, name)(params, lr=7.0, **switches)
        fresh.load_state_dict(half.opt.state_dict())
        half.opt = fresh
        half.step(10)
    for i, (a, b) in enumerate(zip(full.model.parameters(), params, strict=True)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"parameter {i}")


@pytest.mark.parametrize("name, options", VARIANTS[1::2], ids=VARIANT_IDS[1::2])
def test_rebinding_parameters_and_replacing_state_behave_as_in_torch(name, options):
    """The user rebinds a parameter (`p.data = ...`), loads the model's state dict, and
    replaces a state array, between steps: the flat layout must follow each change, as
    torch's per-parameter state does."""
    tmodel, rmodel = mlp_pair()
    x, y = data()
    r_opt = getattr(retrograd.optim, name)(rmodel.parameters(), **options)
    t_opt = getattr(torch.optim, name)(tmodel.parameters(), **options)
    r_run, t_run = Run("retrograd", rmodel, r_opt, x, y), Run("torch", tmodel, t_opt, x, y)
    r_p, t_p = list(rmodel.parameters()), list(tmodel.parameters())
    rng = np.random.default_rng(5)
    for step in range(12):
        r_run.step()
        t_run.step()
        assert_params_match(r_run, t_run, what=f"step {step}")
        if step == 2:  # rebind a weight to a new array (a copy in the other memory order)
            new = np.asfortranarray(rng.standard_normal(r_p[2].shape))
            r_p[2].data = new
            t_p[2].data = torch.from_numpy(new.copy())
        elif step == 5:  # the model's state dict, loaded in place
            sd = {k: v * 0.5 for k, v in tmodel.state_dict().items()}
            tmodel.load_state_dict(sd)
            rmodel.load_state_dict({k: v.numpy() for k, v in sd.items()})
        elif step == 8:  # replace one state array (the first one the parameter has)
            key = next(k for k, v in t_opt.state[t_p[0]].items()
                       if torch.is_tensor(v) and v.shape == t_p[0].shape)
            fill = rng.random(r_p[0].shape) * 0.01
            t_opt.state[t_p[0]][key] = torch.from_numpy(fill.copy())
            r_opt.state[r_p[0]][key] = fill.copy()
        elif step == 10:  # write into a state array in place (a view of the flat buffer)
            key = next(k for k, v in t_opt.state[t_p[4]].items()
                       if torch.is_tensor(v) and v.shape == t_p[4].shape)
            t_opt.state[t_p[4]][key].mul_(0.5)
            r_opt.state[r_p[4]][key] *= 0.5


def test_non_contiguous_and_mixed_parameters_step_like_torch():
    """A parameter that cannot be one slice of a buffer (a strided view) steps beside flat
    ones, as in torch."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 8))
    r_a = retrograd.tensor(base[:, ::2].copy(), requires_grad=True)
    r_b = retrograd.tensor(rng.standard_normal(5), requires_grad=True)
    r_a.data = base.copy()[:, ::2]  # strided: not contiguous either way
    t_a = torch.tensor(base[:, ::2].copy(), requires_grad=True)
    t_b = torch.tensor(r_b.numpy().copy(), requires_grad=True)
    r_opt = retrograd.optim.Adam([r_a, r_b], lr=0.1)
    t_opt = torch.optim.Adam([t_a, t_b], lr=0.1, foreach=True)
    for _ in range(5):
        for a, b, opt in ((r_a, r_b, r_opt), (t_a, t_b, t_opt)):
            opt.zero_grad()
            ((a ** 2).sum() + (b * a[:5, 0]).sum()).backward()
            opt.step()
        np.testing.assert_allclose(r_a.numpy(), as_np(t_a), **TOL64)
        np.testing.assert_allclose(r_b.numpy(), as_np(t_b), **TOL64)


@pytest.mark.parametrize("kwargs, error", [
    (dict(foreach=True, fused=True), RuntimeError),
    (dict(foreach=True, fused=True), ValueError),
    (dict(foreach="yes"), TypeError),
    (dict(fused=1), TypeError),
])
def test_switches_are_checked_like_torch(kwargs, error):
    """torch refuses foreach=True with fused=True (RuntimeError); retrograd's error is also a
    ValueError (its convention). Non-bool switches are TypeErrors."""
    model = nn.Linear(3, 2)
    if error is RuntimeError:
        with pytest.raises(RuntimeError, match="cannot be `True` together"):
            torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), **kwargs)
    with pytest.raises(error, match="fused|foreach"):
        retrograd.optim.Adam(model.parameters(), **kwargs)


def test_group_options_show_the_switches_like_torch():
    r_opt = retrograd.optim.Adam(nn.Linear(3, 2).parameters())
    t_opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    for key in ("foreach", "fused"):
        assert r_opt.param_groups[0][key] == t_opt.param_groups[0][key]


@pytest.mark.parametrize("order", ["C", "F"])
def test_gradients_accumulated_in_place_are_read_fresh_each_step(order):
    """zero_grad(set_to_none=False) keeps each .grad array and backward accumulates into it;
    a gradient in the other memory order than its parameter is copied when raveled, and that
    copy must not be reused at the next step. Oracle: torch with the same gradients."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((5, 4))
    r_w = retrograd.tensor(w0.copy(), requires_grad=True)
    r_w.data = np.asfortranarray(w0)  # parameter by columns
    t_w = torch.tensor(w0.copy(), requires_grad=True)
    r_opt = retrograd.optim.Adam([r_w], lr=0.1)
    t_opt = torch.optim.Adam([t_w], lr=0.1)
    g_array = np.zeros((5, 4), order=order)
    r_w.grad = retrograd.tensor(g_array)
    r_w.grad.data = g_array  # the very array, in the chosen order
    for step in range(6):
        g = rng.standard_normal((5, 4))
        r_opt.zero_grad(set_to_none=False)
        r_w.grad.numpy()[...] += g  # in place, as an accumulating backward writes
        t_w.grad = torch.tensor(g)
        r_opt.step()
        t_opt.step()
        assert r_w.grad.numpy() is g_array
        np.testing.assert_allclose(r_w.numpy(), as_np(t_w), err_msg=f"step {step}", **TOL64)
