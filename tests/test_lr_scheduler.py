"""Learning-rate schedules and the lr range test.

retrograd.optim.lr_scheduler against torch.optim.lr_scheduler 2.13.0 (the oracle): the same
optimizer groups and options on both libraries, stepped once per epoch after optimizer.step(),
must give the same lr sequence exactly (==: both follow torch's recursive formulas), the same
get_last_lr(), the same sequence after a state_dict()/load_state_dict() round trip mid-run, and
reject the same bad arguments. retrograd.optim.find_lr is checked against formulas (the
geometric lr schedule, exponential smoothing, the divergence rule, the steepest-slope
suggestion) and against a replay of its training run in torch.
"""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch.optim import lr_scheduler as TS

import retrograd
import retrograd.nn.functional as F
from retrograd import nn
from retrograd.optim import find_lr
from retrograd.optim import lr_scheduler as RS

LIBS = {"torch": (torch.optim, TS), "retrograd": (retrograd.optim, RS)}


def make_optimizer(lib, lrs=(0.1,), momentum=0.0):
    """SGD with one parameter group per initial lr."""
    if lib == "torch":
        params = [torch.zeros(2, requires_grad=True) for _ in lrs]
    else:
        params = [nn.Parameter(retrograd.tensor(np.zeros(2))) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)]
    return LIBS[lib][0].SGD(groups, lr=lrs[0], momentum=momentum)


def group_lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def run_schedule(opt, sched, epochs, metrics=None):
    """The groups' lrs and get_last_lr() after construction and after every epoch."""
    lrs, last = [group_lrs(opt)], [list(sched.get_last_lr())]
    for epoch in range(epochs):
        opt.step()  # no gradients: only keeps torch's call-order check quiet
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[epoch])
        lrs.append(group_lrs(opt))
        last.append(list(sched.get_last_lr()))
    return lrs, last


def both_schedules(name, options, lrs=(0.1,), epochs=35, metrics=None):
    """(torch's, retrograd's) sequences for the same scheduler and options."""
    out = []
    for lib in ("torch", "retrograd"):
        opt = make_optimizer(lib, lrs)
        opts = options(len(lrs)) if callable(options) else options
        sched = getattr(LIBS[lib][1], name)(opt, **opts)
        out.append(run_schedule(opt, sched, epochs, metrics))
    return out


def assert_same_sequence(torch_run, rg_run):
    (t_lrs, t_last), (r_lrs, r_last) = torch_run, rg_run
    assert all(isinstance(v, float) for row in r_lrs for v in row)
    for epoch, (t, r) in enumerate(zip(t_lrs, r_lrs, strict=True)):
        assert r == t, f"group lrs after epoch {epoch}: retrograd {r}, torch {t}"
    for epoch, (t, r) in enumerate(zip(t_last, r_last, strict=True)):
        assert r == t, f"get_last_lr() after epoch {epoch}: retrograd {r}, torch {t}"


GROUP_LRS = {"one_group": (0.1,), "two_groups": (0.1, 0.03)}

