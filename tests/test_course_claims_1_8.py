"""Course claims 1-8: each experiment's quick form holds, and its key measured numbers agree with
an independent computation (PyTorch, NumPy, or a count done another way)."""

import itertools

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.course import e01_loss_scalar as e01
from retrograd.course import e02_softmax as e02
from retrograd.course import e03_empirical_ce as e03
from retrograd.course import e04_learning_rate as e04
from retrograd.course import e05_initialization as e05
from retrograd.course import e06_linear_collapse as e06
from retrograd.course import e07_backprop_cost as e07
from retrograd.course import e08_softmax_ce_gradient as e08

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def quick(module, tmp_path):
    result = module.EXPERIMENT.run(True, str(tmp_path))
    assert result.holds, result.summary
    assert (tmp_path / result.figure).read_bytes()[:4] == b"\x89PNG"
    return result.measured


def test_e01_losses_are_scalars_with_torch_values(tmp_path):
    m = quick(e01, tmp_path)
    x, classes, target = e01.make_data(True)
    xt = torch.tensor(x, requires_grad=True)
    losses = {"cross_entropy": torch.nn.functional.cross_entropy(xt, torch.tensor(classes)),
              "mse": torch.nn.functional.mse_loss(xt, torch.tensor(target)),
              "sum_of_squares": (xt * xt).sum()}
    for name, loss in losses.items():
        (grad,) = torch.autograd.grad(loss, xt)
        assert m["loss_shapes"][name] == list(loss.shape) == []
        assert m["grad_shapes"][name] == list(grad.shape) == list(x.shape)
        assert m["loss_values"][name] == pytest.approx(loss.item(), rel=1e-12)
    assert len(x.shape) == 4


def test_e02_softmax_sums_and_argmax_match_torch(tmp_path):
    m = quick(e02, tmp_path)
    logits = e02.make_logits(True)
    p = torch.softmax(torch.tensor(logits), dim=1)  # float32, as retrograd's
    agreement = (p.argmax(1) == torch.tensor(logits).argmax(1)).double().mean().item()
    assert m["argmax_agreement"] == agreement == 1.0
    torch_error = (p.double().sum(1) - 1).abs().max().item()
    assert m["max_abs_sum_minus_1"] < e02.SUM_TOLERANCE and torch_error < e02.SUM_TOLERANCE
    assert m["rows"] == len(logits)
    # Monotonic on torch's probabilities too: sorting by logit never reverses the order.
    order = np.argsort(logits, axis=1)
    assert np.all(np.diff(np.take_along_axis(p.numpy(), order, axis=1), axis=1) >= 0)


def test_e03_expected_ce_matches_torch_and_the_estimate_converges(tmp_path):
    m = quick(e03, tmp_path)
    p_x, q, logits = e03.make_world()
    log_p = torch.log_softmax(torch.tensor(logits), dim=1)
    weight = torch.tensor(p_x)[:, None] * torch.tensor(q)
    expected = -(weight * log_p).sum().item()
    sigma = ((weight * log_p ** 2).sum().item() - expected ** 2) ** 0.5
    assert m["expected_ce"] == pytest.approx(expected, rel=1e-12)
    assert m["per_sample_sigma"] == pytest.approx(sigma, rel=1e-10)
    n_max = m["n"][-1]
    # The mean of the repeats at the largest N is within 4 standard errors of the truth.
    assert abs(m["mean_estimate"][-1] - expected) < 4 * sigma / np.sqrt(n_max * m["repeats"])
    slope = np.polyfit(np.log(m["n"]), np.log(m["rmse"]), 1)[0]
    assert -0.6 < slope < -0.4


def _torch_mlp_from(model):
    """A float32 torch copy of a retrograd Sequential of Linear and ReLU."""
    layers = []
    for layer in model:
        if isinstance(layer, rg.nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float32)
            with torch.no_grad():
                t.weight.copy_(torch.tensor(layer.weight.numpy()))
                t.bias.copy_(torch.tensor(layer.bias.numpy()))
            layers.append(t)
        else:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_descent(model, x, y, make_opt, steps):
    net = _torch_mlp_from(model)
    opt = make_opt(net.parameters())
    xt, yt = torch.tensor(x), torch.tensor(y)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        losses.append(loss.item())
        if not np.isfinite(losses[-1]) or losses[-1] > e04.DIVERGED * losses[0]:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_e04_learning_rate_sweep_matches_torch_sgd(tmp_path):
    m = quick(e04, tmp_path)
    x, y = e04.make_data(True)
    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Linear(64, m["hidden"]), rg.nn.ReLU(),
                             rg.nn.Linear(m["hidden"], 10))
    finals = []
    for lr in e04.LRS:
        losses = _torch_descent(model, x, y, lambda p, lr=lr: torch.optim.SGD(p, lr=lr),
                                m["steps"])
        finals.append(losses[-1] if len(losses) == m["steps"] else np.inf)
    assert m["initial_loss"] == pytest.approx(losses[0], rel=1e-5)
    assert m["best_lr"] == e04.LRS[int(np.argmin(finals))]
    assert m["diverged_lrs"] == [lr for lr, f in zip(e04.LRS, finals, strict=True)
                                 if not np.isfinite(f)]
    for k in (0, 4):  # the slow rate and a middle one: no chaos, so float32 paths stay close
        assert m["final_loss"][k] == pytest.approx(finals[k], rel=1e-4)
    assert m["finder_suggestion"] is not None
    assert e04.LRS[0] < m["finder_suggestion"] < m["diverged_lrs"][0]


