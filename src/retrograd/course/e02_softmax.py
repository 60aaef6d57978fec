"""Claim 2: softmax(o)_i = e^(o_i) / sum_c e^(o_c) sums to 1 and is monotonic, so
argmax_i softmax(o)_i = argmax_i o_i and inference can skip the softmax.

Measured with retrograd's float32 softmax on random logit rows at scales from 0.01 to 1000 (where
a naive exp overflows): the largest |sum - 1|, the share of rows whose argmax is preserved, and
the number of logit pairs o_i > o_j whose probabilities come out in the opposite order.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import listing, num, pct, sci

SEED = 2
SCALES = (0.01, 1.0, 10.0, 100.0, 1000.0)
SUM_TOLERANCE = 1e-5  # float32 has 24 bits: a sum of 10 terms is exact to a few 1e-7


def make_logits(quick: bool) -> np.ndarray:
    """Rows of 10 logits, standard normal times each scale in SCALES (float32)."""
    rows = 2_000 if quick else 200_000
    rng = np.random.default_rng(SEED)
    scale = np.repeat(np.asarray(SCALES), rows // len(SCALES))[:, None]
    return (scale * rng.standard_normal((len(scale), 10))).astype(np.float32)


def run(quick: bool, out_dir: str) -> Result:
    import retrograd as rg
    import retrograd.nn.functional as F

    logits = make_logits(quick)
    probs = F.softmax(rg.tensor(logits), dim=1).numpy()
    sum_error = np.abs(probs.astype(np.float64).sum(axis=1) - 1.0)
    argmax_agreement = float(np.mean(probs.argmax(axis=1) == logits.argmax(axis=1)))
    # Monotonic: every pair ordered by its logits must not be ordered the other way by its
    # probabilities. Equal probabilities happen where tiny ones round together or underflow to 0
    # in float32: counted apart as ties, since they do not reverse the order.
    order = np.argsort(logits, axis=1)
    sorted_p = np.take_along_axis(probs, order, axis=1)
    steps = np.diff(sorted_p, axis=1)
    reversed_pairs = int(np.sum(steps < 0))
    tied_pairs = int(np.sum(steps == 0))
    row_scale = np.repeat(np.asarray(SCALES), len(logits) // len(SCALES))
    per_scale = {str(s): float(sum_error[row_scale == s].max()) for s in SCALES}
    holds = (float(sum_error.max()) < SUM_TOLERANCE and argmax_agreement == 1.0
             and reversed_pairs == 0 and bool(np.all(np.isfinite(probs))))
    measured = {"rows": len(logits), "classes": logits.shape[1], "scales": list(SCALES),
                "max_abs_sum_minus_1": float(sum_error.max()),
                "max_abs_sum_minus_1_per_scale": per_scale, "sum_tolerance": SUM_TOLERANCE,
                "argmax_agreement": argmax_agreement, "reversed_pairs": reversed_pairs,
                "tied_pairs_float32": tied_pairs, "all_finite": bool(np.all(np.isfinite(probs)))}
    summary = (f"Over {len(logits)} rows of 10 logits (scales 0.01 to 1000): max |sum p - 1| = "
               f"{sum_error.max():.1e}, argmax preserved in {100 * argmax_agreement:.1f}% of rows,"
               f" {reversed_pairs} reversed pairs ({tied_pairs} pairs equal in float32: tiny "
               f"probabilities rounding together or to 0).")
    notes = ["Monotonic here means: raising o_i raises p_i and lowers every other p_j (the "
             "figure's left panel), so the logits and the probabilities have the same order."]
    return Result(measured, holds, summary, _figure(sum_error, out_dir), notes,
                  table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    per_scale = ", ".join(f"{float(k):g}: {sci(v)}"
                          for k, v in m["max_abs_sum_minus_1_per_scale"].items())
    return [
        ("logit rows × classes", f"{num(m['rows'])} × {m['classes']}"),
        ("logit scales (standard deviations)", listing(m["scales"])),
        ("largest $|Σ_i p_i − 1|$ in float32", f"{sci(m['max_abs_sum_minus_1'])} "
         f"(tolerance {sci(m['sum_tolerance'], 1)})"),
        ("largest $|Σ_i p_i − 1|$ by scale", per_scale),
        ("rows whose argmax of $p$ is the argmax of $o$", pct(m["argmax_agreement"])),
        ("pairs with $o_i > o_j$ but $p_i < p_j$ (reversed)", num(m["reversed_pairs"])),
        ("pairs with equal $p$ in float32 (ties, not reversals)",
         num(m["tied_pairs_float32"])),
        ("every probability finite", num(m["all_finite"])),
    ]


def _figure(sum_error: np.ndarray, out_dir: str) -> str:
    import retrograd as rg
    import retrograd.nn.functional as F

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    # Sweep one logit with the others fixed: its probability rises, the others fall.
    sweep = np.linspace(-6, 6, 241, dtype=np.float32)
    rows = np.tile(np.array([1.0, 0.0, -1.0, 0.5], dtype=np.float32), (len(sweep), 1))
    rows[:, 0] = sweep
    p = F.softmax(rg.tensor(rows), dim=1).numpy()
    for c in range(p.shape[1]):
        left.plot(sweep, p[:, c], label=f"p_{c}" + (" (swept logit)" if c == 0 else ""))
    left.plot(sweep, p.sum(axis=1), "k--", label="sum")
    left.set(xlabel="o_0 (others fixed at 0, -1, 0.5)", ylabel="softmax", title="monotonic in o_0")
    left.legend(fontsize=8)
    right.hist(np.maximum(sum_error, 1e-12), bins=np.logspace(-12, -5, 36))
    right.set_xscale("log")
    right.axvline(SUM_TOLERANCE, color="r", ls="--", label="tolerance")
    right.set(xlabel="|sum_c p_c - 1| (float32; 1e-12 = exact)", ylabel="rows",
              title="sums to 1")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e02_softmax.png")


EXPERIMENT = Experiment(
    2, "softmax-sums-to-one",
    "Softmax outputs sum to 1 and are monotonic: the argmax of the logits is the argmax of the "
    "probabilities.",
    "p_i = e^(o_i) / sum_c e^(o_c);   sum_i p_i = 1;   o_i > o_j  =>  p_i >= p_j;   "
    "argmax p = argmax o",
    run,
    tex=r"""p_i = \frac{e^{o_i}}{\sum_c e^{o_c}}, \qquad \sum_i p_i = 1
o_i > o_j \Rightarrow p_i \ge p_j, \qquad \operatorname{argmax} p = \operatorname{argmax} o""")
