"""The losses against PyTorch 2.13.0 (forward and gradients), against formulas written out in
torch, against finite differences (retrograd.gradcheck), and their algebraic properties.

Conventions follow test_against_torch.py: float64 to rtol 1e-10, a float32 subset to rtol 1e-5.
Every reference value comes from torch, from a formula evaluated in torch/NumPy, or from finite
differences; none is copied from retrograd's own output.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import retrograd
import retrograd.nn.functional as F
from oracle import TOL, TORCH_DTYPE, as_np, assert_close
from retrograd import nn, targets
from retrograd.nn import functional_losses

REDUCTIONS = ("none", "mean", "sum")

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------- helpers


def tw(w, dtype=np.float64):
    """A constant (weight, pos_weight) as a torch tensor of the given dtype."""
    return None if w is None else torch.tensor(np.asarray(w, dtype=dtype))


def compare(r_fn, t_fn, arrays, rng, dtype=np.float64, wrt=(0,), grad_mask=None):
    """r_fn on retrograd tensors and t_fn on torch tensors: same value, dtype and shape, and the
    same gradient for every input in `wrt` under a random cotangent (only the entries where
    grad_mask is true, when given)."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    rs = [retrograd.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    ts = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    r_out, t_out = r_fn(*rs), t_fn(*ts)
    assert r_out.dtype == np.dtype(dtype) and t_out.dtype == TORCH_DTYPE[dtype]
    assert_close(r_out, t_out, dtype, "forward")
    cot = np.asarray(rng.standard_normal(r_out.shape), dtype=dtype)
    r_out.backward(cot)
    t_out.backward(torch.from_numpy(cot))
    for i in wrt:
        assert rs[i].grad is not None, f"no gradient for input {i}"
        assert rs[i].grad.dtype == np.dtype(dtype)
        r_grad, t_grad = as_np(rs[i].grad), as_np(ts[i].grad)
        if grad_mask is not None:
            r_grad, t_grad = r_grad[grad_mask], t_grad[grad_mask]
        assert_close(r_grad, t_grad, dtype, f"gradient of input {i}")


def gradcheck(fn, *arrays, wrt=(0,)):
    inputs = [retrograd.tensor(np.asarray(a, dtype=np.float64), requires_grad=i in wrt)
              for i, a in enumerate(arrays)]
    assert retrograd.gradcheck(fn, inputs)


def probabilities(rng, shape, axis=1):
    q = rng.uniform(0.05, 1.0, shape)
    return q / q.sum(axis=axis, keepdims=True)