EPOCH_CASES = [
    ("StepLR", "step3_gamma0.1", dict(step_size=3, gamma=0.1), 35),
    ("StepLR", "step1_gamma0.5", dict(step_size=1, gamma=0.5), 35),
    ("StepLR", "step7_gamma0.3", dict(step_size=7, gamma=0.3), 40),
    ("StepLR", "step10_default_gamma", dict(step_size=10), 45),
    ("ExponentialLR", "gamma0.9", dict(gamma=0.9), 40),
    ("ExponentialLR", "gamma0.5", dict(gamma=0.5), 35),
    ("ExponentialLR", "gamma0.99", dict(gamma=0.99), 35),
    ("CosineAnnealingLR", "T7", dict(T_max=7), 3 * 7 + 2),
    ("CosineAnnealingLR", "T7_eta0.01", dict(T_max=7, eta_min=0.01), 3 * 7 + 2),
    ("CosineAnnealingLR", "T10", dict(T_max=10), 3 * 10 + 2),
    ("CosineAnnealingLR", "T10_eta0.01", dict(T_max=10, eta_min=0.01), 3 * 10 + 2),
    ("CosineAnnealingLR", "T10_eta0.01_long", dict(T_max=10, eta_min=0.01), 65),
    ("LambdaLR", "one_lambda", dict(lr_lambda=lambda e: 0.95 ** e), 35),
    ("LambdaLR", "warmup_lambda", dict(lr_lambda=lambda e: min(1.0, (e + 1) / 5)), 35),
    ("LambdaLR", "lambda_per_group",
     lambda n: dict(lr_lambda=[lambda e: 1 / (1 + e), lambda e: 0.5 ** (e // 4)][:n]), 35),
]


@pytest.mark.parametrize("groups", list(GROUP_LRS))
@pytest.mark.parametrize("name,case,options,epochs", EPOCH_CASES,
                         ids=[f"{n}-{c}" for n, c, _, _ in EPOCH_CASES])
def test_epoch_schedules_match_torch_exactly(name, case, options, epochs, groups):
    if case == "lambda_per_group" and groups == "one_group":
        options = dict(lr_lambda=[lambda e: 1 / (1 + e)])  # a list of one lambda
    t_run, r_run = both_schedules(name, options, GROUP_LRS[groups], epochs)
    assert_same_sequence(t_run, r_run)
    if groups == "two_groups":  # the groups really follow their own schedules
        assert t_run[0][-1][0] != t_run[0][-1][1]


def test_cosine_schedule_follows_closed_form_formula():
    """Independent of torch: eta_min + (lr0 - eta_min)(1 + cos(pi t / T)) / 2, past T_max."""
    _, (r_lrs, _) = both_schedules("CosineAnnealingLR", dict(T_max=10, eta_min=0.01), epochs=30)
    closed = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(31)]
    np.testing.assert_allclose([row[0] for row in r_lrs], closed, rtol=1e-12, atol=1e-15)


def _plateau_metrics():
    """A loss curve with descents, plateaus, sub-threshold improvements and bumps."""
    values = [1.0, 0.8, 0.7, 0.65, 0.65, 0.66, 0.64999, 0.65, 0.7, 0.66,
              0.6, 0.59999, 0.59995, 0.6, 0.61, 0.62, 0.55, 0.55, 0.549, 0.56,
              0.5, 0.45, 0.449, 0.4499, 0.45, 0.46, 0.47, 0.44, 0.44, 0.44,
              0.3, 0.31, 0.32, 0.33, 0.29, 0.2899, 0.29, 0.3, 0.31, 0.32,
              0.28, 0.28, 0.28, 0.28, 0.28, 0.281, 0.28, 0.27999, 0.28, 0.282,
              0.28, 0.283, 0.28]
    return values


PLATEAU_CASES = [
    ("min_default", dict(), "loss"),
    ("min_patience2", dict(patience=2), "loss"),
    ("min_patience0_factor0.5", dict(patience=0, factor=0.5), "loss"),
    ("min_cooldown", dict(patience=1, cooldown=2, factor=0.5), "loss"),
    ("min_abs", dict(patience=1, threshold_mode="abs", threshold=0.01), "loss"),
    ("min_rel_big_threshold", dict(patience=1, threshold=0.05), "loss"),
    ("min_min_lr", dict(patience=0, factor=0.5, min_lr=0.01), "loss"),
    ("min_min_lr_list", dict(patience=0, factor=0.5, min_lr=[0.02, 0.001]), "loss"),
    ("min_eps", dict(patience=0, factor=0.9, eps=5e-3), "loss"),
    ("max_rel", dict(mode="max", patience=2, factor=0.5), "accuracy"),
    ("max_abs_cooldown", dict(mode="max", threshold_mode="abs", threshold=0.02, patience=0,
                              cooldown=1, factor=0.7), "accuracy"),
    ("max_on_negated_loss", dict(mode="max", patience=1, factor=0.2), "negated"),
]


def _metric_sequence(kind):
    loss = _plateau_metrics()
    return {"loss": loss, "accuracy": [1 - v / 2 for v in loss],
            "negated": [-v for v in loss]}[kind]


@pytest.mark.parametrize("groups", list(GROUP_LRS))
@pytest.mark.parametrize("case,options,kind", PLATEAU_CASES, ids=[c for c, _, _ in PLATEAU_CASES])
def test_reduce_lr_on_plateau_matches_torch_exactly(case, options, kind, groups):
    lrs = GROUP_LRS[groups]
    if isinstance(options.get("min_lr"), list):
        options = dict(options, min_lr=options["min_lr"][:len(lrs)])
    metrics = _metric_sequence(kind)
    t_run, r_run = both_schedules("ReduceLROnPlateau", options, lrs, len(metrics), metrics)
    assert_same_sequence(t_run, r_run)
    assert t_run[0][-1] != t_run[0][0]  # the case really reduces the lr
    # numpy and 0-d metrics are accepted like floats
    r_opt = make_optimizer("retrograd", lrs)
    r_sched = RS.ReduceLROnPlateau(r_opt, **options)
    wrapped = [np.float64(m) if i % 2 else retrograd.tensor(m) for i, m in enumerate(metrics)]
    assert run_schedule(r_opt, r_sched, len(metrics), wrapped) == r_run


def test_reduce_lr_on_plateau_counters_match_torch_every_epoch():
    metrics = _metric_sequence("loss")
    opts = {lib: make_optimizer(lib) for lib in LIBS}
    scheds = {lib: LIBS[lib][1].ReduceLROnPlateau(opts[lib], patience=2, cooldown=1)
              for lib in LIBS}
    for epoch, metric in enumerate(metrics):
        for lib in LIBS:
            opts[lib].step()
            scheds[lib].step(metric)
        for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            assert getattr(scheds["retrograd"], key) == getattr(scheds["torch"], key), \
                f"{key} after epoch {epoch}"


# ---------------------------------------------------------------------------- state_dict

RESUME_CASES = [
    ("StepLR", dict(step_size=4, gamma=0.5), None),
    ("ExponentialLR", dict(gamma=0.9), None),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01), None),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e), None),
    ("ReduceLROnPlateau", dict(patience=1, cooldown=2, factor=0.5), "loss"),
]


