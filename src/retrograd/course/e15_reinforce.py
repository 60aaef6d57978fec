"""REINFORCE is reward-weighted cross-entropy: ∇J = E[Σ_t ∇ log π(a_t | s_t) R] is minus the
gradient of Σ_t R · CE(π(s_t), a_t), so the policy-gradient step is a weighted CE step; and with
it a policy learns CartPole.

Three measurements: (1) on a batch, the gradients of policy_gradient_loss, of the R-weighted
cross-entropy and of the hand formula −Σ_t R_t (δ_{a_t} − π_t) s_tᵀ coincide, and so do the
parameters after one SGD step; (2) on a contextual bandit where J(θ) is exact, the Monte-Carlo
average of those gradients converges to −∇J (the log-derivative trick); (3) retrograd.rl's
REINFORCE, in the course's form (the whole episode's return R on every step, minus a running
average of past returns), on CartPole-v1.
"""

from __future__ import annotations

import numpy as np

import retrograd as rg
from retrograd.nn import functional as F

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import arrow, listing, num, pct, sci

TOL = 1e-10  # float64 identities
MAX_MC_ERROR = 0.05  # relative error of the largest Monte-Carlo estimate of ∇J
MIN_FINAL_RETURN = 100.0  # CartPole: mean return of the last 50 episodes, median over seeds
MIN_IMPROVEMENT = 3.0  # ... and at least this many times the first 50 episodes'

NOTES = [
    r"The course writes $\text{CE} = \sum_c \log(p_c)\, \tilde p_c$: the minus sign is "
    r"missing; cross-entropy is $-\sum_c \tilde p_c \log p_c$ (the course's expression is the "
    "expected log-likelihood, which is maximized like $J$).",
    r"In $\log p_\theta(\text{seq}) = \sum_t \log p_\theta(a_T \mid a_0, x_0, \ldots x_T)$ "
    r"the index should be $t$: $\sum_t \log p_\theta(a_t \mid a_0, x_0, \ldots, x_t)$ (an "
    r"action depends on the observations so far, not on $x_T$), and '∂ log p / θ' should read "
    r"$\partial \log p / \partial \theta$.",
]


def weighted_ce_identity(seed: int = 15) -> dict:
    """Gradients of the three forms for a linear policy on a random batch, and the parameters
    after one SGD step from each."""
    rng = np.random.default_rng(seed)
    s, a = rng.standard_normal((50, 4)), rng.integers(0, 2, 50)
    r, w0 = rng.uniform(1, 100, 50), rng.standard_normal((2, 4))
    grads, stepped = {}, {}
    for form in ("policy_gradient_loss", "weighted_cross_entropy"):
        w = rg.tensor(w0.copy(), requires_grad=True)
        logits = rg.tensor(s) @ w.T
        loss = (F.policy_gradient_loss(logits, a, r, reduction="sum")
                if form == "policy_gradient_loss"
                else (rg.tensor(r) * F.cross_entropy(logits, a, reduction="none")).sum())
        loss.backward()
        grads[form] = w.grad.numpy().copy()
        rg.optim.SGD([w], lr=1e-3).step()
        stepped[form] = w.numpy()
    z = s @ w0.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    hand = -((r[:, None] * (np.eye(2)[a] - p)).T @ s)
    return {"grad_pg_vs_weighted_ce": float(np.max(np.abs(grads["policy_gradient_loss"]
                                                          - grads["weighted_cross_entropy"]))),
            "grad_pg_vs_hand_formula": float(np.max(np.abs(grads["policy_gradient_loss"]
                                                           - hand))),
            "params_after_one_sgd_step": float(np.max(np.abs(stepped["policy_gradient_loss"]
                                                             - stepped["weighted_cross_entropy"])))}