def torch_focal(x, y, gamma, weight=None, ignore_index=-100, reduction="mean"):
    """l_n = -w_{y_n} (1 - p_{n,y_n})^gamma log p_{n,y_n}; 'mean' divides by the summed weight of
    the counted samples. Written directly in torch (class axis 1)."""
    mask = y != ignore_index
    safe = torch.where(mask, y, torch.zeros_like(y))
    logp = torch.log_softmax(x, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    w = torch.ones(x.shape[1], dtype=x.dtype) if weight is None else weight
    w_n = w[safe] * mask.to(x.dtype)
    loss = -w_n * (1 - logp.exp()) ** gamma * logp
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w_n.sum()


def torch_sigmoid_focal(x, t, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written out."""
    p = torch.sigmoid(x)
    ce = TF.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def torch_policy_gradient(logits, actions, returns, reduction):
    logp = torch.log_softmax(logits, dim=1).gather(1, actions.unsqueeze(1)).squeeze(1)
    loss = -returns * logp
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


N, C = 7, 5
Y = np.array([0, 2, 1, 2, 4, 3, 2])  # class 2 occurs (three times): used as ignore_index
WEIGHT = np.array([0.7, 1.9, 0.6, 1.3, 1.1])


# ------------------------------------------------------- cross_entropy with class indices

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("weight", [None, WEIGHT], ids=["unweighted", "weighted"])
def test_cross_entropy_indices_vs_torch(weight, ignore_index, smoothing, reduction, rng):
    x = rng.standard_normal((N, C)) * 2
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    compare(lambda z: F.cross_entropy(z, retrograd.tensor(Y), weight=weight, **kw),
            lambda z: TF.cross_entropy(z, torch.tensor(Y), weight=tw(weight), **kw), [x], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight, ignore_index, smoothing",
                         [(None, -100, 0.0), (WEIGHT, 2, 0.1), (WEIGHT, -100, 0.7)])
def test_cross_entropy_indices_vs_torch_float32(weight, ignore_index, smoothing, reduction, rng):
    x = rng.standard_normal((N, C)) * 2
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    compare(lambda z: F.cross_entropy(z, Y, weight=weight, **kw),
            lambda z: TF.cross_entropy(z, torch.tensor(Y), weight=tw(weight, np.float32), **kw),
            [x], rng, dtype=np.float32)


# ------------------------------------------------------- cross_entropy with probability targets

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weight", [None, WEIGHT], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("normalized", [True, False], ids=["distribution", "unnormalized"])
def test_cross_entropy_probabilities_vs_torch(normalized, weight, smoothing, reduction, rng):
    """Gradient w.r.t. the logits and w.r.t. the probability target."""
    x = rng.standard_normal((N, C)) * 2
    q = probabilities(rng, (N, C)) if normalized else rng.uniform(0, 2, (N, C))
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    compare(lambda z, t: F.cross_entropy(z, t, weight=weight, **kw),
            lambda z, t: TF.cross_entropy(z, t, weight=tw(weight), **kw), [x, q], rng,
            wrt=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight, smoothing", [(None, 0.0), (WEIGHT, 0.3)])
def test_cross_entropy_probabilities_vs_torch_float32(weight, smoothing, reduction, rng):
    x = rng.standard_normal((N, C)) * 2
    q = probabilities(rng, (N, C))
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    compare(lambda z, t: F.cross_entropy(z, t, weight=weight, **kw),
            lambda z, t: TF.cross_entropy(z, t, weight=tw(weight, np.float32), **kw), [x, q],
            rng, dtype=np.float32, wrt=(0, 1))


def test_cross_entropy_probability_target_given_as_array(rng):
    """A plain float array (another dtype, no grad) as probability target."""
    x = rng.standard_normal((N, C))
    q = probabilities(rng, (N, C)).astype(np.float32)
    compare(lambda z: F.cross_entropy(z, q, label_smoothing=0.2),
            lambda z: TF.cross_entropy(z, torch.tensor(q, dtype=torch.float64),
                                       label_smoothing=0.2), [x], rng)


# ------------------------------------------------------------------ K-dimensional and unbatched

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("spatial", [(5,), (3, 2)], ids=["1d", "2d"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_k_dimensional_vs_torch(dtype, spatial, kind, reduction, rng):
    n, c = 3, 4
    x = rng.standard_normal((n, c) + spatial) * 2
    w = WEIGHT[:c]
    kw = dict(reduction=reduction, label_smoothing=0.2)
    if kind == "indices":
        y = rng.integers(0, c, (n,) + spatial)
        y.flat[0] = y.flat[3] = 1  # class 1 occurs: ignored
        compare(lambda z: F.cross_entropy(z, retrograd.tensor(y), weight=w, ignore_index=1, **kw),
                lambda z: TF.cross_entropy(z, torch.tensor(y), weight=tw(w, dtype),
                                           ignore_index=1, **kw), [x], rng, dtype)
    else:
        q = probabilities(rng, x.shape)
        compare(lambda z, t: F.cross_entropy(z, t, weight=w, **kw),
                lambda z, t: TF.cross_entropy(z, t, weight=tw(w, dtype), **kw), [x, q], rng,
                dtype, wrt=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_cross_entropy_unbatched_vs_torch(kind, reduction, rng):
    x = rng.standard_normal(C)
    kw = dict(weight=WEIGHT, reduction=reduction, label_smoothing=0.1)
    tkw = dict(kw, weight=tw(WEIGHT))
    if kind == "indices":
        compare(lambda z: F.cross_entropy(z, retrograd.tensor(3), **kw),
                lambda z: TF.cross_entropy(z, torch.tensor(3), **tkw), [x], rng)
    else:
        q = probabilities(rng, (C,), axis=0)
        compare(lambda z, t: F.cross_entropy(z, t, **kw),
                lambda z, t: TF.cross_entropy(z, t, **tkw), [x, q], rng, wrt=(0, 1))


# ------------------------------------------------------------------ nll_loss and mse_loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("weight", [None, WEIGHT], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nll_loss_vs_torch(dtype, weight, ignore_index, reduction, rng):
    x = rng.standard_normal((N, C))
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    compare(lambda z: F.nll_loss(F.log_softmax(z, 1), retrograd.tensor(Y), weight=weight, **kw),
            lambda z: TF.nll_loss(TF.log_softmax(z, 1), torch.tensor(Y),
                                  weight=tw(weight, dtype), **kw), [x], rng, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_k_dimensional_and_unbatched_vs_torch(reduction, rng):
    x = rng.standard_normal((2, 4, 3))
    y = np.array([[0, 3, 1], [1, 2, 1]])
    kw = dict(ignore_index=1, reduction=reduction)
    compare(lambda z: F.nll_loss(z, y, weight=WEIGHT[:4], **kw),
            lambda z: TF.nll_loss(z, torch.tensor(y), weight=tw(WEIGHT[:4]), **kw), [x], rng)
    compare(lambda z: F.nll_loss(z, retrograd.tensor(2), reduction=reduction),
            lambda z: TF.nll_loss(z, torch.tensor(2), reduction=reduction),
            [rng.standard_normal(4)], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_loss_vs_torch(dtype, reduction, rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    compare(lambda u, v: F.mse_loss(u, v, reduction=reduction),
            lambda u, v: TF.mse_loss(u, v, reduction=reduction), [a, b], rng, dtype, wrt=(0, 1))


# ------------------------------------------------------------------ binary cross-entropy

def bce_inputs(rng, with_extremes):
    p = rng.uniform(0.02, 0.98, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    if with_extremes:
        p[0] = [0.0, 1.0, 0.0]
        t[0] = [0.0, 1.0, 1.0]  # 0 * log 0 terms and one log clamped at -100
        p[1, 0], t[1, 0] = 1.0, 0.0
    return p, t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "per_class", "full"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_vs_torch(dtype, weight, reduction, rng):
    """p exactly 0 and 1 included: torch clamps the logs at -100. The gradient is compared where
    p (1 - p) is not clamped; the saturated entries have their own test below."""
    p, t = bce_inputs(rng, with_extremes=True)
    w = {None: None, "per_class": rng.uniform(0.5, 2, 3), "full": rng.uniform(0.5, 2, (4, 3))}
    w = w[weight]
    compare(lambda u: F.binary_cross_entropy(u, t, weight=w, reduction=reduction),
            lambda u: TF.binary_cross_entropy(u, torch.tensor(t, dtype=TORCH_DTYPE[dtype]),
                                              weight=tw(w, dtype), reduction=reduction),
            [p], rng, dtype, grad_mask=(p > 0) & (p < 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_gradient_at_p_0_and_1_vs_torch(dtype):
    """Where p (1 - p) = 0 torch divides p - t by max(p (1 - p), EPSILON) with EPSILON the
    float32 constant 1e-12 (9.99999996e-13 in float64), giving (p - t) / 9.99999996e-13."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype)
    t = np.array([1.0, 0.0, 0.3, 0.6, 0.0, 1.0], dtype=dtype)
    w = np.array([1.0, 2.0, 0.5, 1.5, 1.0, 1.0], dtype=dtype)
    compare(lambda u: F.binary_cross_entropy(u, t, weight=w, reduction="sum"),
            lambda u: TF.binary_cross_entropy(u, torch.tensor(t), weight=torch.tensor(w),
                                              reduction="sum"), [p], np.random.default_rng(0),
            dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_target_gradient_vs_torch(reduction, rng):
    p, t = bce_inputs(rng, with_extremes=False)
    w = rng.uniform(0.5, 2, 3)
    compare(lambda u, v: F.binary_cross_entropy(u, v, weight=w, reduction=reduction),
            lambda u, v: TF.binary_cross_entropy(u, v, weight=tw(w), reduction=reduction),
            [p, t], rng, wrt=(0, 1))


def test_binary_cross_entropy_target_gradient_at_saturated_p():
    """At p in {0, 1} the forward uses logs clamped at -100, so its derivative w.r.t. the target
    is the difference of the clamped logs (torch returns +-inf there instead); like the forward,
    the backward must not warn about log(0)."""
    p = np.array([0.0, 1.0, 0.25])
    t = retrograd.tensor(np.array([0.5, 0.5, 0.5]), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        F.binary_cross_entropy(retrograd.tensor(p), t, reduction="sum").backward()
    with np.errstate(divide="ignore"):
        expected = np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12)
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight, pos_weight", [(None, None), ("per_class", None),
                                                (None, "per_class"), ("full", "per_class")])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_vs_torch(dtype, weight, pos_weight, reduction, rng):
    """Gradient w.r.t. the logits and the (soft) target; pos_weight broadcast per class."""
    x = rng.standard_normal((5, 3)) * 3
    t = rng.uniform(0, 1, (5, 3))
    t[0] = [0.0, 1.0, 1.0]
    consts = {None: None, "per_class": rng.uniform(0.3, 3, 3), "full": rng.uniform(0.5, 2, (5, 3))}
    w, pw = consts[weight], consts[pos_weight]
    compare(lambda u, v: F.binary_cross_entropy_with_logits(u, v, weight=w, reduction=reduction,
                                                            pos_weight=pw),
            lambda u, v: TF.binary_cross_entropy_with_logits(u, v, weight=tw(w, dtype),
                                                             reduction=reduction,
                                                             pos_weight=tw(pw, dtype)),
            [x, t], rng, dtype, wrt=(0, 1))


# ------------------------------------------------------------------ focal losses

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (-1, 2.0), (0.75, 1.5),
                                          (-1, 0.5), (0.1, 3.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_focal_loss_vs_torchvision_formula(dtype, alpha, gamma, reduction, rng):
    x = rng.standard_normal((6, 3)) * 2
    t = (rng.uniform(size=(6, 3)) > 0.5).astype(float)
    compare(lambda u: F.sigmoid_focal_loss(u, t, alpha=alpha, gamma=gamma, reduction=reduction),
            lambda u: torch_sigmoid_focal(u, torch.tensor(t, dtype=TORCH_DTYPE[dtype]), alpha,
                                          gamma, reduction), [x], rng, dtype)


def test_sigmoid_focal_loss_default_reduction_is_none(rng):
    x, t = rng.standard_normal((4, 2)), (rng.uniform(size=(4, 2)) > 0.5).astype(float)
    out = F.sigmoid_focal_loss(retrograd.tensor(x), retrograd.tensor(t))
    assert_close(out, torch_sigmoid_focal(torch.tensor(x), torch.tensor(t), 0.25, 2.0, "none"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("weight, ignore_index", [(None, -100), (WEIGHT, -100), (None, 2),
                                                  (WEIGHT, 2)])
def test_focal_loss_vs_formula(weight, ignore_index, gamma, reduction, rng):
    x = rng.standard_normal((N, C)) * 2
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    compare(lambda z: F.focal_loss(z, retrograd.tensor(Y), gamma=gamma, weight=weight, **kw),
            lambda z: torch_focal(z, torch.tensor(Y), gamma, weight=tw(weight), **kw), [x], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_vs_formula_float32(gamma, reduction, rng):
    x = rng.standard_normal((N, C)) * 2
    kw = dict(ignore_index=2, reduction=reduction)
    compare(lambda z: F.focal_loss(z, Y, gamma=gamma, weight=WEIGHT, **kw),
            lambda z: torch_focal(z, torch.tensor(Y), gamma, weight=tw(WEIGHT, np.float32),
                                  **kw), [x], rng, dtype=np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_loss_k_dimensional_vs_formula(reduction, rng):
    x = rng.standard_normal((3, 4, 5)) * 2
    y = rng.integers(0, 4, (3, 5))
    y[0, 0] = 1

    def torch_kdim(z):
        flat = z.permute(0, 2, 1).reshape(-1, 4)
        loss = torch_focal(flat, torch.tensor(y.reshape(-1)), 2.0, tw(WEIGHT[:4]), 1, reduction)
        return loss.reshape(3, 5) if reduction == "none" else loss

    compare(lambda z: F.focal_loss(z, y, gamma=2.0, weight=WEIGHT[:4], reduction=reduction,
                                   ignore_index=1), torch_kdim, [x], rng)


# ------------------------------------------------------------------ policy gradient

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_policy_gradient_loss_vs_formula(dtype, reduction, rng):
    logits = rng.standard_normal((6, 4)) * 2
    actions = np.array([0, 3, 1, 1, 2, 3])
    returns = np.array([1.5, -2.0, 0.0, 3.25, -0.5, 0.7])
    compare(lambda z: F.policy_gradient_loss(z, retrograd.tensor(actions), returns, reduction),
            lambda z: torch_policy_gradient(z, torch.tensor(actions),
                                            torch.tensor(returns, dtype=TORCH_DTYPE[dtype]),
                                            reduction), [logits], rng, dtype)


def test_policy_gradient_returns_get_no_gradient(rng):
    returns = retrograd.tensor(rng.standard_normal(3), requires_grad=True)
    logits = retrograd.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    F.policy_gradient_loss(logits, np.array([0, 1, 1]), returns).backward()
    assert logits.grad is not None and returns.grad is None


# ------------------------------------------------------------------ modules

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_modules_match_functional_and_torch(reduction, rng):
    x = rng.standard_normal((N, C))
    q = probabilities(rng, (N, C))
    p = rng.uniform(0.05, 0.95, (N, C))
    t = (rng.uniform(size=(N, C)) > 0.5).astype(float)
    pw = rng.uniform(0.5, 2.0, C)
    cases = [
        (nn.CrossEntropyLoss(weight=retrograd.tensor(WEIGHT), ignore_index=2,
                             reduction=reduction, label_smoothing=0.15),
         torch.nn.CrossEntropyLoss(weight=tw(WEIGHT), ignore_index=2, reduction=reduction,
                                   label_smoothing=0.15),
         lambda z: F.cross_entropy(z, Y, WEIGHT, 2, reduction, 0.15), x, Y),
        (nn.CrossEntropyLoss(weight=WEIGHT, reduction=reduction, label_smoothing=0.3),
         torch.nn.CrossEntropyLoss(weight=tw(WEIGHT), reduction=reduction, label_smoothing=0.3),
         lambda z: F.cross_entropy(z, q, WEIGHT, reduction=reduction, label_smoothing=0.3), x,
         q),
        (nn.NLLLoss(weight=WEIGHT, ignore_index=2, reduction=reduction),
         torch.nn.NLLLoss(weight=tw(WEIGHT), ignore_index=2, reduction=reduction),
         lambda z: F.nll_loss(z, Y, WEIGHT, 2, reduction), x, Y),
        (nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction),
         lambda z: F.mse_loss(z, q, reduction), x, q),
        (nn.BCELoss(weight=WEIGHT, reduction=reduction),
         torch.nn.BCELoss(weight=tw(WEIGHT), reduction=reduction),
         lambda z: F.binary_cross_entropy(z, t, WEIGHT, reduction), p, t),
        (nn.BCEWithLogitsLoss(weight=WEIGHT, reduction=reduction, pos_weight=pw),
         torch.nn.BCEWithLogitsLoss(weight=tw(WEIGHT), reduction=reduction, pos_weight=tw(pw)),
         lambda z: F.binary_cross_entropy_with_logits(z, t, WEIGHT, reduction, pw), x, t),
    ]
    for r_module, t_module, functional, inp, target in cases:
        what = type(r_module).__name__
        r_in = retrograd.tensor(inp, requires_grad=True)
        t_in = torch.tensor(inp, requires_grad=True)
        t_target = torch.tensor(target)
        r_out, t_out = r_module(r_in, retrograd.tensor(target)), t_module(t_in, t_target)
        assert_close(r_out, t_out, what=what)
        assert_close(functional(retrograd.tensor(inp)), t_out, what=f"functional {what}")
        r_out.sum().backward()
        t_out.sum().backward()
        assert_close(r_in.grad, t_in.grad, what=f"gradient {what}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_loss_module_vs_formula(gamma, reduction, rng):
    x = rng.standard_normal((N, C))
    module = nn.FocalLoss(gamma=gamma, weight=WEIGHT, reduction=reduction, ignore_index=2)
    compare(lambda z: module(z, Y),
            lambda z: torch_focal(z, torch.tensor(Y), gamma, tw(WEIGHT), 2, reduction), [x], rng)
    assert_close(module(retrograd.tensor(x), Y),
                 F.focal_loss(retrograd.tensor(x), Y, gamma, WEIGHT, reduction, 2))


def test_loss_modules_keep_weight_as_buffer():
    module = nn.CrossEntropyLoss(weight=WEIGHT)
    assert "weight" in dict(module.named_buffers())
    assert list(module.parameters()) == []


# ------------------------------------------------------------------ finite differences

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight, ignore_index, smoothing",
                         [(None, -100, 0.0), (WEIGHT, -100, 0.0), (None, 2, 0.25),
                          (WEIGHT, 2, 0.25), (WEIGHT, -100, 1.0)])
def test_gradcheck_cross_entropy_indices(weight, ignore_index, smoothing, reduction, rng):
    gradcheck(lambda z: F.cross_entropy(z, Y, weight, ignore_index, reduction, smoothing),
              rng.standard_normal((N, C)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight, smoothing", [(None, 0.0), (WEIGHT, 0.2)])
def test_gradcheck_cross_entropy_probabilities(weight, smoothing, reduction, rng):
    gradcheck(lambda z, q: F.cross_entropy(z, q, weight, reduction=reduction,
                                           label_smoothing=smoothing),
              rng.standard_normal((4, C)), probabilities(rng, (4, C)), wrt=(0, 1))


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_gradcheck_cross_entropy_k_dimensional(kind, rng):
    x = rng.standard_normal((2, 3, 2, 2))
    if kind == "indices":
        y = np.array([[[0, 2], [1, 1]], [[2, 0], [1, 2]]])
        gradcheck(lambda z: F.cross_entropy(z, y, WEIGHT[:3], 1, "mean", 0.1), x)
        gradcheck(lambda z: F.cross_entropy(z, y, WEIGHT[:3], 1, "none", 0.1), x)
    else:
        gradcheck(lambda z, q: F.cross_entropy(z, q, WEIGHT[:3], label_smoothing=0.1), x,
                  probabilities(rng, x.shape), wrt=(0, 1))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradcheck_focal_loss(gamma, reduction, rng):
    gradcheck(lambda z: F.focal_loss(z, Y, gamma, WEIGHT, reduction, ignore_index=2),
              rng.standard_normal((N, C)))
    gradcheck(lambda z: F.focal_loss(z, Y[:5].reshape(1, 5) % 3, gamma, None, reduction),
              rng.standard_normal((1, 3, 5)))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [0.25, -1])
def test_gradcheck_sigmoid_focal_loss(alpha, gamma, rng):
    t = (rng.uniform(size=(4, 3)) > 0.5).astype(float)
    gradcheck(lambda z: F.sigmoid_focal_loss(z, t, alpha, gamma, "none"),
              rng.standard_normal((4, 3)))
    gradcheck(lambda z: F.sigmoid_focal_loss(z, t, alpha, gamma, "mean"),
              rng.standard_normal((4, 3)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_other_losses(reduction, rng):
    x = rng.standard_normal((N, C))
    gradcheck(lambda z: F.nll_loss(F.log_softmax(z, 1), Y, WEIGHT, 2, reduction), x)
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction), x, rng.standard_normal((N, C)),
              wrt=(0, 1))
    p, t = bce_inputs(rng, with_extremes=False)
    w, pw = rng.uniform(0.5, 2, 3), rng.uniform(0.3, 3, 3)
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, w, reduction), p, t, wrt=(0, 1))
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction, pw),
              rng.standard_normal((4, 3)) * 2, t, wrt=(0, 1))
    returns = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.0, 2.0])
    gradcheck(lambda z: F.policy_gradient_loss(z, Y, returns, reduction), x)


