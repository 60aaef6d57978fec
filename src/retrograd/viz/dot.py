"""DOT text for a Graph (no dependency), and SVG through Graphviz (the `dot` program and the
`graphviz` Python package, imported only here)."""

from __future__ import annotations

import shutil
import warnings

_INSTALL = ("drawing SVG needs Graphviz: apt-get install graphviz (the dot program) and "
            "pip install graphviz (or retrograd[test])")
_STYLE = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#2b5d8a"',
    "param": 'shape=ellipse, style=filled, fillcolor="#e3f1df", color="#3d7a35"',
    "input": 'shape=ellipse, style=filled, fillcolor="#f1f1f1", color="#777777"',
    "constant": 'shape=note, style=filled, fillcolor="#fbf3dc", color="#8a6d1f"',
}


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, lines as \\n."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r", "").replace("\n", "\\n") + '"'


def shape_text(shape) -> str:
    """(2, 3) for a shape, () for a scalar, as Python prints a tuple."""
    return str(tuple(shape))


def value_text(summary: dict) -> str:
    """A one-line summary of an array's values: the value itself for one element, else its
    mean and range."""
    if "mean" not in summary:
        return ""
    if summary.get("size") == 1:
        values = summary.get("values")
        while isinstance(values, list):
            values = values[0]
        return f"= {_g(values)}"
    return f"mean {_g(summary['mean'])}, range [{_g(summary['min'])}, {_g(summary['max'])}]"


def _g(x) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else str(x)


def label(v) -> str:
    """A vertex's label lines: its name, what a fused node fuses, parameters, shape, values."""
    from .formulas import formula_for

    lines = [v.label]
    if v.kind == "op":
        fuses = formula_for(v.prim).fuses
        if fuses:
            lines.append(f"fuses: {fuses}")
        if v.detail:
            lines.append(v.detail)
    lines.append(f"{shape_text(v.shape)} {v.dtype}")
    values = value_text(v.summary)
    if values:
        lines.append(values)
    return "\n".join(lines)


def to_dot(graph) -> str:
    """The Graph as DOT: data flows top to bottom, the output's box is drawn bold."""
    out = ["digraph retrograd {",
           '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.3, ranksep=0.45];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    for v in graph.vertices:
        extra = ", penwidth=2.5" if v.id == graph.root else ""
        out.append(f"  {v.id} [label={_quote(label(v))}, {_STYLE[v.kind]}{extra}];")
    for e in graph.edges:
        out.append(f"  {e.source} -> {e.target} [label={_quote(shape_text(e.shape))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(dot_text: str) -> str:
    """Render DOT text with Graphviz; ImportError / RuntimeError saying what to install."""
    try:
        import graphviz
    except ImportError:
        raise ImportError(_INSTALL) from None
    if shutil.which("dot") is None:
        raise RuntimeError(_INSTALL)
    return graphviz.Source(dot_text).pipe(format="svg").decode("utf-8")


def to_svg_or_none(dot_text: str) -> str | None:
    """to_svg, or None with a one-line warning when Graphviz is missing (for Jupyter, which then
    shows the plain repr)."""
    try:
        return to_svg(dot_text)
    except (ImportError, RuntimeError) as exc:
        warnings.warn(str(exc), stacklevel=3)
        return None