def bandit_errors(sizes, seed: int = 15) -> tuple[list[float], np.ndarray]:
    """Relative error of the Monte-Carlo REINFORCE gradient, from N samples, against the exact
    ∇J of a tabular softmax policy on 8 contexts x 3 actions with fixed rewards."""
    rng = np.random.default_rng(seed)
    theta0, reward = rng.standard_normal((8, 3)), rng.uniform(0, 1, (8, 3))
    theta = rg.tensor(theta0, requires_grad=True)
    (rg.softmax(theta, 1) * rg.tensor(reward)).sum(1).mean().backward()  # J, contexts uniform
    exact = theta.grad.numpy()
    p = np.exp(theta0) / np.exp(theta0).sum(1, keepdims=True)
    errors = []
    for n in sizes:
        ctx = rng.integers(0, 8, n)
        act = (p[ctx].cumsum(1) < rng.random((n, 1))).sum(1)
        theta = rg.tensor(theta0, requires_grad=True)
        logits = theta[ctx]
        F.policy_gradient_loss(logits, act, reward[ctx, act]).backward()  # mean over samples
        estimate = -theta.grad.numpy()  # the loss is −J's estimate
        errors.append(float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact)))
    return errors, exact


def cartpole(episodes: int, seed: int, returns: str = "total") -> list[float]:
    """Episode returns of retrograd.rl's REINFORCE (MLP 4-128-2, Adam 1e-2, γ 0.99, entropy
    bonus 0.01 as in `retrograd rl`), one update per episode."""
    from retrograd.rl import REINFORCE, CategoricalPolicy, make_env, mlp

    rg.manual_seed(seed)
    env = make_env("CartPole-v1")
    policy = CategoricalPolicy(mlp(4, [128], 2))
    agent = REINFORCE(policy, rg.optim.Adam(policy.parameters(), lr=1e-2), gamma=0.99,
                      returns=returns, entropy_coef=0.01)
    try:
        return agent.train(env, episodes, seed=seed)
    finally:
        env.close()


def run(quick: bool, out_dir: str) -> Result:
    # the median over seeds: REINFORCE sometimes collapses onto one action early (about one seed
    # in six here), and the claim is about what training does, not about its worst seed
    episodes, seeds = (400, 3) if quick else (1000, 10)
    identity = weighted_ce_identity()
    sizes = [100, 1000, 10000, 100000, 1000000]
    mc_errors, _ = bandit_errors(sizes)
    runs = [cartpole(episodes, seed) for seed in range(seeds)]
    first = float(np.median([np.mean(r[:50]) for r in runs]))
    last = float(np.median([np.mean(r[-50:]) for r in runs]))
    measured = {**identity, "identity_tolerance": TOL, "monte_carlo_samples": sizes,
                "monte_carlo_relative_error": mc_errors, "max_mc_error": MAX_MC_ERROR,
                "cartpole_episodes": episodes, "seeds": seeds, "returns": "total (course)",
                "median_return_first_50": first, "median_return_last_50": last,
                "per_seed_return_last_50": [float(np.mean(r[-50:])) for r in runs],
                "collapsed_seeds_last_50_below_20": int(sum(np.mean(r[-50:]) < 20 for r in runs)),
                "min_final_return": MIN_FINAL_RETURN, "min_improvement": MIN_IMPROVEMENT}
    holds = (max(identity.values()) < TOL and mc_errors[-1] < MAX_MC_ERROR
             and last >= MIN_FINAL_RETURN and last >= MIN_IMPROVEMENT * first)
    togo = [cartpole(episodes, seed, "reward_to_go") for seed in range(seeds)] if not quick \
        else []
    if togo:
        measured["reward_to_go: median_return_last_50"] = float(np.median([np.mean(r[-50:])
                                                                           for r in togo]))

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for label, group, colour in (("R (course)", runs, "tab:blue"),
                                 ("reward-to-go", togo, "tab:orange")):
        for k, r in enumerate(group):
            smooth = np.convolve(r, np.ones(20) / 20, mode="valid")
            ax1.plot(np.arange(20, len(r) + 1), smooth, color=colour, alpha=0.8,
                     label=label if k == 0 else None)
    ax1.set(xlabel="episode", ylabel="return (20-episode mean)", title="REINFORCE on CartPole-v1")
    ax1.legend()
    ax2.loglog(sizes, mc_errors, "o-", label="measured")
    ax2.loglog(sizes, mc_errors[0] * np.sqrt(sizes[0] / np.asarray(sizes)), "k--", lw=1,
               label="∝ 1/√N")
    ax2.set(xlabel="samples N", ylabel="‖estimate − ∇J‖ / ‖∇J‖",
            title="reward-weighted CE gradient → exact ∇J")
    ax2.legend()
    figure = save_figure(fig, out_dir, "e15_reinforce.png")
    summary = (f"The policy-gradient loss, the R-weighted cross-entropy and the hand formula give "
               f"the same gradient (to {max(identity.values()):.1e}); its Monte-Carlo average "
               f"reaches the exact ∇J to {mc_errors[-1]:.1%} with {sizes[-1]} samples; on "
               f"CartPole the mean return (median of {seeds} seeds) rises from {first:.0f} over "
               f"the first 50 episodes to {last:.0f} over the last 50 "
               f"({measured['collapsed_seeds_last_50_below_20']} seeds collapsed).")
    below = sum(r < MIN_FINAL_RETURN for r in measured["per_seed_return_last_50"])
    condition = (f"for the median seed: {below} of {seeds} seeds end below a mean return of "
                 f"{MIN_FINAL_RETURN:g} over their last 50 episodes") if below else ""
    return Result(measured, bool(holds), summary, figure, list(NOTES), table=table(measured),
                  condition=condition)