def test_gradcheck_unbatched(rng):
    gradcheck(lambda z: F.cross_entropy(z, retrograd.tensor(1), WEIGHT, label_smoothing=0.2),
              rng.standard_normal(C))
    gradcheck(lambda z, q: F.cross_entropy(z, q, label_smoothing=0.2), rng.standard_normal(C),
              probabilities(rng, (C,), axis=0), wrt=(0, 1))


# ------------------------------------------------------------------ second order

@pytest.mark.parametrize("case", ["indices", "probabilities", "focal", "policy"])
def test_double_backward_vs_torch(case, rng):
    """create_graph=True: the gradient is itself differentiable (Hessian-vector product)."""
    x = rng.standard_normal((N, C))
    v = rng.standard_normal((N, C))
    q = probabilities(rng, (N, C))
    returns = rng.standard_normal(N)
    r_fn = {"indices": lambda z: F.cross_entropy(z, Y, WEIGHT, 2, "mean", 0.2),
            "probabilities": lambda z: F.cross_entropy(z, q, WEIGHT, label_smoothing=0.2),
            "focal": lambda z: F.focal_loss(z, Y, 2.0, WEIGHT, "mean", 2),
            "policy": lambda z: F.policy_gradient_loss(z, Y, returns)}[case]
    t_fn = {"indices": lambda z: TF.cross_entropy(z, torch.tensor(Y), tw(WEIGHT), ignore_index=2,
                                                  label_smoothing=0.2),
            "probabilities": lambda z: TF.cross_entropy(z, torch.tensor(q), tw(WEIGHT),
                                                        label_smoothing=0.2),
            "focal": lambda z: torch_focal(z, torch.tensor(Y), 2.0, tw(WEIGHT), 2),
            "policy": lambda z: torch_policy_gradient(z, torch.tensor(Y), torch.tensor(returns),
                                                      "mean")}[case]
    rx = retrograd.tensor(x, requires_grad=True)
    (rg,) = retrograd.autograd.grad(r_fn(rx), rx, create_graph=True)
    (rhv,) = retrograd.autograd.grad((rg * retrograd.tensor(v)).sum(), rx)
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(t_fn(tx), tx, create_graph=True)
    (thv,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), tx)
    assert_close(rg, tg, what="gradient")
    assert_close(rhv, thv, what="Hessian-vector product")


