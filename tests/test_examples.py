"""The README's example scripts run, and show what the README says they show."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name: str) -> str:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)],
                          capture_output=True, text=True, timeout=300, check=True)
    return done.stdout


def test_perceptron_example_learns():
    """The two-layer perceptron's loss falls and it fits its data (the course's demo)."""
    rows = [line.split() for line in run_example("perceptron.py").splitlines()
            if line.startswith("epoch")]
    losses = [float(r[r.index("loss") + 1]) for r in rows]
    accuracy = float(rows[-1][rows[-1].index("accuracy") + 1])
    assert len(losses) >= 5 and losses[-1] < losses[0] / 2 and accuracy > 0.9


def test_targets_example_shows_reweighting_helps_the_rare_class():
    """On 90/7/3 imbalanced data, inverse-frequency class weights raise the balanced accuracy
    and the recall of the 3% class over plain one-hot cross-entropy (the course's claim)."""
    table = {}
    for line in run_example("targets.py").splitlines():
        parts = line.rsplit(maxsplit=2)
        if len(parts) == 3 and parts[1].replace(".", "").isdigit():
            table[parts[0].strip()] = (float(parts[1]), float(parts[2]))
    plain = table["one-hot cross-entropy"]
    weighted = table["class-weighted (inverse frequency)"]
    assert weighted[0] > plain[0] + 0.1 and weighted[1] > plain[1] + 0.2
    assert {"label smoothing 0.1", "focal, gamma 2"} <= set(table)