def table(m: dict) -> list[tuple[str, str]]:
    errors = ", ".join(f"{num(n)}: {pct(e)}" for n, e in
                       zip(m["monte_carlo_samples"], m["monte_carlo_relative_error"], strict=True))
    rows = [
        ("largest gradient difference, policy-gradient loss against R-weighted CE / against "
         "the hand formula", f"{sci(m['grad_pg_vs_weighted_ce'])} / "
         f"{sci(m['grad_pg_vs_hand_formula'])} (tolerance {sci(m['identity_tolerance'], 1)})"),
        ("largest parameter difference after one SGD step from each",
         sci(m["params_after_one_sgd_step"])),
        ("Monte-Carlo estimate of $∇J$, relative error by samples $N$",
         f"{errors} (under {pct(m['max_mc_error'], 0)} required at the largest $N$)"),
        ("CartPole-v1 runs", f"{num(m['cartpole_episodes'])} episodes, {m['seeds']} seeds, "
         "weights: the whole episode's return (the course's form)"),
        ("median over seeds of the mean return, first 50 → last 50 episodes",
         arrow(m["median_return_first_50"], m["median_return_last_50"], lambda v: f"{v:.0f}")),
        ("mean return of the last 50 episodes, by seed",
         listing(m["per_seed_return_last_50"], lambda v: f"{v:.0f}")),
        ("required: a median of at least, and an improvement of at least",
         f"{m['min_final_return']:g}, {m['min_improvement']:g} ×"),
        ("seeds that collapsed (mean return under 20)",
         f"{m['collapsed_seeds_last_50_below_20']} of {m['seeds']}"),
    ]
    if "reward_to_go: median_return_last_50" in m:
        rows.append(("the same with reward-to-go weights: median mean return, last 50",
                     f"{m['reward_to_go: median_return_last_50']:.0f}"))
    return rows


EXPERIMENT = Experiment(
    15, "reinforce-is-weighted-cross-entropy",
    "REINFORCE equals reward-weighted cross-entropy: the policy-gradient step equals a weighted "
    "CE step, and training on CartPole learns.",
    "∇_θ J = E_seq[ Σ_t ∇_θ log π_θ(a_t | s_t) · R ] = −∇_θ E[ Σ_t R · CE(π_θ(s_t), a_t) ]",
    run,
    tex="\n".join((
        r"\nabla_\theta J = \mathbb{E}_{\text{seq}}\left[ \sum_t \nabla_\theta \log"
        r" \pi_\theta(a_t \mid s_t)\, R \right]",
        r"\nabla_\theta J = -\nabla_\theta\, \mathbb{E}\left[ \sum_t R\, \text{CE}(\pi_\theta"
        r"(s_t), a_t) \right]",
    )))
