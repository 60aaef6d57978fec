"""retrograd.viz: computation graphs drawn (DOT, SVG) and backpropagation stepped through (one
offline HTML page), from the graph retrograd actually recorded.

    g = retrograd.viz.graph(loss, params=model)   # before loss.backward()
    g.save("graph.html")                          # the stepper; .dot and .svg too
    loss.backward()

NumPy alone is needed for graph(), .dot() and .html(); .svg() needs Graphviz.
"""

from __future__ import annotations

from .graph import BackwardStep, Edge, Graph, Vertex, graph, summarize
from .mathml import inline_math, mathml


def save_training_graph(model, loss_fn, x, y, path: str, title: str | None = None) -> Graph:
    """graph(loss_fn(model(x), y), params=model) saved to `path` (.html, .dot or .svg): one
    forward and one recorded backward; the model's `.grad`s are left untouched."""
    from ..tensor import Tensor

    x = x if isinstance(x, Tensor) else Tensor(x)
    loss = loss_fn(model(x), y)
    g = graph(loss, params=model)
    if title is not None and str(path).lower().endswith((".html", ".htm")):
        with open(path, "w", encoding="utf-8") as f:
            f.write(g.html(title))
    else:
        g.save(path)
    return g


__all__ = ["graph", "Graph", "Vertex", "Edge", "BackwardStep", "summarize", "mathml",
           "inline_math", "save_training_graph"]