# ------------------------------------------------------------------ properties

@st.composite
def classification(draw, max_n=6, max_c=6):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    x = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-30, 30)))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return x, y


def rg_grad(fn, x):
    """(loss array, gradient array) of fn at x with a cotangent of ones."""
    z = retrograd.tensor(x, requires_grad=True)
    out = fn(z)
    out.backward(np.ones(out.shape))
    return out.numpy(), z.grad.numpy()


EXACT = dict(rtol=1e-12, atol=1e-12)
CLOSE = dict(rtol=1e-10, atol=1e-12)


@SETTINGS
@given(classification(), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_property_gradient_rows_sum_to_zero_and_lie_in_unit_interval(data, eps):
    x, y = data
    _, g = rg_grad(lambda z: F.cross_entropy(z, y, reduction="sum", label_smoothing=eps), x)
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-12)
    assert np.all(g >= -1) and np.all(g <= 1)


@SETTINGS
@given(classification(), st.sampled_from(REDUCTIONS), st.booleans())
def test_property_focal_gamma_zero_is_cross_entropy(data, reduction, weighted):
    x, y = data
    w = WEIGHT[:x.shape[1]] if weighted and x.shape[1] <= C else None
    fl, fg = rg_grad(lambda z: F.focal_loss(z, y, 0.0, w, reduction), x)
    cl, cg = rg_grad(lambda z: F.cross_entropy(z, y, w, reduction=reduction), x)
    np.testing.assert_allclose(fl, cl, **EXACT)
    np.testing.assert_allclose(fg, cg, **EXACT)


