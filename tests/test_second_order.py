"""Second-order optimizers: retrograd.optim.LBFGS against torch.optim.LBFGS 2.13.0 (the oracle,
float64), and the Hessian-free retrograd.optim.NewtonCG against scipy.optimize, closed-form
Hessians, central finite differences and np.linalg.solve.

LBFGS runs the same problem, initial point and options on both libraries and compares, after
every step(closure): the iterate (rtol 1e-9), the loss step() returned, state['func_evals'],
state['n_iter'] and the number of closure calls. Problems: L2-regularized multinomial logistic
regression, Rosenbrock's function from (-1.5, 2), and a small tanh MLP; with and without the
strong-Wolfe line search. The zoom phase of the line search is detected on torch's side by
counting unbounded cubic interpolations.
"""

import math

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as TF
from scipy.special import expit
from torch.optim import lbfgs as torch_lbfgs

import retrograd
import retrograd.nn.functional as F
from retrograd import nn
from retrograd.autograd import grad
from retrograd.optim import lbfgs as rg_lbfgs
from retrograd.optim import newton_cg as rg_newton_cg

LBFGS_TOL = dict(rtol=1e-9, atol=1e-11)
# step() calls compared per problem: L-BFGS amplifies the last-bit differences of the two
# libraries' reductions (Rosenbrock's fixed-step runs are nearly chaotic: about x1000 per
# 20 iterations), so each problem runs only as long as the trajectories stay within 1e-9.
LBFGS_STEPS = {"logreg": 4, "rosenbrock": 2, "mlp": 3}


def as_np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().numpy().copy()
    return t.numpy().copy()


def rg_param(array) -> nn.Parameter:
    return nn.Parameter(retrograd.tensor(np.array(array, dtype=np.float64)))


def torch_param(array) -> torch.Tensor:
    return torch.tensor(np.array(array, dtype=np.float64), requires_grad=True)


# ---------------------------------------------------------------------------- problems
# Each builder returns, for one library, (params, loss) with loss() -> scalar tensor.

def _multinomial_data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 5))
    y = rng.integers(0, 3, 60)
    W0 = 0.1 * rng.standard_normal((5, 3))
    b0 = 0.1 * rng.standard_normal(3)
    return X, y, W0, b0


def logreg_problem(lib):
    X, y, W0, b0 = _multinomial_data()
    lam = 0.05
    if lib == "torch":
        W, b, Xt, yt = torch_param(W0), torch_param(b0), torch.tensor(X), torch.tensor(y)
        return [W, b], lambda: TF.cross_entropy(Xt @ W + b, yt) + 0.5 * lam * (W * W).sum()
    W, b, Xr, yr = rg_param(W0), rg_param(b0), retrograd.tensor(X), retrograd.tensor(y)
    return [W, b], lambda: F.cross_entropy(Xr @ W + b, yr) + 0.5 * lam * (W * W).sum()


def rosenbrock_problem(lib, start=(-1.5, 2.0)):
    x = torch_param(start) if lib == "torch" else rg_param(start)
    return [x], lambda: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def mlp_problem(lib):
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((40, 4)), rng.standard_normal((40, 1))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    if lib == "torch":
        Xt, Yt = torch.tensor(X), torch.tensor(Y)
        return list(tmodel.parameters()), lambda: ((tmodel(Xt) - Yt) ** 2).mean()
    f64 = np.float64
    rmodel = nn.Sequential(nn.Linear(4, 8, dtype=f64), nn.Tanh(), nn.Linear(8, 1, dtype=f64))
    rmodel.load_state_dict(tmodel.state_dict())
    Xr, Yr = retrograd.tensor(X), retrograd.tensor(Y)
    return list(rmodel.parameters()), lambda: ((rmodel(Xr) - Yr) ** 2).mean()