@pytest.mark.parametrize("split", [5, 12, 20])
@pytest.mark.parametrize("name,options,kind", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_state_dict_round_trip_continues_torch_sequence(name, options, kind, split):
    lrs, epochs = (0.1, 0.03), 40
    metrics = _metric_sequence(kind) if kind else None
    t_run, _ = both_schedules(name, options, lrs, epochs, metrics)

    r_opt = make_optimizer("retrograd", lrs, momentum=0.9)
    r_sched = getattr(RS, name)(r_opt, **options)
    head_lrs, head_last = run_schedule(r_opt, r_sched, split, metrics)
    saved_sched = copy.deepcopy(r_sched.state_dict())
    saved_opt = copy.deepcopy(r_opt.state_dict())
    assert "optimizer" not in saved_sched

    # a new process: fresh optimizer and scheduler, then both states loaded
    new_opt = make_optimizer("retrograd", lrs, momentum=0.9)
    new_sched = getattr(RS, name)(new_opt, **options)
    new_opt.load_state_dict(saved_opt)
    new_sched.load_state_dict(saved_sched)
    assert new_sched.optimizer is new_opt
    assert new_sched.get_last_lr() == head_last[-1]
    rest = metrics[split:] if metrics else None
    tail_lrs, tail_last = run_schedule(new_opt, new_sched, epochs - split, rest)
    assert_same_sequence(t_run, (head_lrs + tail_lrs[1:], head_last + tail_last[1:]))


@pytest.mark.parametrize("name,options", [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e)),
], ids=["StepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingLR-eta", "LambdaLR"])
def test_resuming_with_last_epoch_matches_torch(name, options):
    """Resuming the documented way: the optimizer's groups carry 'initial_lr' (and the lr
    reached so far), the scheduler is built with last_epoch = epochs done."""
    runs = []
    for lib in LIBS:
        opt = make_optimizer(lib, (0.1, 0.03))
        for group, lr_now in zip(opt.param_groups, (0.05, 0.02), strict=True):
            group["initial_lr"], group["lr"] = group["lr"], lr_now
        sched = getattr(LIBS[lib][1], name)(opt, last_epoch=5, **options)
        runs.append(run_schedule(opt, sched, 10))
    assert_same_sequence(*runs)


def test_resuming_without_initial_lr_raises_like_torch():
    for lib in LIBS:
        with pytest.raises(KeyError):
            LIBS[lib][1].StepLR(make_optimizer(lib), step_size=2, last_epoch=3)