@SETTINGS
@given(classification(), st.sampled_from(REDUCTIONS))
def test_property_zero_smoothing_is_plain_cross_entropy(data, reduction):
    x, y = data
    sl, sg = rg_grad(lambda z: F.cross_entropy(z, y, reduction=reduction, label_smoothing=0.0), x)
    cl, cg = rg_grad(lambda z: F.cross_entropy(z, y, reduction=reduction), x)
    np.testing.assert_allclose(sl, cl, **EXACT)
    np.testing.assert_allclose(sg, cg, **EXACT)


@SETTINGS
@given(classification(), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.1, 0.6]))
def test_property_index_targets_equal_one_hot_targets(data, reduction, eps):
    """Also cross_entropy(x, smooth(one_hot(y), eps)) == cross_entropy(x, y, label_smoothing=eps)
    (for the mean: unweighted, so both divide by N)."""
    x, y = data
    c = x.shape[1]
    hot = targets.one_hot(y, c, dtype=np.float64)
    il, ig = rg_grad(lambda z: F.cross_entropy(z, y, reduction=reduction, label_smoothing=eps), x)
    hl, hg = rg_grad(lambda z: F.cross_entropy(z, hot, reduction=reduction, label_smoothing=eps),
                     x)
    sl, sg = rg_grad(lambda z: F.cross_entropy(z, targets.smooth(hot, eps), reduction=reduction),
                     x)
    for loss, g in [(hl, hg), (sl, sg)]:
        np.testing.assert_allclose(loss, il, **CLOSE)
        np.testing.assert_allclose(g, ig, **CLOSE)