PROBLEMS = {"logreg": logreg_problem, "rosenbrock": rosenbrock_problem, "mlp": mlp_problem}
BUILDERS = dict(PROBLEMS, rosenbrock_at_minimum=lambda lib: rosenbrock_problem(lib, (1.0, 1.0)))

OPTION_SETS = [
    ("default", {}),
    ("history3_iter7", dict(history_size=3, max_iter=7)),
    ("lr_half", dict(lr=0.5)),
    ("tolerance_change", dict(tolerance_change=1e-2)),
    ("max_eval4", dict(max_eval=4)),
]


class LBFGSRun:
    """One problem under LBFGS on one library, counting closure calls."""

    def __init__(self, lib, problem, options):
        torch.manual_seed(0)  # the MLP's initial weights: the same for both libraries
        self.params, self.loss = BUILDERS[problem](lib)
        optim = torch.optim if lib == "torch" else retrograd.optim
        self.opt = optim.LBFGS(self.params, **options)
        self.calls = 0

    def closure(self):
        self.calls += 1
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        return loss

    def step(self) -> float:
        loss = self.opt.step(self.closure)
        return float(loss.detach() if isinstance(loss, torch.Tensor) else loss)

    @property
    def state(self):
        return self.opt.state[self.params[0]]

    def values(self):
        return [as_np(p) for p in self.params]


def lbfgs_pair(problem, options):
    # build torch first so both libraries' MLPs copy the same torch initialization
    return LBFGSRun("torch", problem, options), LBFGSRun("retrograd", problem, options)


def assert_lbfgs_runs_match(t_run, r_run, step):
    for i, (tv, rv) in enumerate(zip(t_run.values(), r_run.values(), strict=True)):
        # rtol 1e-9 elementwise, entries near 0 measured against the parameter's scale
        np.testing.assert_allclose(rv, tv, rtol=1e-9, atol=1e-10 * np.abs(tv).max(),
                                   err_msg=f"parameter {i} after step {step}")
    for key in ("func_evals", "n_iter"):
        assert r_run.state[key] == t_run.state[key], f"state[{key!r}] after step {step}"
    assert r_run.calls == t_run.calls, f"closure calls after step {step}"


# ---------------------------------------------------------------------------- LBFGS vs torch

@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"], ids=["fixed", "wolfe"])
@pytest.mark.parametrize("case,options", OPTION_SETS, ids=[c for c, _ in OPTION_SETS])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_lbfgs_matches_torch_every_step(problem, case, options, line_search_fn):
    options = dict(options, line_search_fn=line_search_fn)
    t_run, r_run = lbfgs_pair(problem, options)
    for step in range(1, LBFGS_STEPS[problem] + 1):
        t_loss, r_loss = t_run.step(), r_run.step()
        assert r_loss == pytest.approx(t_loss, rel=1e-9, abs=1e-12), f"loss of step {step}"
        assert_lbfgs_runs_match(t_run, r_run, step)
        if step == 1 and case == "tolerance_change":
            # the option really stops the first step before max_iter (torch decides)
            assert t_run.state["n_iter"] < 20


def _count_zoom(module, monkeypatch):
    """Count _cubic_interpolate calls without bounds: only the zoom phase makes them."""
    counter = {"zoom": 0, "extrapolate": 0}
    real = module._cubic_interpolate

    def counting(*args, bounds=None):
        counter["zoom" if bounds is None else "extrapolate"] += 1
        return real(*args, bounds=bounds)

    monkeypatch.setattr(module, "_cubic_interpolate", counting)
    return counter


@pytest.mark.parametrize("options", [dict(lr=1), dict(lr=1, history_size=3, max_iter=7)],
                         ids=["lr1", "history3"])
