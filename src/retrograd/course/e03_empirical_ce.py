"""Claim 3: the empirical cross-entropy -1/N sum_(x~D) log p_c(x)(x) converges to the expected
cross-entropy -E log p_c as N grows, with an error of sigma / sqrt(N) (sigma: the standard deviation
of the per-sample loss -log p_c(x)).

A world where everything is known exactly: K inputs x with probabilities P(x), a true label
distribution q(c | x) and a fixed imperfect model p(c | x) = softmax(o(x)). The expected CE and
sigma follow in closed form; retrograd's cross_entropy on N sampled pairs (x, c) gives the
estimate, repeated R times at each N.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import arrow, num, pct

SEED = 3
K, C = 20, 5
SLOPE_RANGE = (-0.6, -0.4)  # log RMSE vs log N: the CLT says -1/2
RATIO_RANGE = (0.8, 1.2)  # RMSE * sqrt(N) / sigma, averaged over N: the CLT says 1
DROP = 10  # and the RMSE must fall at least 10-fold from the smallest N to the largest


def make_world():
    """P(x) (K,), q(c | x) (K, C), the model's logits o(x) (K, C): all float64."""
    rng = np.random.default_rng(SEED)
    p_x = rng.dirichlet(np.ones(K))
    q = rng.dirichlet(np.full(C, 0.5), size=K)
    logits = rng.standard_normal((K, C)) + np.log(q + 0.05)  # correlated with q, not equal
    return p_x, q, logits


def expected_ce(p_x, q, logits) -> tuple[float, float]:
    """Exact E[-log p_c(x)] and the standard deviation of the per-sample loss."""
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    weight = p_x[:, None] * q
    mean = float(np.sum(weight * -log_p))
    return mean, float(np.sqrt(np.sum(weight * log_p ** 2) - mean ** 2))


def run(quick: bool, out_dir: str) -> Result:
    import retrograd as rg
    import retrograd.nn.functional as F

    p_x, q, logits = make_world()
    truth, sigma = expected_ce(p_x, q, logits)
    ns = np.unique(np.logspace(1, 4 if quick else 6, 13 if quick else 21).astype(int))
    repeats = 20 if quick else 30
    rng = np.random.default_rng(SEED + 1)
    estimates = np.empty((len(ns), repeats))
    for i, n in enumerate(ns):
        for r in range(repeats):
            x = rng.choice(K, size=n, p=p_x)
            # Inverse CDF per row: the class whose cumulative q first exceeds a uniform draw.
            c = np.minimum((np.cumsum(q[x], axis=1) < rng.random((n, 1))).sum(axis=1), C - 1)
            loss = F.cross_entropy(rg.tensor(logits[x]), rg.tensor(c))
            estimates[i, r] = float(loss.item())
    rmse = np.sqrt(np.mean((estimates - truth) ** 2, axis=1))
    slope = float(np.polyfit(np.log(ns), np.log(rmse), 1)[0])
    ratio = float(np.mean(rmse * np.sqrt(ns) / sigma))
    inside = float(np.mean(np.abs(estimates - truth) <= 3 * sigma / np.sqrt(ns)[:, None]))
    holds = (SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1] and RATIO_RANGE[0] <= ratio
             <= RATIO_RANGE[1] and rmse[-1] < rmse[0] / DROP)
    measured = {"expected_ce": truth, "per_sample_sigma": sigma, "n": ns.tolist(),
                "repeats": repeats, "mean_estimate": estimates.mean(axis=1).tolist(),
                "rmse": rmse.tolist(), "rmse_slope_vs_log_n": slope, "slope_range": SLOPE_RANGE,
                "rmse_sqrt_n_over_sigma": ratio, "ratio_range": RATIO_RANGE, "min_rmse_drop": DROP,
                "share_within_3_sigma_over_sqrt_n": inside}
    summary = (f"Expected CE {truth:.4f} (per-sample sigma {sigma:.3f}); the RMSE of the "
               f"empirical CE falls from {rmse[0]:.3f} at N={ns[0]} to {rmse[-1]:.5f} at "
               f"N={ns[-1]}, slope {slope:.3f} in log-log (theory -0.5), RMSE sqrt(N)/sigma = "
               f"{ratio:.3f} (theory 1).")
    return Result(measured, holds, summary,
                  _figure(ns, estimates, rmse, truth, sigma, out_dir), table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    n = m["n"]
    return [
        ("expected cross-entropy $−𝔼 \\log p_c(x)$ (exact)", f"{num(m['expected_ce'])} nats"),
        ("standard deviation $σ$ of the per-sample loss", f"{num(m['per_sample_sigma'])} nats"),
        ("sample sizes $N$", f"{num(n[0])} to {num(n[-1])} ({len(n)} sizes), "
         f"{m['repeats']} estimates each"),
        (f"RMSE of the estimate, $N$ = {num(n[0])} → {num(n[-1])}",
         arrow(m["rmse"][0], m["rmse"][-1]) + " nats"),
        ("slope of log RMSE against log $N$",
         f"{num(m['rmse_slope_vs_log_n'])} (theory −0.5; accepted "
         f"{num(m['slope_range'][0])} to {num(m['slope_range'][1])})"),
        ("RMSE $·\\sqrt{N}/σ$, mean over $N$",
         f"{num(m['rmse_sqrt_n_over_sigma'])} (theory 1; accepted {m['ratio_range'][0]:g} to "
         f"{m['ratio_range'][1]:g})"),
        ("estimates within $3σ/\\sqrt{N}$ of the truth",
         pct(m["share_within_3_sigma_over_sqrt_n"])),
    ]


def _figure(ns, estimates, rmse, truth, sigma, out_dir) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    band = sigma / np.sqrt(ns)
    left.fill_between(ns, truth - 2 * band, truth + 2 * band, alpha=0.15, color="C0",
                      label="+-2 sigma/sqrt(N)")
    left.fill_between(ns, truth - band, truth + band, alpha=0.3, color="C0",
                      label="+-sigma/sqrt(N)")
    left.plot(np.repeat(ns, estimates.shape[1]), estimates.ravel(), ".", ms=2, color="k",
              alpha=0.4, label="empirical CE (one sample of N)")
    left.axhline(truth, color="r", label="expected CE")
    left.set(xscale="log", xlabel="N", ylabel="cross-entropy", title="estimate vs N")
    left.legend(fontsize=8)
    right.loglog(ns, rmse, "o-", label="measured RMSE")
    right.loglog(ns, band, "r--", label="sigma / sqrt(N)")
    right.set(xlabel="N", ylabel="RMSE of the estimate", title="error shrinks as 1/sqrt(N)")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e03_empirical_ce.png")


EXPERIMENT = Experiment(
    3, "empirical-ce-converges",
    "The empirical cross-entropy over N samples converges to the expected cross-entropy as N "
    "grows.",
    "-1/N sum_(x~D) log p_c(x)(x)  ->  -E_(x,c) log p_c(x) = -sum_x P(x) sum_c q(c|x) log p_c(x),"
    "  error ~ sigma / sqrt(N)",
    run,
    tex=r"""-\frac{1}{N} \sum_{x \sim D} \log p_{\hat c(x)}(x) \;\to\; -\mathbb{E}_{x,c} \log p_c(x)
-\mathbb{E}_{x,c} \log p_c(x) = -\sum_x P(x) \sum_c q(c \mid x) \log p_c(x)
\text{error} \sim \frac{\sigma}{\sqrt{N}}""")