@SETTINGS
@given(classification(), st.sampled_from(REDUCTIONS),
       st.lists(st.floats(-10, 10), min_size=6, max_size=6))
def test_property_policy_gradient_is_return_weighted_cross_entropy(data, reduction, returns):
    x, y = data
    r = np.array(returns[:x.shape[0]])
    pl, pg = rg_grad(lambda z: F.policy_gradient_loss(z, y, r, reduction), x)
    ce = lambda z: F.cross_entropy(z, y, reduction="none") * retrograd.tensor(r)  # noqa: E731
    reduce = {"none": lambda t: t, "mean": lambda t: t.mean(), "sum": lambda t: t.sum()}
    cl, cg = rg_grad(lambda z: reduce[reduction](ce(z)), x)
    np.testing.assert_allclose(pl, cl, **CLOSE)
    np.testing.assert_allclose(pg, cg, **CLOSE)


@SETTINGS
@given(classification(), st.sampled_from(REDUCTIONS), st.floats(0, 1))
def test_property_smoothing_is_mixture_with_uniform_target(data, reduction, eps):
    x, y = data
    uniform = np.full(x.shape, 1.0 / x.shape[1])
    sl, sg = rg_grad(lambda z: F.cross_entropy(z, y, reduction=reduction, label_smoothing=eps), x)
    ml, mg = rg_grad(lambda z: (1 - eps) * F.cross_entropy(z, y, reduction=reduction)
                     + eps * F.cross_entropy(z, uniform, reduction=reduction), x)
    np.testing.assert_allclose(sl, ml, **CLOSE)
    np.testing.assert_allclose(sg, mg, **CLOSE)


# ------------------------------------------------------------------ numerical stability

def like(a, z):
    """A constant as a torch tensor of z's dtype."""
    return torch.tensor(a, dtype=z.dtype)


BIG_X = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, -1e4, 1e4], [1e4, 1e4, -1e4]])
BIG_Y = np.array([0, 0, 1, 2])  # confidently right, confidently wrong, ...
BIG_Q = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
BIG_T = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
BIG_W = np.array([0.5, 2.0, 1.0])
BIG_R = np.array([1.0, -2.0, 0.5, 3.0])

STABLE_CASES = {
    "ce_indices": (lambda L, z: L.F.cross_entropy(z, L.y),
                   lambda z: TF.cross_entropy(z, torch.tensor(BIG_Y))),
    "ce_indices_smooth_weight": (
        lambda L, z: L.F.cross_entropy(z, L.y, L.w, label_smoothing=0.1),
        lambda z: TF.cross_entropy(z, torch.tensor(BIG_Y), like(BIG_W, z),
                                   label_smoothing=0.1)),
    "ce_probabilities_smooth_weight": (
        lambda L, z: L.F.cross_entropy(z, L.q, L.w, label_smoothing=0.1, reduction="none"),
        lambda z: TF.cross_entropy(z, like(BIG_Q, z),
                                   like(BIG_W, z), label_smoothing=0.1,
                                   reduction="none")),
    "focal_0.5": (lambda L, z: L.F.focal_loss(z, L.y, 0.5, L.w, "none"),
                  lambda z: torch_focal(z, torch.tensor(BIG_Y), 0.5,
                                        like(BIG_W, z), reduction="none")),
    "focal_2": (lambda L, z: L.F.focal_loss(z, L.y, 2.0),
                lambda z: torch_focal(z, torch.tensor(BIG_Y), 2.0)),
    "policy_gradient": (lambda L, z: L.F.policy_gradient_loss(z, L.y, BIG_R, "none"),
                        lambda z: torch_policy_gradient(z, torch.tensor(BIG_Y),
                                                        like(BIG_R, z),
                                                        "none")),
    "bce_with_logits_pos_weight": (
        lambda L, z: L.F.binary_cross_entropy_with_logits(z, L.t, pos_weight=BIG_W,
                                                          reduction="none"),
        lambda z: TF.binary_cross_entropy_with_logits(z, like(BIG_T, z),
                                                      pos_weight=like(BIG_W, z),
                                                      reduction="none")),
    "sigmoid_focal_2": (lambda L, z: L.F.sigmoid_focal_loss(z, L.t, 0.25, 2.0, "none"),
                        lambda z: torch_sigmoid_focal(z, like(BIG_T, z), 0.25,
                                                      2.0, "none")),
    "mse": (lambda L, z: L.F.mse_loss(z, L.q),
            lambda z: TF.mse_loss(z, like(BIG_Q, z))),
}


# 60: inside the window where the CE kernel skips its max shift, with a spread (120) whose exp
# overflows float32; 1e4: far outside it
@pytest.mark.parametrize("scale", [1e4, 60.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(STABLE_CASES))
def test_large_logits_finite_without_warnings(case, dtype, scale):
    r_fn, t_fn = STABLE_CASES[case]
    big_x = (BIG_X * (scale / 1e4)).astype(dtype)
    L = type("L", (), dict(F=F, y=retrograd.tensor(BIG_Y), q=BIG_Q.astype(dtype),
                           t=retrograd.tensor(BIG_T.astype(dtype)), w=BIG_W))
    x = retrograd.tensor(big_x, requires_grad=True)
    # every floating-point event NumPy reports by default raises; underflow (exp of -2e4
    # flushing to 0, as in any stable softmax) is silent by default and is no error here
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        out = r_fn(L, x)
        out.backward(np.ones(out.shape, dtype=dtype))
    loss, g = out.numpy(), x.grad.numpy()
    assert loss.dtype == dtype and g.dtype == dtype
    assert np.all(np.isfinite(loss)), f"loss {loss}"
    assert np.all(np.isfinite(g)), f"gradient {g}"
    tx = torch.tensor(big_x, requires_grad=True)
    t_out = t_fn(tx)
    t_out.backward(torch.ones_like(t_out))
    t_loss, t_g = as_np(t_out), as_np(tx.grad)
    finite = np.isfinite(t_loss)
    assert finite.any()
    np.testing.assert_allclose(loss[finite], t_loss[finite], **TOL[dtype])
    finite = np.isfinite(t_g)
    np.testing.assert_allclose(g[finite], t_g[finite], **TOL[dtype])


def test_large_logits_focal_gradient_where_torch_is_nan():
    """Where p_y rounds to exactly 1, torch's written-out formula differentiates 0 ** 0.5 and
    gets nan; the true gradient of -(1 - p)^g log p there is 0 (it vanishes like (1-p)^(g+1))."""
    x = retrograd.tensor(BIG_X[:1], requires_grad=True)
    F.focal_loss(x, BIG_Y[:1], 0.5, reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 3)))