def test_lbfgs_strong_wolfe_zoom_phase_matches_torch(options, monkeypatch):
    t_count = _count_zoom(torch_lbfgs, monkeypatch)
    r_count = _count_zoom(rg_lbfgs, monkeypatch)
    options = dict(options, line_search_fn="strong_wolfe")
    t_run, r_run = lbfgs_pair("rosenbrock", options)
    for step in range(1, 3):
        t_run.step()
        r_run.step()
        assert_lbfgs_runs_match(t_run, r_run, step)
    assert t_count["zoom"] > 0, "the case must exercise the zoom phase (on torch's side)"
    assert r_count == t_count
    # more closure calls than iterations: the line search evaluated extra points
    assert t_run.calls > t_run.state["n_iter"] + 3


@pytest.mark.parametrize("problem,options", [
    ("rosenbrock", dict(max_iter=1)),  # max_eval = 1: no line-search trial beyond the first
    ("rosenbrock", dict(max_eval=1)),
    ("rosenbrock", dict(lr=10, max_eval=3)),
    ("rosenbrock", dict(lr=3, max_eval=6)),
    ("logreg", dict(lr=10, max_eval=1)),
    ("rosenbrock", dict(max_eval=3, max_iter=10)),  # the cap is not reached here
], ids=["rosen-max_iter1", "rosen-max_eval1", "rosen-lr10-max_eval3", "rosen-lr3-max_eval6",
        "logreg-lr10-max_eval1", "rosen-max_eval3-not_reached"])
def test_lbfgs_strong_wolfe_line_search_is_capped_by_max_eval_like_torch(problem, options):
    """torch runs _strong_wolfe with max_ls = max_eval - (evaluations so far in this step),
    so a small max_eval also shortens the line search."""
    options = dict(options, line_search_fn="strong_wolfe")
    t_run, r_run = lbfgs_pair(problem, options)
    for step in range(1, 3):
        t_run.step()
        r_run.step()
        assert_lbfgs_runs_match(t_run, r_run, step)


def test_lbfgs_state_after_steps_matches_torch():
    t_run, r_run = lbfgs_pair("logreg", dict(history_size=4, max_iter=6))
    for _ in range(3):
        t_run.step()
        r_run.step()
    ts, rs = t_run.state, r_run.state
    assert len(rs["old_dirs"]) == len(ts["old_dirs"]) == 4
    for key in ("old_dirs", "old_stps"):
        for r_vec, t_vec in zip(rs[key], ts[key], strict=True):
            np.testing.assert_allclose(r_vec, as_np(t_vec), **LBFGS_TOL)
    np.testing.assert_allclose(rs["ro"], [float(v) for v in ts["ro"]], rtol=1e-9)
    np.testing.assert_allclose(rs["d"], as_np(ts["d"]), **LBFGS_TOL)
    np.testing.assert_allclose(rs["prev_flat_grad"], as_np(ts["prev_flat_grad"]), **LBFGS_TOL)
    assert float(rs["t"]) == pytest.approx(float(ts["t"]), rel=1e-12)
    assert float(rs["H_diag"]) == pytest.approx(float(ts["H_diag"]), rel=1e-9)


def test_lbfgs_stops_at_once_when_gradient_is_below_tolerance():
    """At the minimum torch evaluates once and returns; retrograd must do the same."""
    t_run, r_run = lbfgs_pair("rosenbrock_at_minimum", {})
    assert t_run.step() == r_run.step() == 0.0
    assert_lbfgs_runs_match(t_run, r_run, 1)
    assert r_run.calls == t_run.calls == 1 and r_run.state["n_iter"] == 0
    np.testing.assert_array_equal(r_run.values()[0], [1.0, 1.0])


# ---------------------------------------------------------------------------- LBFGS convergence

def _ill_conditioned_quadratic(n=10, cond=1e4, seed=3):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(np.logspace(0, np.log10(cond), n)) @ Q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(n)
    return A, b, np.linalg.solve(A, b)


def _rg_quadratic(A, b, x):
    At, bt = retrograd.tensor(A), retrograd.tensor(b)
    return lambda: 0.5 * (x * (At @ x)).sum() - (bt * x).sum()


