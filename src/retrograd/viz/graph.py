"""`graph(t)`: a snapshot of the computation graph recorded behind a tensor, and of the backward
pass that the engine runs through it.

The snapshot is read from `Tensor._node` (one node per primitive actually applied, so a fused
Linear+ReLU or softmax-cross-entropy is one node) while the graph is alive. A backward without
`retain_graph` frees the nodes' arrays, so call `graph(loss)` *before* `loss.backward()`: it
records its own backward (with the graph retained, through `retrograd.autograd.grad`, so no
`.grad` changes) and the loss can still be back-propagated afterwards as usual. The backward's
order is the engine's own, observed with `retrograd.engine.observing`, never re-derived.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .formulas import formula_for

_FULL_VALUES = 48  # arrays up to this many entries (and at most 2-D) are shown whole
_FIRST_VALUES = 6


@dataclass
class Vertex:
    """One drawn node: an operation ("op") or a tensor that no operation made ("param": named by
    its state_dict key; "input": any other leaf; "constant": an array argument).

    summary: shape, dtype and values of its output (values only with show_values); grad: for a
    leaf that requires grad, its gradient from the recorded backward (total over all its uses).
    """

    id: str
    kind: str
    label: str
    shape: list[int]
    dtype: str
    prim: str | None = None
    seq: int | None = None
    detail: str = ""
    requires_grad: bool = False
    summary: dict = field(default_factory=dict)
    grad: dict | None = None
    loss: dict | None = None  # the softmax-CE node's worked numbers (see _loss_panel)


@dataclass
class Edge:
    """A tensor flowing from `source` into argument `position` of the operation `target`."""

    source: str
    target: str
    position: int
    name: str
    shape: list[int]


@dataclass
class BackwardStep:
    """One node as the engine ran it: its id and the gradient of its output at that moment."""

    node: str
    grad: dict


def summarize(a, show_values: bool = True) -> dict:
    """{shape, dtype[, size, min, max, mean, values or first]} of an array, JSON-ready."""
    a = np.asarray(a)
    out: dict = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if not show_values or a.size == 0 or a.dtype.kind not in "biuf":
        return out
    f = a.astype(np.float64)
    out.update(size=int(a.size), min=_num(f.min()), max=_num(f.max()), mean=_num(f.mean()))
    if a.size <= _FULL_VALUES and a.ndim <= 2:
        out["values"] = _nums(f.tolist() if a.ndim else float(f))
    else:
        out["first"] = _nums(f.ravel()[:_FIRST_VALUES].tolist())
    return out


def _num(x: float):
    x = float(x)
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _nums(v):
    return [_nums(x) for x in v] if isinstance(v, list) else _num(v)


def _param_names(params) -> dict[int, str]:
    """id(tensor) -> name, from a Module (state_dict keys) or a dict name -> tensor."""
    if params is None:
        return {}
    from ..tensor import Tensor

    if hasattr(params, "named_parameters"):
        named = list(params.named_parameters())
        named += list(params.named_buffers()) if hasattr(params, "named_buffers") else []
    elif isinstance(params, dict):
        named = list(params.items())
    else:
        raise TypeError(f"graph: params must be a Module or a dict name -> Tensor, got "
                        f"{type(params).__name__}")
    for name, t in named:
        if not isinstance(t, Tensor):
            raise TypeError(f"graph: params[{name!r}] is a {type(t).__name__}, not a Tensor")
    return {id(t): str(name) for name, t in named}


def _raise_freed() -> None:
    raise RuntimeError(
        "graph: the graph behind this tensor was freed by a backward() without "
        "retain_graph=True; call retrograd.viz.graph(loss) before loss.backward() (or pass "
        "retain_graph=True to the backward)")


def _reachable(root_node) -> list:
    """The nodes behind root_node, oldest first (creation order: the forward's order)."""
    from ..tensor import Tensor

    seen, stack = {root_node}, [root_node]
    while stack:
        node = stack.pop()
        if node.args is None:
            _raise_freed()
        for a in node.args:
            if isinstance(a, Tensor) and a._node is not None and a._node not in seen:
                seen.add(a._node)
                stack.append(a._node)
    return sorted(seen, key=lambda n: n.seq)


_QUIET_DEFAULTS = ("smoothing", "gamma", "keepdims")  # printed only when set


def _params_text(params: dict) -> str:
    """The node's non-tensor parameters worth printing (axis=1, reduce_by=4)."""
    shown = []
    for key, value in params.items():
        if value is None or (key in _QUIET_DEFAULTS and not value):
            continue
        if isinstance(value, np.ndarray):
            value = f"array{tuple(value.shape)}" if value.size > 4 else np.round(
                value, 4).tolist()
        elif isinstance(value, float):
            value = f"{value:.4g}"
        shown.append(f"{key}={value}")
    return ", ".join(shown)


def _softmax(o: np.ndarray) -> np.ndarray:
    e = np.exp(o - o.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loss_panel(node, arrays: list, show_values: bool) -> dict | None:
    """The numbers of the course's formula for a plain softmax-CE node on class indices (no
    class weights, smoothing or focal term, 2-D logits): p, one_hot, -log p and (p - one_hot)/N,
    computed here from the recorded inputs; None for any other node."""
    params = node.params
    if node.prim.name != "softmax_cross_entropy" or not show_values or len(arrays) < 2:
        return None
    o, t = np.asarray(arrays[0], np.float64), np.asarray(arrays[1])
    plain = (params.get("weight") is None and not params.get("smoothing")
             and not params.get("gamma") and params.get("sample_weight") is None
             and o.ndim == 2 and t.dtype.kind in "iu" and t.shape == o.shape[:1]
             and params.get("ignore_index") in (None, -100) and bool(np.all(t >= 0)))
    if not plain or o.shape[0] > 8 or o.shape[1] > 10:
        return None
    p = _softmax(o)
    one_hot = np.eye(o.shape[1])[t]
    reduce_by = params.get("reduce_by")
    n = 1.0 if reduce_by is None else float(reduce_by)
    return {"logits": _nums(o.tolist()), "p": _nums(p.tolist()), "target": t.tolist(),
            "one_hot": _nums(one_hot.tolist()),
            "nll": _nums((-np.log(p[np.arange(len(t)), t])).tolist()),
            "divisor": n, "reduced": reduce_by is not None,
            "grad": _nums(((p - one_hot) / n).tolist())}


class Graph:
    """A recorded graph: `vertices`, `edges`, the forward order, the engine's backward order.

    dot(): DOT text (no dependency); svg(): drawn by Graphviz; save(path): .dot, .svg or .html
    (the stepper page, one offline file); to_dict() / from_dict(): JSON-ready form.
    """

    def __init__(self, vertices: list[Vertex], edges: list[Edge], root: str,
                 backward: list[BackwardStep], seed: str = "", show_values: bool = True):
        self.vertices, self.edges, self.root = vertices, edges, root
        self.backward, self.seed, self.show_values = backward, seed, show_values

    # ------------------------------------------------------------------ reading it
    @property
    def operations(self) -> list[Vertex]:
        """The recorded primitives, in the order the forward pass applied them."""
        return sorted((v for v in self.vertices if v.kind == "op"), key=lambda v: v.seq)

    @property
    def forward(self) -> list[str]:
        """Operation ids in forward (creation) order."""
        return [v.id for v in self.operations]

    def vertex(self, vertex_id: str) -> Vertex:
        for v in self.vertices:
            if v.id == vertex_id:
                return v
        raise KeyError(f"graph: no vertex {vertex_id!r}")

    def __repr__(self) -> str:
        n_ops = len(self.operations)
        return (f"<retrograd.viz.Graph: {n_ops} operations, {len(self.vertices) - n_ops} "
                f"leaf tensors, {len(self.edges)} edges, {len(self.backward)} backward steps "
                f"recorded>")

    # ------------------------------------------------------------------ output
    def dot(self) -> str:
        """The graph in Graphviz's DOT language: operations as boxes, parameters and inputs as
        ellipses, each edge labelled with the shape of the tensor it carries."""
        from .dot import to_dot

        return to_dot(self)

    def svg(self) -> str:
        """The graph drawn by Graphviz's `dot` program, as SVG text."""
        from .dot import to_svg

        return to_svg(self.dot())

    def _repr_svg_(self) -> str | None:
        """Jupyter's rich display; None (the plain repr) when Graphviz is not installed."""
        from .dot import to_svg_or_none

        return to_svg_or_none(self.dot())

    def html(self, title: str = "retrograd: a backward pass, step by step") -> str:
        """The stepper: one self-contained page (inline CSS and a small inline script)."""
        from .page import page

        return page(self, title)

    def save(self, path: str) -> str:
        """Write the graph by extension: .dot (DOT text), .svg (Graphviz), .html (the stepper
        page). Returns the path."""
        import os

        ext = os.path.splitext(str(path))[1].lower()
        writers = {".dot": self.dot, ".gv": self.dot, ".svg": self.svg, ".html": self.html,
                   ".htm": self.html}
        if ext not in writers:
            raise ValueError(f"graph.save: unknown extension {ext or '(none)'!r} in {path!r}; "
                             "expected .dot, .svg or .html")
        text = writers[ext]()  # computed first: a failure leaves no partial file
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return str(path)

    def to_dict(self) -> dict:
        """A JSON-ready dict (from_dict reads it back)."""
        return {"vertices": [asdict(v) for v in self.vertices],
                "edges": [asdict(e) for e in self.edges], "root": self.root,
                "backward": [asdict(s) for s in self.backward], "seed": self.seed,
                "show_values": self.show_values}

    @classmethod
    def from_dict(cls, data: dict) -> Graph:
        return cls([Vertex(**v) for v in data["vertices"]], [Edge(**e) for e in data["edges"]],
                   data["root"], [BackwardStep(**s) for s in data["backward"]],
                   data.get("seed", ""), data.get("show_values", True))


def graph(tensor_or_loss, params=None, show_values: bool = True) -> Graph:
    """The graph of primitives recorded behind a tensor, and the engine's backward through it.

    params: a Module (its parameters are named by their state_dict keys) or a dict name ->
    Tensor. Call it before `loss.backward()`: the backward recorded here runs with the graph
    retained and leaves every `.grad` untouched; RuntimeError if a backward already freed the
    graph. A tensor with more than one element is back-propagated from a gradient of ones.
    """
    from ..tensor import Tensor

    if not isinstance(tensor_or_loss, Tensor):
        raise TypeError(f"graph: expected a Tensor, got {type(tensor_or_loss).__name__}")
    names = _param_names(params)
    root_tensor = tensor_or_loss
    vertices: list[Vertex] = []
    edges: list[Edge] = []
    leaf_ids: dict[int, str] = {}
    leaves: list[tuple[str, Tensor]] = []
    node_ids = {}
    if root_tensor._node is None:
        root = _leaf(root_tensor, names, "tensor", vertices, leaf_ids, leaves, show_values)
        return Graph(vertices, edges, root, [], "", show_values)

    nodes = _reachable(root_tensor._node)
    for k, node in enumerate(nodes):
        node_ids[node] = f"op{k}"
    for node in nodes:
        form = formula_for(node.prim.name)
        arrays = []
        for i, a in enumerate(node.args):
            role = form.args[i] if i < len(form.args) else f"arg{i}"
            if isinstance(a, Tensor):
                arrays.append(a._data)
                source = (node_ids[a._node] if a._node is not None else
                          _leaf(a, names, role, vertices, leaf_ids, leaves, show_values))
                edges.append(Edge(source, node_ids[node], i, role, list(a.shape)))
            elif isinstance(a, np.ndarray) and a.ndim > 0:
                arrays.append(a)
                cid = f"c{sum(v.kind == 'constant' for v in vertices)}"
                vertices.append(Vertex(cid, "constant", role, list(a.shape), str(a.dtype),
                                       summary=summarize(a, show_values)))
                edges.append(Edge(cid, node_ids[node], i, role, list(a.shape)))
            else:
                arrays.append(a)
        constants = {(form.args[i] if i < len(form.args) else f"arg{i}"): a
                     for i, a in enumerate(node.args)
                     if not isinstance(a, (Tensor, np.ndarray)) and a is not None}
        detail = _params_text({**constants, **node.params})
        vertices.append(Vertex(node_ids[node], "op", form.title, list(node.out.shape),
                               str(node.out.dtype), prim=node.prim.name, seq=node.seq,
                               detail=detail, requires_grad=True,
                               summary=summarize(node.out, show_values),
                               loss=_loss_panel(node, arrays, show_values)))
    root = node_ids[root_tensor._node]
    backward, grads, seed = _record_backward(root_tensor, node_ids, leaves, show_values)
    by_id = {v.id: v for v in vertices}
    for (vid, _), g in zip(leaves, grads, strict=True):
        if g is not None:
            by_id[vid].grad = summarize(g, show_values)
    _compare_loss_gradient(vertices, edges, backward)
    vertices.sort(key=lambda v: (v.kind != "op", v.seq if v.seq is not None else 0))
    return Graph(vertices, edges, root, backward, seed, show_values)


def _compare_loss_gradient(vertices, edges, backward) -> None:
    """For a softmax-CE vertex whose logits come from one operation used nowhere else: the
    largest gap between the gradient the engine handed that operation and g (p - onehot)/N."""
    first = {}
    for step in backward:
        first.setdefault(step.node, step)
    for v in vertices:
        if v.loss is None or v.id not in first:
            continue
        logits = next((e for e in edges if e.target == v.id and e.position == 0), None)
        if logits is None or logits.source not in first or sum(
                1 for e in edges if e.source == logits.source) != 1:
            continue
        g, recorded = first[v.id].grad.get("values"), first[logits.source].grad.get("values")
        if not isinstance(g, (int, float)) or recorded is None:
            continue
        expected = g * np.asarray(v.loss["grad"], dtype=np.float64)
        v.loss["engine_max_abs_diff"] = float(np.abs(np.asarray(recorded) - expected).max())


def _leaf(t, names, role, vertices, leaf_ids, leaves, show_values) -> str:
    """The vertex id of a leaf tensor, made on its first use."""
    if id(t) in leaf_ids:
        return leaf_ids[id(t)]
    vid = f"t{len(leaf_ids)}"
    leaf_ids[id(t)] = vid
    if id(t) in names:
        kind, label = "param", names[id(t)]
    else:
        kind, label = "input", role
    vertices.append(Vertex(vid, kind, label, list(t.shape), str(t.dtype),
                           requires_grad=bool(t.requires_grad),
                           summary=summarize(t._data, show_values)))
    if t.requires_grad:
        leaves.append((vid, t))
    return vid


def _record_backward(root, node_ids, leaves, show_values):
    """Run the backward of `root` (graph retained, .grad untouched) while observing the engine:
    (the steps in its order, each leaf's gradient, a sentence on the seed gradient)."""
    from .. import autograd, engine

    seed = None
    text = "the backward starts from dL/dL = 1"
    if root._data.size != 1:
        seed = np.ones(root.shape, root.dtype)
        text = f"the backward starts from a gradient of ones of shape {tuple(root.shape)}"
    steps: list[BackwardStep] = []

    def observe(node, grad):
        raw = grad._data if hasattr(grad, "_data") else grad  # a Tensor under create_graph
        steps.append(BackwardStep(node_ids.get(node, "?"), summarize(raw, show_values)))

    with engine.observing(observe):
        grads = autograd.grad(root, [t for _, t in leaves], grad_outputs=seed,
                              retain_graph=True, allow_unused=True)
    return steps, [None if g is None else g._data for g in grads], text