# ------------------------------------------------------------------ bad input


@pytest.fixture
def no_kernel(monkeypatch):
    """Fails the test if a loss kernel runs: errors must come before any computation."""
    def refuse(*args, **kwargs):
        raise AssertionError("a loss kernel ran before the input was validated")
    monkeypatch.setattr(functional_losses, "apply", refuse)


def raises_naming(exc, fn, *fragments):
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


X4 = retrograd.tensor(np.zeros((3, 4)), requires_grad=True)


@pytest.mark.parametrize("bad", [7, -1, 4])
def test_class_index_out_of_range(bad, no_kernel):
    y = np.array([0, bad, 1])
    for fn in [lambda: F.cross_entropy(X4, y), lambda: F.nll_loss(X4, y),
               lambda: F.focal_loss(X4, y), lambda: F.policy_gradient_loss(X4, y, np.ones(3)),
               lambda: F.cross_entropy(X4, y, ignore_index=2, label_smoothing=0.1),
               lambda: nn.CrossEntropyLoss()(X4, y)]:
        raises_naming((IndexError, ValueError), fn, str(bad), "4")
    k_dim = retrograd.tensor(np.zeros((2, 4, 3)))
    raises_naming((IndexError, ValueError),
                  lambda: F.cross_entropy(k_dim, np.array([[0, 1, 2], [3, bad, 0]])), str(bad),
                  "4")
    assert X4.grad is None


def test_ignore_index_outside_range_is_allowed():
    y = np.array([0, -1, 1])
    out = F.cross_entropy(X4, y, ignore_index=-1)
    expected = TF.cross_entropy(torch.zeros(3, 4), torch.tensor(y), ignore_index=-1)
    assert_close(out, expected)


def test_probability_target_shape_mismatch(no_kernel):
    raises_naming(ValueError, lambda: F.cross_entropy(X4, np.full((3, 5), 0.2)), "(3, 5)")
    raises_naming(ValueError, lambda: F.cross_entropy(X4, np.full((4,), 0.25)), "(4,)")


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_label_smoothing_out_of_range(eps, no_kernel):
    y = np.array([0, 1, 2])
    raises_naming(ValueError, lambda: F.cross_entropy(X4, y, label_smoothing=eps), str(eps))
    raises_naming(ValueError, lambda: nn.CrossEntropyLoss(label_smoothing=eps), str(eps))


def test_bad_class_weight(no_kernel):
    y = np.array([0, 1, 2])
    for fn in [F.cross_entropy, F.nll_loss, F.focal_loss]:
        kw = {"weight": np.ones(5)}
        raises_naming(ValueError, lambda fn=fn, kw=kw: fn(X4, y, **kw), "(5,)")
        kw = {"weight": np.array([1.0, -0.5, 1.0, 1.0])}
        raises_naming(ValueError, lambda fn=fn, kw=kw: fn(X4, y, **kw), "-0.5")
    raises_naming(ValueError, lambda: nn.CrossEntropyLoss(weight=np.ones(3))(X4, y), "(3,)")


def test_unknown_reduction(no_kernel):
    y = np.array([0, 1, 2])
    p = retrograd.tensor(np.full((3, 4), 0.5))
    fns = [lambda: F.cross_entropy(X4, y, reduction="avg"),
           lambda: F.nll_loss(X4, y, reduction="avg"),
           lambda: F.focal_loss(X4, y, reduction="avg"),
           lambda: F.policy_gradient_loss(X4, y, np.ones(3), reduction="avg"),
           lambda: F.mse_loss(X4, p, reduction="avg"),
           lambda: F.binary_cross_entropy(p, p, reduction="avg"),
           lambda: F.binary_cross_entropy_with_logits(X4, p, reduction="avg"),
           lambda: F.sigmoid_focal_loss(X4, p, reduction="avg"),
           lambda: nn.CrossEntropyLoss(reduction="avg"), lambda: nn.MSELoss(reduction="avg"),
           lambda: nn.FocalLoss(reduction="avg"), lambda: nn.BCEWithLogitsLoss(reduction="avg")]
    for fn in fns:
        raises_naming(ValueError, fn, "avg")


def test_ignore_index_with_probability_targets(no_kernel):
    raises_naming(ValueError, lambda: F.cross_entropy(X4, np.full((3, 4), 0.25), ignore_index=1),
                  "ignore_index")
    with pytest.raises(RuntimeError, match="ignore_index"):  # torch refuses it too
        TF.cross_entropy(torch.zeros(3, 4), torch.full((3, 4), 0.25), ignore_index=1)


def test_integer_input(no_kernel):
    xi = retrograd.tensor(np.zeros((3, 4), dtype=np.int64))
    y = np.array([0, 1, 2])
    for fn in [lambda: F.cross_entropy(xi, y), lambda: F.nll_loss(xi, y),
               lambda: F.focal_loss(xi, y), lambda: F.policy_gradient_loss(xi, y, np.ones(3)),
               lambda: F.mse_loss(xi, xi), lambda: F.binary_cross_entropy(xi, xi),
               lambda: F.binary_cross_entropy_with_logits(xi, xi)]:
        raises_naming(TypeError, fn, "int64")