@pytest.mark.parametrize("line_search_fn,tol", [(None, 1e-11), ("strong_wolfe", 1e-6)],
                         ids=["fixed", "wolfe"])
def test_lbfgs_converges_on_ill_conditioned_quadratic(line_search_fn, tol):
    """Condition number 1e4; the Wolfe search compares loss values, so it stalls near
    sqrt(machine epsilon) in x (torch's does too); the fixed step gets to roundoff."""
    A, b, x_star = _ill_conditioned_quadratic()
    x = rg_param(np.zeros(len(b)))
    loss = _rg_quadratic(A, b, x)
    opt = retrograd.optim.LBFGS([x], max_iter=100, line_search_fn=line_search_fn,
                                tolerance_grad=1e-12, tolerance_change=0.0)

    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(x.numpy(), x_star, rtol=0, atol=tol * np.abs(x_star).max())


@pytest.mark.parametrize("start", [(-1.5, 2.0), (-1.2, 1.0), (2.0, -1.0)])
def test_lbfgs_converges_on_rosenbrock(start):
    params, loss = rosenbrock_problem("rg", start)
    opt = retrograd.optim.LBFGS(params, max_iter=200, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-11, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(params[0].numpy(), [1.0, 1.0], atol=1e-7)


def test_lbfgs_rejects_what_torch_rejects():
    for lib, make in (("torch", torch_param), ("retrograd", rg_param)):
        optim = torch.optim if lib == "torch" else retrograd.optim
        with pytest.raises(ValueError):
            optim.LBFGS([make([1.0])], lr=-1.0)
        with pytest.raises(ValueError):  # one parameter group only
            optim.LBFGS([{"params": [make([1.0])]}, {"params": [make([2.0])]}])


def test_lbfgs_rejects_unknown_line_search_and_non_positive_counts():
    # torch only fails on step() for an unknown line search (RuntimeError); retrograd refuses
    # it, and non-positive iteration/history counts, at construction
    x = torch_param([1.0])
    t_opt = torch.optim.LBFGS([x], line_search_fn="armijo")

    def closure():
        t_opt.zero_grad()
        loss = (x ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError):
        t_opt.step(closure)
    for options in (dict(line_search_fn="armijo"), dict(history_size=0), dict(max_iter=0),
                    dict(max_eval=0), dict(max_iter=2.5)):
        with pytest.raises(ValueError):
            retrograd.optim.LBFGS([rg_param([1.0])], **options)
    with pytest.raises(ValueError):
        retrograd.optim.LBFGS([rg_param([1.0])]).step(None)


# ---------------------------------------------------------------------------- NewtonCG

LAM = 0.1


def _binary_data(n=200, d=6, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = (rng.random(n) < expit(X @ w_true + 0.3)).astype(np.float64)
    return X, y


def np_loss(w, X, y, lam=LAM, bias=None):
    z = X @ w + (0.0 if bias is None else bias)
    return np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w @ w


def np_grad(w, X, y, lam=LAM):
    return X.T @ (expit(X @ w) - y) / len(y) + lam * w


def np_hess(w, X, y, lam=LAM):
    p = expit(X @ w)
    return X.T @ (X * (p * (1 - p))[:, None]) / len(y) + lam * np.eye(len(w))


def scipy_optimum(X, y):
    res = scipy.optimize.minimize(np_loss, np.zeros(X.shape[1]), args=(X, y),
                                  jac=np_grad, hess=np_hess, method="trust-exact",
                                  options=dict(gtol=1e-11))
    assert np.linalg.norm(np_grad(res.x, X, y)) < 1e-9  # the oracle itself has converged
    return res.x


def rg_logreg_loss(w, X, y, lam=LAM):
    Xt, yt = retrograd.tensor(X), retrograd.tensor(y)
    return lambda: (F.binary_cross_entropy_with_logits(Xt @ w, yt)
                    + 0.5 * lam * (w * w).sum())


def rg_gradient(loss_fn, params):
    return np.concatenate([g.numpy().reshape(-1) for g in grad(loss_fn(), params)])


@pytest.mark.parametrize("calls_backward", [False, True], ids=["no_backward", "backward"])
def test_newton_cg_reaches_scipy_optimum_on_logistic_regression(calls_backward):
    X, y = _binary_data()
    w_star = scipy_optimum(X, y)
    w = rg_param(np.zeros(X.shape[1]))
    loss = rg_logreg_loss(w, X, y)
    opt = retrograd.optim.NewtonCG([w])

    def closure():
        opt.zero_grad()
        value = loss()
        if calls_backward:
            value.backward()
        return value

    losses = [float(opt.step(closure)) for _ in range(6)]
    np.testing.assert_allclose(w.numpy(), w_star, rtol=1e-6, atol=1e-6 * np.abs(w_star).max())
    assert np.linalg.norm(rg_gradient(loss, [w])) < 1e-8
    assert np.linalg.norm(np_grad(w.numpy(), X, y)) < 1e-8
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert opt.state[w]["n_iter"] == 6
    if calls_backward:  # the closure's own backward filled .grad with the first-order gradient
        np.testing.assert_allclose(w.grad.numpy(), np_grad(w.numpy(), X, y), atol=1e-12)


def test_newton_cg_with_weight_matrix_and_bias_reaches_scipy_optimum():
    X, y = _binary_data(seed=9)
    d = X.shape[1]

    def f(v):
        return np_loss(v[:d], X, y, bias=v[d])

    Xa = np.hstack([X, np.ones((len(y), 1))])

    def g(v):
        r = expit(X @ v[:d] + v[d]) - y
        return np.concatenate([X.T @ r / len(y) + LAM * v[:d], [r.mean()]])

    def h(v):
        p = expit(Xa @ v)
        return Xa.T @ (Xa * (p * (1 - p))[:, None]) / len(y) + np.diag([LAM] * d + [0.0])

    res = scipy.optimize.minimize(f, np.zeros(d + 1), jac=g, hess=h, method="trust-exact",
                                  options=dict(gtol=1e-11))
    assert np.linalg.norm(g(res.x)) < 1e-9
    model = nn.Linear(d, 1, dtype=np.float64)
    Xt, yt = retrograd.tensor(X), retrograd.tensor(y.reshape(-1, 1))

    def loss():
        return (F.binary_cross_entropy_with_logits(model(Xt), yt)
                + 0.5 * LAM * (model.weight * model.weight).sum())

    opt = retrograd.optim.NewtonCG(model.parameters())
    for _ in range(6):
        opt.step(loss)
    found = np.concatenate([model.weight.numpy().reshape(-1), model.bias.numpy()])
    np.testing.assert_allclose(found, res.x, rtol=1e-6, atol=1e-6 * np.abs(res.x).max())
    assert np.linalg.norm(g(found)) < 1e-8
    assert np.linalg.norm(rg_gradient(loss, [model.weight, model.bias])) < 1e-8


def test_newton_cg_first_step_is_the_damped_newton_step():
    """With the full step accepted, x1 = x0 - (H + damping I)^{-1} g (np.linalg.solve)."""
    X, y = _binary_data()
    w0 = np.full(X.shape[1], 0.05)
    for damping in (1e-4, 0.5):
        w = rg_param(w0)
        opt = retrograd.optim.NewtonCG([w], damping=damping, tol=1e-12)
        opt.step(rg_logreg_loss(w, X, y))
        H = np_hess(w0, X, y) + damping * np.eye(len(w0))
        expected = w0 - np.linalg.solve(H, np_grad(w0, X, y))
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-9, atol=1e-12)


def _vectors(n, k=4, seed=21):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n) for _ in range(k)] + [np.eye(n)[0]]


