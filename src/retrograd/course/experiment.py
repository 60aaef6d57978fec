"""What one course experiment is: a claim from course-0, a function that measures it, a verdict.

Each experiment is a module `eNN_<name>.py` in this package that defines `EXPERIMENT`. The runner
finds them by name, so adding a claim is adding one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    """What an experiment measured.

    measured: the numbers behind the verdict, JSON-serialisable (floats, ints, lists, strings).
    holds: the verdict, computed from `measured` (never a constant).
    summary: one or two sentences stating the measured numbers in words.
    figure: the PNG's file name inside the output folder (None if the experiment draws none).
    notes: corrections to the course's text (a sign slip, a typo) and other remarks.
    table: the report's "measured" rows, (readable label, value with its unit), built from
    `measured` (tables.py formats the numbers); empty: the report lists `measured` itself.
    condition: where the claim holds only in part or under a condition, that condition in one
    sentence with its numbers; the report prints it in the verdict line.
    stepper: the file name, inside the output folder, of a recorded graph (save_stepper) that the
    report embeds as a backward-pass stepper.

    Text may hold inline math between dollar signs ($p_i − δ_{iĉ}$), rendered as MathML.
    """

    measured: dict
    holds: bool
    summary: str
    figure: str | None = None
    notes: list[str] = field(default_factory=list)
    table: list[tuple[str, str]] = field(default_factory=list)
    condition: str = ""
    stepper: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A claim of the course and the code that checks it.

    id: short slug, e.g. "softmax-sums-to-one"; number: the claim's number in the issue (1..16).
    formula: the formula in plain text / Unicode (claims.json, terminals).
    run(quick, out_dir) -> Result: quick=True must take a few seconds; it writes its figure into
    out_dir and returns the file name in Result.figure.
    tex: the same formula in the TeX subset of retrograd.viz.mathml, one display line per text
    line; the report renders it as MathML (and prints `formula` when tex is empty).
    """

    number: int
    id: str
    claim: str
    formula: str
    run: Callable[[bool, str], Result]
    tex: str = ""


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_stepper(tensor, out_dir: str, name: str, title: str, params=None) -> str:
    """Record the graph behind `tensor` and its backward (retrograd.viz.graph) into
    out_dir/name as JSON, with the title the report shows; returns `name` for Result.stepper."""
    import json

    from ..viz import graph

    data = {"title": title, "graph": graph(tensor, params=params).to_dict()}
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        json.dump(data, f)
    return name


def save_figure(fig, out_dir: str, name: str) -> str:
    """Write `fig` as out_dir/name (PNG), close it, and return `name` for Result.figure."""
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), format="png", dpi=100)
    pyplot().close(fig)
    return name