def test_other_bad_arguments(no_kernel):
    y = np.array([0, 1, 2])
    raises_naming(ValueError, lambda: F.focal_loss(X4, y, gamma=-1.0), "-1.0")
    raises_naming(TypeError, lambda: F.focal_loss(X4, np.full((3, 4), 0.25)), "float64")
    raises_naming(ValueError, lambda: F.cross_entropy(X4, np.array([0, 1])), "(2,)")
    raises_naming(ValueError, lambda: F.policy_gradient_loss(X4, y, np.ones(2)), "(2,)")
    raises_naming(ValueError,
                  lambda: F.binary_cross_entropy(retrograd.tensor(np.array([0.5, 1.5])),
                                                 np.array([0.0, 1.0])), "[0, 1]")
    raises_naming(ValueError, lambda: F.binary_cross_entropy_with_logits(
        X4, np.zeros((3, 4)), pos_weight=np.array([1.0, -2.0, 1.0, 1.0])), "pos_weight")


@pytest.mark.parametrize("weight, smoothing", [(None, 0.0), (WEIGHT[:4], 0.0),
                                               (WEIGHT[:4], 0.3)])
def test_all_targets_ignored_mean_is_nan_like_torch(weight, smoothing, rng):
    x = rng.standard_normal((3, 4))
    y = np.array([1, 1, 1])
    kw = dict(ignore_index=1, label_smoothing=smoothing)
    compare(lambda z: F.cross_entropy(z, y, weight, **kw),
            lambda z: TF.cross_entropy(z, torch.tensor(y), tw(weight), **kw), [x], rng)
    compare(lambda z: F.nll_loss(z, y, weight, 1),
            lambda z: TF.nll_loss(z, torch.tensor(y), tw(weight), ignore_index=1), [x], rng)
    out = F.cross_entropy(retrograd.tensor(x), y, weight, **kw)
    assert np.isnan(out.item())
    for reduction in ("sum", "none"):
        compare(lambda z, r=reduction: F.cross_entropy(z, y, weight, reduction=r, **kw),
                lambda z, r=reduction: TF.cross_entropy(z, torch.tensor(y), tw(weight),
                                                        reduction=r, **kw), [x], rng)


def test_all_targets_ignored_focal_mean_is_nan(rng):
    x = retrograd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    out = F.focal_loss(x, np.array([2, 2, 2]), ignore_index=2)
    assert np.isnan(out.item())
    assert np.isnan(torch_focal(torch.tensor(x.numpy()), torch.tensor([2, 2, 2]), 2.0,
                                ignore_index=2).item())



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_with_underflowing_logits_matches_torch(dtype):
    """Very negative logits whose exp is denormal or 0 next to ordinary ones: the kernel's
    shift-free path (exp taken as is, checked afterwards) must still agree with torch."""
    x_np = np.array([[-50.0, -95.0, -60.0], [-20.0, -100.0, -30.0], [-80.0, -80.5, -700.0]],
                    dtype=dtype)
    y = np.array([0, 2, 1])
    x = retrograd.tensor(x_np, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, retrograd.tensor(y), reduction="sum")
        loss.backward()
    tx = torch.tensor(x_np, requires_grad=True)
    t_loss = TF.cross_entropy(tx, torch.tensor(y), reduction="sum")
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), **TOL[dtype])
    np.testing.assert_allclose(x.grad.numpy(), as_np(tx.grad), **TOL[dtype])


# ------------------------------------------------------------------ the fast float32 kernel


@pytest.mark.parametrize("scale", [1, 5, 20, 40])
def test_float32_cross_entropy_is_as_accurate_as_torch_float32(scale):
    """Loss and gradient of float32 logits against torch in float64 as the truth: retrograd's
    float32 errors are within a small factor of torch's own float32 errors."""
    rng = np.random.default_rng(scale)
    x32 = (rng.standard_normal((128, 100)) * scale).astype(np.float32)
    y = rng.integers(0, 100, 128)
    truth = torch.tensor(x32.astype(np.float64), requires_grad=True)
    TF.cross_entropy(truth, torch.from_numpy(y)).backward()
    theirs = torch.tensor(x32, requires_grad=True)
    loss_t = TF.cross_entropy(theirs, torch.from_numpy(y))
    loss_t.backward()
    mine = retrograd.tensor(x32, requires_grad=True)
    loss = F.cross_entropy(mine, retrograd.tensor(y))
    loss.backward()
    loss_true = TF.cross_entropy(truth.detach(), torch.from_numpy(y)).item()
    err, err_t = abs(loss.item() - loss_true), abs(loss_t.item() - loss_true)
    assert err <= 4 * err_t + 1e-7 * abs(loss_true)
    g_true = truth.grad.numpy()
    g_err = np.abs(mine.grad.numpy() - g_true).max()
    g_err_t = np.abs(theirs.grad.numpy() - g_true).max()
    assert g_err <= 4 * g_err_t + 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["all very negative", "huge loss", "transposed input"])
def test_cross_entropy_where_the_exp_first_path_gives_way(case, dtype):
    """Inputs that fail the exp-first checks (a largest logit far below 0, a loss above ~69
    nats) or are not C-contiguous take the other paths, with torch's results."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5))
    if case == "all very negative":
        x -= 40
    elif case == "huge loss":
        x[:, 0] -= 90  # the target class 0 is 90 nats below the others
    y = np.zeros(6, dtype=np.int64) if case == "huge loss" else rng.integers(0, 5, 6)
    x = x.astype(dtype)
    if case == "transposed input":
        x = np.asfortranarray(x)
    mine = retrograd.tensor(x, requires_grad=True)
    F.cross_entropy(mine, retrograd.tensor(y)).backward()  # F-ordered data when transposed
    theirs = torch.tensor(x, requires_grad=True)
    loss_t = TF.cross_entropy(theirs, torch.from_numpy(y))
    loss_t.backward()
    mine_loss = F.cross_entropy(retrograd.tensor(x), retrograd.tensor(y)).item()
    assert_close(mine_loss, loss_t.item(), dtype)
    assert_close(mine.grad.numpy(), theirs.grad.numpy(), dtype)