def test_hessian_vector_products_match_finite_differences_and_analytic_hessian():
    X, y = _binary_data()
    rng = np.random.default_rng(4)
    w0 = 0.3 * rng.standard_normal(X.shape[1])
    w = rg_param(w0)
    loss = rg_logreg_loss(w, X, y)
    (g,) = grad(loss(), [w], create_graph=True)
    np.testing.assert_allclose(g.numpy(), np_grad(w0, X, y), rtol=1e-12, atol=1e-14)
    H = np_hess(w0, X, y)
    eps = 1e-5
    for v in _vectors(len(w0)):
        (hv,) = grad((g * retrograd.tensor(v)).sum(), [w], retain_graph=True)
        fd = (_grad_at(w0 + eps * v, X, y) - _grad_at(w0 - eps * v, X, y)) / (2 * eps)
        np.testing.assert_allclose(hv.numpy(), fd, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hv.numpy(), H @ v, rtol=1e-10, atol=1e-13)


def _grad_at(w_value, X, y):
    w = rg_param(w_value)
    return rg_gradient(rg_logreg_loss(w, X, y), [w])


def test_newton_cg_internal_hvp_matches_analytic_hessian(monkeypatch):
    """Spy on the hvp NewtonCG hands to its CG solver: it must be H v at the current point,
    for a model with two parameters (weight matrix and bias, flattened in that order)."""
    X, y = _binary_data(seed=13)
    d = X.shape[1]
    model = nn.Linear(d, 1, dtype=np.float64)
    w0, b0 = model.weight.numpy().reshape(-1).copy(), float(model.bias.numpy()[0])
    Xt, yt = retrograd.tensor(X), retrograd.tensor(y.reshape(-1, 1))
    captured = {}
    real = rg_newton_cg._conjugate_gradients

    def spy(hvp, g, group):
        captured["g"] = g.copy()
        captured["hv"] = [(v, hvp(v.copy())) for v in _vectors(d + 1)]
        return real(hvp, g, group)

    monkeypatch.setattr(rg_newton_cg, "_conjugate_gradients", spy)
    opt = retrograd.optim.NewtonCG(model.parameters())
    opt.step(lambda: F.binary_cross_entropy_with_logits(model(Xt), yt)
             + 0.5 * LAM * (model.weight * model.weight).sum())
    p = expit(X @ w0 + b0)
    Xa = np.hstack([X, np.ones((len(y), 1))])
    H = Xa.T @ (Xa * (p * (1 - p))[:, None]) / len(y)
    H[:d, :d] += LAM * np.eye(d)
    r = p - y
    np.testing.assert_allclose(captured["g"], np.r_[X.T @ r / len(y) + LAM * w0, r.mean()],
                               rtol=1e-12, atol=1e-14)
    for v, hv in captured["hv"]:
        np.testing.assert_allclose(hv, H @ v, rtol=1e-10, atol=1e-13)