def test_e05_best_of_k_by_enumeration_and_a_run_in_torch(tmp_path):
    m = quick(e05, tmp_path)
    default = m["final_loss_by_scale"]["1.0"]
    for k in (1, 2, 3):
        subsets = [min(s) for s in itertools.combinations(default, k)]
        assert m["expected_best_of_k"][k - 1] == pytest.approx(np.mean(subsets), rel=1e-12)
    x, y = e05.make_data(True)
    prior = np.bincount(y) / len(y)
    stuck = torch.nn.functional.cross_entropy(
        torch.tensor(np.log(prior))[None].expand(len(y), -1), torch.tensor(y)).item()
    assert m["class_prior_entropy"] == pytest.approx(stuck, rel=1e-12)
    # Seed 0's default-init run, trained again by torch from the same initial weights.
    rg.manual_seed(0)
    h = e05.HIDDEN
    model = rg.nn.Sequential(rg.nn.Linear(2, h), rg.nn.ReLU(), rg.nn.Linear(h, h), rg.nn.ReLU(),
                             rg.nn.Linear(h, 3))
    losses = _torch_descent(model, x, y, lambda p: torch.optim.Adam(p, lr=e05.LR), m["steps"])
    assert default[0] == pytest.approx(losses[-1], rel=5e-4)  # float32 Adam, 200 steps apart


def test_e06_merged_dense_in_torch(tmp_path):
    m = quick(e06, tmp_path)
    d, h, k = m["sizes_d_h_k"]
    dense1, dense2 = e06.layers((d, h, k), rg.float64)
    w1, b1 = torch.tensor(dense1.weight.numpy()), torch.tensor(dense1.bias.numpy())
    w2, b2 = torch.tensor(dense2.weight.numpy()), torch.tensor(dense2.bias.numpy())
    x = torch.tensor(np.random.default_rng(e06.SEED).standard_normal((m["inputs"], d)))
    stacked = (x @ w1.T + b1) @ w2.T + b2
    merged = x @ (w2 @ w1).T + (w2 @ b1 + b2)
    gap = ((stacked - merged).abs().max() / stacked.abs().max()).item()
    assert gap < e06.TOLERANCE["float64"] and m["relative_gap"]["float64"] < 1e-12
    relu_out = torch.relu(x @ w1.T + b1) @ w2.T + b2
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    fit = design @ torch.linalg.lstsq(design, relu_out).solution
    residual = (torch.linalg.norm(relu_out - fit)
                / torch.linalg.norm(relu_out - relu_out.mean(0))).item()
    assert m["relu_affine_residual"] == pytest.approx(residual, rel=1e-6)


def _forward_mode_by_parameter(sizes):
    """Forward mode counted parameter by parameter: one seed, then every layer above, then the
    dot product with p - y."""
    total = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))  # the forward pass
    for layer in range(1, len(sizes)):
        above = sum(sizes[m] * sizes[m - 1] for m in range(layer + 1, len(sizes)))
        for _ in range(sizes[layer] * sizes[layer - 1]):  # weights: a one-multiply seed
            total += 1 + above + sizes[-1]
        for _ in range(sizes[layer]):  # biases: the seed is free
            total += above + sizes[-1]
    return total


def test_e07_counts_by_hand_and_forward_mode_against_torch(tmp_path):
    m = quick(e07, tmp_path)
    small = m["small_net"]
    for depth, reverse, fmode in zip(small["depths"], m["measured_macs_small"]["reverse"],
                                     m["measured_macs_small"]["forward_mode"], strict=True):
        sizes = e07.mlp_sizes(depth, small["width"], small["n_in"], small["n_out"])
        forward = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        assert reverse == 3 * forward - sizes[0] * sizes[1]  # no input gradient needed
        assert fmode == _forward_mode_by_parameter(sizes)
    # An uneven net: all three strategies give torch's gradient; counts match the formulas.
    sizes = [7, 3, 6, 4, 2]
    ws, bs, x, c = e07.make_net(sizes, seed=11)
    params = [torch.tensor(a, requires_grad=True) for a in ws + bs]
    h = torch.tensor(x)
    for i in range(len(ws)):
        h = params[i] @ h + params[len(ws) + i]
        h = torch.relu(h) if i < len(ws) - 1 else h
    torch.nn.functional.cross_entropy(h[None], torch.tensor([c])).backward()
    counts = e07.analytic_macs(sizes)
    for strategy in e07.STRATEGIES:
        gw, gb, macs = e07.gradients(strategy, ws, bs, x, c)
        assert macs == counts[strategy]
        for ours, theirs in zip(gw + gb, params, strict=True):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-12)
    assert counts["forward_mode"] == _forward_mode_by_parameter(sizes)


def test_e08_worked_numbers_and_bounds_against_torch(tmp_path):
    m = quick(e08, tmp_path)
    for name, (p, true, read) in e08.WORKED.items():
        o = torch.tensor(np.log([p]), requires_grad=True)
        torch.nn.functional.cross_entropy(o, torch.tensor([true])).backward()
        assert m["worked_examples"][name] == pytest.approx(o.grad[0, read].item(), abs=1e-12)
    assert m["worked_examples"]["true_class_p_0.8"] == pytest.approx(0.8 - 1, abs=1e-12)
    logits, target = e08.make_logits(True, np.float32)
    o = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(o, torch.tensor(target), reduction="sum").backward()
    bounds = m["gradient_bounds_float32"]
    assert bounds["min"] == pytest.approx(o.grad.min().item(), abs=1e-6)
    assert bounds["max"] == pytest.approx(o.grad.max().item(), abs=1e-6)
    assert -1 <= bounds["min"] and bounds["max"] <= 1