# ---------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("options", [
    dict(factor=1.0), dict(factor=1.5), dict(mode="avg"), dict(mode="MIN"),
    dict(threshold_mode="relative"), dict(min_lr=[0.1, 0.2, 0.3]),
], ids=["factor1", "factor1.5", "mode_avg", "mode_upper", "threshold_mode", "min_lr_len"])
def test_reduce_lr_on_plateau_bad_arguments_rejected_like_torch(options):
    for lib in LIBS:
        with pytest.raises(ValueError):
            LIBS[lib][1].ReduceLROnPlateau(make_optimizer(lib, (0.1, 0.03)), **options)


def test_lambda_lr_wrong_number_of_lambdas_rejected_like_torch():
    for lib in LIBS:
        for lambdas in ([lambda e: 1.0], [lambda e: 1.0] * 3):
            with pytest.raises(ValueError):
                LIBS[lib][1].LambdaLR(make_optimizer(lib, (0.1, 0.03)), lr_lambda=lambdas)


@pytest.mark.parametrize("name,options", [
    ("StepLR", dict(step_size=0)), ("StepLR", dict(step_size=-2)),
    ("CosineAnnealingLR", dict(T_max=0)), ("CosineAnnealingLR", dict(T_max=-5)),
], ids=["step_size0", "step_size-2", "T_max0", "T_max-5"])
def test_non_positive_periods_rejected(name, options):
    with pytest.raises(ValueError):
        getattr(RS, name)(make_optimizer("retrograd"), **options)
    # torch does not validate them: a zero period fails on the first step (division by
    # zero), a negative one runs (an every-epoch decay / a cosine in reverse)
    opt = make_optimizer("torch")
    sched = getattr(TS, name)(opt, **options)
    opt.step()
    if next(iter(options.values())) == 0:
        with pytest.raises(ZeroDivisionError):
            sched.step()
    else:
        sched.step()


def test_scheduler_needs_an_optimizer_like_torch():
    for lib in LIBS:
        with pytest.raises(TypeError):
            LIBS[lib][1].StepLR(object(), step_size=2)
        with pytest.raises(TypeError):
            LIBS[lib][1].ReduceLROnPlateau(object())


# ---------------------------------------------------------------------------- find_lr

def _blobs(n=200, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # overlapping classes: too large a step overshoots to confident mistakes, so the loss
    # really diverges (separable blobs would only get more confident)
    X = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)
    return X, y