def _minimize_newton(x0, loss_of, steps, **options):
    x = rg_param(x0)

    def loss():
        return loss_of(x)

    opt = retrograd.optim.NewtonCG([x], **options)
    history = [float(loss().item())]
    for _ in range(steps):
        opt.step(loss)
        history.append(float(loss().item()))
    return x, loss, history


def test_newton_cg_negative_curvature_quartic_descends_to_local_minimum():
    """f(x) = x^4 - x^2 from x = 0.1 (f'' < 0 there): the step must still descend, and the
    iterates reach the local minimum 1/sqrt(2) (f' = 4x^3 - 2x = 0, f'' = 4 > 0)."""
    x, loss, history = _minimize_newton([0.1], lambda x: (x ** 4 - x ** 2).sum(), 25)
    assert all(b <= a for a, b in zip(history, history[1:], strict=False)), history
    assert history[1] < history[0]  # the first step (negative curvature) made progress
    np.testing.assert_allclose(x.numpy(), [1 / math.sqrt(2)], rtol=1e-9)
    assert abs(rg_gradient(loss, [x])[0]) < 1e-8
    assert history[-1] == pytest.approx(-0.25, rel=1e-12)


def test_newton_cg_mixed_curvature_descends_to_local_minimum():
    """f(x, y) = x^4 - x^2 + y^2 + x y / 4 from (0.1, 1): indefinite Hessian at the start."""
    def f(v):
        x, y = v[0], v[1]
        return x ** 4 - x ** 2 + y ** 2 + 0.25 * x * y

    v, loss, history = _minimize_newton([0.1, 1.0], f, 40)
    assert all(b <= a for a, b in zip(history, history[1:], strict=False)), history
    x, y = v.numpy()
    # stationary: 4x^3 - 2x + y/4 = 0 and 2y + x/4 = 0, with a positive definite Hessian
    assert abs(4 * x ** 3 - 2 * x + y / 4) < 1e-9 and abs(2 * y + x / 4) < 1e-9
    assert np.all(np.linalg.eigvalsh([[12 * x ** 2 - 2, 0.25], [0.25, 2.0]]) > 0)


