"""Course claims 9-16: each experiment's quick form holds, and its key measured number agrees with
an independent computation (PyTorch, scikit-learn, SciPy or NumPy by hand)."""

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
)
from sklearn.utils.class_weight import compute_class_weight

from retrograd.course import (
    _train_small as small,
)
from retrograd.course import (
    e09_sigmoid_exercises,
    e10_dense_gradient,
    e11_class_imbalance,
    e12_label_smoothing,
    e13_soft_labels_noise,
    e14_focal_loss,
    e15_reinforce,
    e16_optimizers,
)
from retrograd.targets import inverse_frequency_weights

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _run(module, tmp_path):
    result = module.EXPERIMENT.run(True, str(tmp_path))
    assert result.figure is not None and os.path.getsize(tmp_path / result.figure) > 0
    assert isinstance(result.holds, bool) and result.summary
    return result


def test_e09_sigmoid_gradients(tmp_path):
    r = _run(e09_sigmoid_exercises, tmp_path)
    assert r.holds, r.summary
    m = r.measured
    o = torch.tensor([m["saturated_logit"]], requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(o, torch.ones(1)).backward()
    assert m["grad_bce_at_saturation"] == pytest.approx(o.grad.item(), rel=1e-12)
    o.grad = None
    torch.nn.functional.mse_loss(torch.sigmoid(o), torch.ones(1), reduction="sum").backward()
    assert m["grad_mse_at_saturation"] == pytest.approx(o.grad.item(), rel=1e-10)
    assert m["speedup"] == pytest.approx(m["mean_steps_mse"] / m["mean_steps_bce"])


def test_e10_dense_gradient(tmp_path):
    r = _run(e10_dense_gradient, tmp_path)
    assert r.holds, r.summary
    assert any("e^{-o_i}" in note for note in r.notes)
    # the weight gradient from torch on a Dense(3 -> 4) equals (p - onehot) x
    rng = np.random.default_rng(0)
    w, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.cross_entropy((wt @ torch.tensor(x) + torch.tensor(b))[None],
                                      torch.tensor([2])).backward()
    p = torch.softmax(torch.tensor(w @ x + b), 0).numpy()
    np.testing.assert_allclose(wt.grad.numpy(), np.outer(p - np.eye(4)[2], x), atol=1e-14)
    # the course's typo, recomputed with torch on the experiment's logits
    rng = np.random.default_rng(100)
    o, c = rng.standard_normal((200, 4)) * 3, rng.integers(0, 4, 200)
    ce = torch.nn.functional.cross_entropy(torch.tensor(o), torch.tensor(c), reduction="none")
    typo = -o[np.arange(200), c] + np.log(np.exp(-o).sum(1))
    assert r.measured["max_abs_error_cost_course_typo_logsumexp(-o)"] == pytest.approx(
        np.max(np.abs(typo - ce.numpy())), rel=1e-12)


def test_e11_class_imbalance(tmp_path):
    r = _run(e11_class_imbalance, tmp_path)
    assert r.holds, r.summary
    data = e11_class_imbalance.dataset(4000, 0)
    np.testing.assert_allclose(
        inverse_frequency_weights(data.y_train, 2).numpy(),
        compute_class_weight("balanced", classes=np.arange(2), y=data.y_train), rtol=1e-6)
    # seed 0 again, scored by scikit-learn
    for method in e11_class_imbalance.METHODS:
        model = e11_class_imbalance.train(method, data, 0, r.measured["steps"])
        pred = small.logits(model, data.x_test).argmax(1)
        assert r.measured[f"{method}: per_seed_balanced_accuracy"][0] == pytest.approx(
            balanced_accuracy_score(data.y_test, pred))


def _ece_by_hand(probs, y, n_bins=15):
    conf, correct = probs.max(1), probs.argmax(1) == y
    total, edges = 0.0, np.linspace(0, 1, n_bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


def test_e12_label_smoothing(tmp_path):
    r = _run(e12_label_smoothing, tmp_path)
    assert r.holds, r.summary
    data = small.mnist1d_split()
    for eps, key in ((0.0, "per_seed_ece_plain"), (0.1, "per_seed_ece_smoothed")):
        out = e12_label_smoothing.train_and_score(data, 1000, r.measured["steps"], eps, 0)
        assert r.measured[key][0] == pytest.approx(_ece_by_hand(out["probs"], data.y_test))
    # torch's label_smoothing obeys the identity the experiment measured
    z, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    ce = torch.nn.functional.cross_entropy
    assert ce(z, y, label_smoothing=0.1).item() == pytest.approx(
        0.9 * ce(z, y).item() + 0.1 * ce(z, torch.full((64, 10), 0.1)).item(), rel=1e-12)


def test_e13_soft_labels_under_noise(tmp_path):
    r = _run(e13_soft_labels_noise, tmp_path)
    assert r.holds, r.summary
    from retrograd.data import digits
    from retrograd.targets import soft_labels

    data = digits()
    x_train, x_test = small.standardize(data.x_train, data.x_test)
    noisy = e13_soft_labels_noise.noisy_labels(data.y_train, 0.4, 0)
    assert abs(np.mean(noisy != data.y_train) - 0.4) < 0.04
    # the soft target is the posterior of the true class given the noisy label, by hand
    posterior = np.where(np.eye(10, dtype=bool)[noisy], 0.6, 0.4 / 9)
    soft = soft_labels(noisy, 10, 0.6, 0.4 / 9).numpy()
    np.testing.assert_allclose(soft, posterior, rtol=1e-6)
    _, pred = e13_soft_labels_noise.train(x_train, soft, x_test, data.y_test,
                                          r.measured["steps"], 0)
    i = r.measured["noise_rates"].index(0.4)
    assert r.measured["per_seed_clean_test_accuracy_soft"][i][0] == pytest.approx(
        accuracy_score(data.y_test, pred))


def test_e14_focal_loss(tmp_path):
    r = _run(e14_focal_loss, tmp_path)
    assert r.holds, r.summary
    m = r.measured
    budget = m["budget_steps"]
    scores = {g: {budget: []} for g in (0.0, 2.0)}
    models, x_test, y_test = e14_focal_loss.one_seed(0, tuple(m["train_sizes_pos_hard_easy"]),
                                                     [budget], budget, scores, {0.0: [], 2.0: []})
    for g, key in ((0.0, "per_seed_f1_ce"), (2.0, "per_seed_f1_focal")):
        z = small.logits(models[g], x_test)
        assert m[key][0] == pytest.approx(f1_score(y_test, z.argmax(1), zero_division=0),
                                          abs=1e-4)
        assert scores[g][budget][0][1] == pytest.approx(recall_score(y_test, z.argmax(1)))
        assert scores[g][budget][0][2] == pytest.approx(
            average_precision_score(y_test, z[:, 1] - z[:, 0]), rel=1e-9)
    # torch: the focal loss (gamma 2) over the cross-entropy at p = 0.9 and 0.1
    for p, key in ((0.9, "focal/ce_at_p=0.9"), (0.1, "focal/ce_at_p=0.1")):
        logp = torch.log_softmax(torch.tensor([[0.0, np.log(p / (1 - p))]]), 1)[0, 1]
        assert m[key] == pytest.approx((-(1 - logp.exp()) ** 2 * logp / -logp).item(), rel=1e-9)


def test_e16_optimizers(tmp_path):
    r = _run(e16_optimizers, tmp_path)
    assert r.holds, r.summary
    from scipy.optimize import minimize

    x, y = e16_optimizers.make_problem()
    xb = np.hstack([x, np.ones((len(x), 1))])

    def loss_and_grad(theta):
        z = xb @ theta
        loss = np.mean(np.logaddexp(0, z) - y * z)
        return loss, xb.T @ (1 / (1 + np.exp(-z)) - y) / len(y)

    opt = minimize(loss_and_grad, np.zeros(11), jac=True, method="BFGS", options={"gtol": 1e-12})
    assert r.measured["optimum_loss"] == pytest.approx(opt.fun, abs=1e-12)
    # plain gradient descent by hand at the experiment's best SGD learning rate
    theta, lr = np.zeros(11), r.measured["SGD: best_lr"]
    for _ in range(r.measured["steps"] - 1):
        theta -= lr * loss_and_grad(theta)[1]
    assert r.measured["SGD: final_loss_minus_optimum"] == pytest.approx(
        loss_and_grad(theta)[0] - r.measured["optimum_loss"], rel=1e-6)


def test_e15_reinforce(tmp_path):
    r = _run(e15_reinforce, tmp_path)
    assert r.holds, r.summary
    m = r.measured
    # torch: -R log pi(a|s) through Categorical has the gradient of R-weighted cross-entropy
    rng = np.random.default_rng(15)
    s, a = rng.standard_normal((50, 4)), rng.integers(0, 2, 50)
    ret, w0 = rng.uniform(1, 100, 50), rng.standard_normal((2, 4))
    w = torch.tensor(w0, requires_grad=True)
    dist = torch.distributions.Categorical(logits=torch.tensor(s) @ w.T)
    (-(torch.tensor(ret) * dist.log_prob(torch.tensor(a))).sum()).backward()
    z = s @ w0.T
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(w.grad.numpy(), -((ret[:, None] * (np.eye(2)[a] - p)).T @ s),
                               atol=1e-10)
    # the bandit's Monte-Carlo error, redone by hand from the same draws
    rng = np.random.default_rng(15)
    theta0, reward = rng.standard_normal((8, 3)), rng.uniform(0, 1, (8, 3))
    p = np.exp(theta0) / np.exp(theta0).sum(1, keepdims=True)
    exact = p * (reward - (p * reward).sum(1, keepdims=True)) / 8  # dJ/dtheta, J = mean_s E_a r
    for n, error in zip(m["monte_carlo_samples"], m["monte_carlo_relative_error"], strict=True):
        ctx = rng.integers(0, 8, n)
        act = (p[ctx].cumsum(1) < rng.random((n, 1))).sum(1)
        estimate = np.zeros((8, 3))
        np.add.at(estimate, ctx, reward[ctx, act][:, None] * (np.eye(3)[act] - p[ctx]) / n)
        assert error == pytest.approx(np.linalg.norm(estimate - exact) / np.linalg.norm(exact),
                                      rel=1e-6)
    assert m["median_return_last_50"] == pytest.approx(np.median(m["per_seed_return_last_50"]))