def _batches(X, y, size=20):
    return [(X[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def _rg_loader(X, y):
    return [(retrograd.tensor(a), retrograd.tensor(b)) for a, b in _batches(X, y)]


def _mlp():
    f64 = np.float64
    return nn.Sequential(nn.Linear(2, 16, dtype=f64), nn.Tanh(), nn.Linear(16, 2, dtype=f64))


def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _torch_replay(weights, X, y, lrs):
    """Raw losses of the same run in torch: same weights, batches (cycled), lr per iteration,
    a fresh SGD with momentum 0.9."""
    L = torch.nn.Linear
    model = torch.nn.Sequential(L(2, 16), torch.nn.Tanh(), L(16, 2))
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=0.9)
    batches = [(torch.tensor(a), torch.tensor(b)) for a, b in _batches(X, y)]
    raw = []
    for i, lr in enumerate(lrs):
        xb, yb = batches[i % len(batches)]
        for group in opt.param_groups:
            group["lr"] = lr
        loss = TF.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        raw.append(loss.item())
    return raw


def _smooth(raw, f):
    out = [raw[0]]
    for value in raw[1:]:
        out.append(f * value + (1 - f) * out[-1])
    return out


@pytest.mark.parametrize("smooth_f", [0.05, 0.3])
def test_find_lr_matches_formulas_and_torch_replay(smooth_f):
    X, y = _blobs()
    model = _mlp()
    weights = _snapshot(model)
    start, end, n = 1e-5, 1.0, 60
    result = find_lr(model, F.cross_entropy, _rg_loader(X, y), start_lr=start, end_lr=end,
                     num_iter=n, smooth_f=smooth_f)
    lrs, losses, suggestion = result
    assert len(lrs) == len(losses) == n  # no divergence up to lr = 1 on this problem
    expected = [start * (end / start) ** (i / (n - 1)) for i in range(n)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-14, atol=0)
    assert lrs[0] == start and lrs[-1] == pytest.approx(end, rel=1e-14)
    assert all(b > a for a, b in zip(lrs, lrs[1:], strict=False))
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(end / start) / (n - 1), rtol=1e-9)

    smoothed = _smooth(_torch_replay(weights, X, y, lrs), smooth_f)
    np.testing.assert_allclose(losses, smoothed, rtol=1e-9, atol=1e-12)

    slope = np.gradient(np.asarray(losses), np.log(lrs))
    assert suggestion == lrs[int(np.argmin(slope))]
    assert suggestion == lrs[int(np.argmin(np.gradient(smoothed, np.log(lrs))))]
    assert 1e-4 <= suggestion <= 1.0
    assert min(losses) < 0.7 * losses[0]  # it did learn


def test_find_lr_stops_early_on_divergence_and_restores_weights():
    X, y = _blobs()
    model = _mlp()
    weights = _snapshot(model)
    start, end, n, diverge_th = 1e-4, 1e6, 100, 5.0
    lrs, losses, suggestion = find_lr(model, F.cross_entropy, _rg_loader(X, y), start_lr=start,
                                      end_lr=end, num_iter=n)
    assert 3 <= len(lrs) < n
    np.testing.assert_allclose(lrs, [start * (end / start) ** (i / (n - 1))
                                     for i in range(len(lrs))], rtol=1e-14)
    # the rule: stop at the first smoothed loss that is not finite or > diverge_th * best so far
    def diverged(i):
        return not np.isfinite(losses[i]) or losses[i] > diverge_th * min(losses[:i])

    assert diverged(len(lrs) - 1)
    assert not any(diverged(i) for i in range(1, len(lrs) - 1))
    raw = _torch_replay(weights, X, y, lrs)
    np.testing.assert_allclose(losses[:-1], _smooth(raw, 0.05)[:-1], rtol=1e-7)
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), weights[key]), key
    finite = [i for i in range(len(lrs)) if np.isfinite(losses[i])]
    slope = np.gradient(np.asarray(losses)[finite], np.log(np.asarray(lrs)[finite]))
    assert suggestion == lrs[finite[int(np.argmin(slope))]]


def test_find_lr_restores_model_and_optimizer_state_exactly():
    X, y = _blobs()
    loader = _rg_loader(X, y)

    def trained_pair():
        retrograd.manual_seed(0)
        model = _mlp()
        opt = retrograd.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        for xb, yb in loader[:3]:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        return model, opt

    model, opt = trained_pair()
    twin_model, twin_opt = trained_pair()  # never sees find_lr
    weights = _snapshot(model)
    state = {i: copy.deepcopy(s) for i, s in enumerate(opt.state.values())}
    assert state and all("momentum_buffer" in s for s in state.values())
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    find_lr(model, F.cross_entropy, loader, optimizer=opt, start_lr=1e-4, end_lr=10.0,
            num_iter=40)

    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), weights[key]), key
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    params = list(model.parameters())
    assert all(p in opt.state for p in params)  # keyed by the model's own parameters
    for i, p in enumerate(params):
        saved = state[i]["momentum_buffer"]
        assert np.array_equal(opt.state[p]["momentum_buffer"], saved)
    # and training continues exactly as if find_lr had never run
    for m, o in ((model, opt), (twin_model, twin_opt)):
        o.zero_grad()
        F.cross_entropy(m(loader[5][0]), loader[5][1]).backward()
        o.step()
    for (k, a), (_, b) in zip(model.state_dict().items(), twin_model.state_dict().items(),
                              strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), k


@pytest.mark.parametrize("options", [
    dict(start_lr=0.0), dict(start_lr=-1e-3), dict(start_lr=1.0, end_lr=1.0),
    dict(start_lr=1.0, end_lr=0.1), dict(num_iter=1), dict(num_iter=0), dict(smooth_f=0.0),
    dict(smooth_f=1.5), dict(smooth_f=-0.1),
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_find_lr_bad_arguments_raise(options):
    X, y = _blobs()
    model = _mlp()
    weights = _snapshot(model)
    with pytest.raises(ValueError):
        find_lr(model, F.cross_entropy, _rg_loader(X, y), **options)
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), weights[key]), key