def test_newton_cg_on_rosenbrock_descends_monotonically_to_minimum():
    def f(v):
        return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2

    x, loss, history = _minimize_newton([-1.2, 1.0], f, 60)
    assert all(b <= a for a, b in zip(history, history[1:], strict=False))
    np.testing.assert_allclose(x.numpy(), [1.0, 1.0], atol=1e-8)
    assert np.linalg.norm(rg_gradient(loss, [x])) < 1e-8


def test_newton_cg_beats_gradient_descent_on_ill_conditioned_quadratic():
    A, b, x_star = _ill_conditioned_quadratic()
    assert np.linalg.cond(A) == pytest.approx(1e4, rel=1e-6)
    x = rg_param(np.zeros(len(b)))
    loss = _rg_quadratic(A, b, x)
    opt = retrograd.optim.NewtonCG([x])
    steps = 0
    while np.linalg.norm(x.numpy() - x_star) > 1e-8 * np.linalg.norm(x_star) and steps < 10:
        opt.step(loss)
        steps += 1
    assert steps <= 3
    np.testing.assert_allclose(x.numpy(), x_star, rtol=1e-8, atol=1e-8)

    # SGD at its largest stable rate 1/L: 1000 steps still far away (closed form of GD checks it)
    lr = 1.0 / np.linalg.eigvalsh(A).max()
    z = rg_param(np.zeros(len(b)))
    zloss = _rg_quadratic(A, b, z)
    sgd = retrograd.optim.SGD([z], lr=lr)
    for _ in range(1000):
        sgd.zero_grad()
        zloss().backward()
        sgd.step()
    M = np.eye(len(b)) - lr * A
    expected = x_star - np.linalg.matrix_power(M, 1000) @ x_star
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(z.numpy() - x_star) > 1e-2 * np.linalg.norm(x_star)


@pytest.mark.parametrize("options", [
    dict(lr=0.0), dict(lr=-1.0), dict(damping=-1e-3), dict(tol=-1.0),
    dict(c1=1.0), dict(c1=-0.5), dict(max_cg_iters=0), dict(max_cg_iters=2.5),
    dict(max_backtracks=0), dict(max_backtracks=-3),
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_newton_cg_rejects_invalid_hyperparameters(options):
    with pytest.raises(ValueError):
        retrograd.optim.NewtonCG([rg_param([1.0])], **options)


def test_newton_cg_rejects_missing_closure_and_param_groups():
    opt = retrograd.optim.NewtonCG([rg_param([1.0])])
    with pytest.raises(ValueError):
        opt.step(None)
    with pytest.raises(ValueError):
        retrograd.optim.NewtonCG([{"params": [rg_param([1.0])]}, {"params": [rg_param([2.0])]}])
