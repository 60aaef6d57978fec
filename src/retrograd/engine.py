"""The backward pass: nodes newest first off a heap (any depth, no recursion), one VJP call per
node, in the one calling convention of the primitive table (retrograd.ops.registry).

Without create_graph, VJPs run on raw arrays (`ops.array_namespace` of the arrays' backend): no
tensor is wrapped and no node is made, so a plain backward costs what the hand-written NumPy
would. With create_graph, they run on Tensors (the tensor layer's namespace, made by the
`graph_ops` it passes in) with grad mode on, so the gradients they return are differentiable.

`Node` is one recorded application of a primitive, made by tensor.apply; tensors are known
here only by their attributes (_data, _node): tensor.py builds on this module, never the other
way round.
"""

from __future__ import annotations

import heapq
import itertools
import operator

from . import backend
from .grad_mode import set_grad_enabled
from .ops import array_namespace

_SEQUENCE = itertools.count()


class Node:
    """One recorded application of a primitive; its backward is the primitive's VJP.

    Everything backward needs is gathered once, by `apply`: the arguments as given (`args`:
    tensors and constants) and the arrays behind them (`arrays`), the keyword parameters, the
    output array `out`, the edges (argument position, tensor) along which gradients flow, and
    each tensor argument's version at record time. `seq` is the creation number.
    """

    __slots__ = ("prim", "args", "arrays", "params", "out", "saved", "out_vc", "versions",
                 "edges", "wanted", "seq")

    def __init__(self, prim, args: tuple, arrays: list, params: dict, out,
                 saved, versions: list, edges: list, wanted: list):
        self.prim = prim
        self.args = args
        self.arrays = arrays
        self.params = params
        self.out = out
        self.saved = saved
        self.out_vc = [0]
        self.versions = versions  # (version counter, its value when recorded) per tensor arg
        self.edges = edges  # (argument position, tensor) for each argument that requires grad
        self.wanted = wanted  # those positions
        # creation order: every node is made after the nodes of its inputs, so decreasing seq
        # is a topological order for the backward pass
        self.seq = next(_SEQUENCE)

    def name(self) -> str:
        return "".join(part.capitalize() for part in self.prim.name.split("_")) + "Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


_OBSERVERS: list = []  # callbacks of `observing`, innermost last
_HOST, _HOST_ARRAY = backend.host, backend.host.ndarray  # backend.of's NumPy fast path
_ARRAY_OPS: dict = {}  # backend: its array namespace (ops.array_namespace keeps it current)


class observing:
    """Within this block the backward calls `callback(node, grad)` for each node it runs, in
    the order it runs them, just before the node's VJP: `grad` is the gradient of the node's
    output (an array; a Tensor under create_graph). For tools that step through a backward
    (a graph stepper); a callback that keeps `grad` keeps the engine from overwriting it."""

    def __init__(self, callback):
        self.callback = callback

    def __enter__(self):
        _OBSERVERS.append(self.callback)
        return self.callback

    def __exit__(self, *exc):
        # the innermost registration of this callback (the same callback may be nested)
        for k in range(len(_OBSERVERS) - 1, -1, -1):
            if _OBSERVERS[k] is self.callback:
                del _OBSERVERS[k]
                break
        return False


class retain_graphs:
    """Within this block, backward() keeps graphs by default (retain_graph=True), so a caller
    (a second-order optimizer) can still differentiate a loss that a closure already
    back-propagated."""

    active = False

    def __enter__(self):
        self.prev, retain_graphs.active = retain_graphs.active, True
        return self

    def __exit__(self, *exc):
        retain_graphs.active = self.prev
        return False


def _topological_order(roots: list) -> list:
    """Nodes reachable from `roots`, each before all of its inputs (iterative: any depth), for
    `_needed`, which must see the whole graph before the backward runs.

    A node is always created after the nodes of its inputs, so sorting the reachable nodes by
    decreasing creation number is a topological order.
    """
    seen = set(roots)
    stack = list(seen)
    while stack:
        node = stack.pop()
        if node.edges is None:
            _raise_freed()
        for _, a in node.edges:
            child = a._node
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(seen, key=_CREATION, reverse=True)


_CREATION = operator.attrgetter("seq")



def _raise_freed() -> None:
    raise RuntimeError(
        "trying to backward through the graph a second time: its saved arrays were "
        "freed by the first backward; pass retain_graph=True to the first one")


def _raise_modified(node) -> None:
    for vc, saved in node.versions:
        if vc[0] != saved:
            raise RuntimeError(
                f"an input of {node.name()} was modified by an in-place operation after the "
                f"forward pass used it (version {vc[0]}, expected {saved}); "
                "compute the forward pass again after changing it")
    raise RuntimeError(f"the output of {node.name()} was modified by an in-place operation "
                       "after the forward pass; compute the forward pass again")


def _fit(g, like, ops):
    """Sum a broadcast gradient back to its argument's shape and give it the argument's dtype:
    the one place where broadcasting and type promotion are undone."""
    shape, dtype = like.shape, like.dtype
    if g.shape != shape:
        g = ops.sum_to(g, shape=shape)
    if g.dtype != dtype:
        g = ops.astype(g, dtype=dtype)
    return g


def run_backward(roots, root_grads, *, graph_ops=None, targets=None, create_graph=False,
                 retain_graph=False) -> dict:
    """Propagate `root_grads` from `roots` (tensors with nodes) down the graph.

    Returns {tensor: gradient} for every leaf that requires grad (targets=None), or for the
    given target tensors, which may be leaves or intermediate results. Under create_graph the
    VJPs run on `graph_ops(xp)`, the tensor layer's namespace for backend xp (`output(node)`
    and one recording function per primitive).
    """
    needed = capture = None
    if targets is not None:
        needed = _needed(_topological_order([r._node for r in roots]), targets)
        capture = {t._node: t for t in targets if t._node is not None}
    grads: dict = {}  # pending gradient of each node's output
    pending: list = []  # the nodes with a gradient, a heap by decreasing creation number
    for root, g in zip(roots, root_grads, strict=True):
        node = root._node
        if node in grads:
            grads[node] = grads[node] + g
        else:
            grads[node] = g
            heapq.heappush(pending, (-node.seq, node))
    results: dict = {}

    out = roots[0]._node.out
    xp = _HOST if type(out) is _HOST_ARRAY else backend.of(out)
    if create_graph:
        if graph_ops is None:
            raise ValueError("run_backward: create_graph needs the tensor namespace graph_ops")
        with set_grad_enabled(True):
            _propagate(pending, grads, results, needed, capture, graph_ops, True, retain_graph,
                       xp)
    else:  # VJPs on arrays record nothing, whatever the grad mode
        _propagate(pending, grads, results, needed, capture, _array_ops, False, retain_graph,
                   xp)
    return results


def _array_ops(xp):
    """The plain backward's `ops` for backend xp (made once per backend)."""
    ops = _ARRAY_OPS.get(xp)
    if ops is None:
        ops = _ARRAY_OPS[xp] = array_namespace(xp)
    return ops


def _propagate(pending, grads, results, needed, capture, ops_for, create_graph,
               retain_graph, xp) -> None:
    """The backward loop: each node's gradient `grads[node]` through its VJP into its inputs'
    entries (leaves: `results`).

    Nodes run in decreasing creation number, taken from the heap `pending`, to which a node is
    added when it first receives a gradient: every node that uses a node's output was created
    after it, so by the time a node comes off the heap all of its gradient has arrived. Nodes
    that no gradient reaches are never visited, and no separate graph traversal is needed.
    `ops_for(xp)` is the VJPs' namespace for backend xp: arrays, or under create_graph tensors
    of the new graph. A node whose output lives on another backend than the last one (a graph
    that crossed devices with .to()) switches namespace; the backend's `may_overwrite` proves
    that a gradient array is private.
    """
    observers = _OBSERVERS
    ops = ops_for(xp)
    may_overwrite = xp.may_overwrite
    array_type = xp.ndarray
    while pending:
        node = heapq.heappop(pending)[1]
        g = grads.pop(node)
        if node.edges is None:
            _raise_freed()
        if capture and node in capture:
            results[capture[node]] = g
        if needed is not None and node not in needed:
            if not retain_graph:  # the graph is used up: drop what the node holds for it
                node.args = node.arrays = node.edges = node.out = node.saved = None
            continue
        for vc, version in node.versions:
            if vc[0] != version:
                _raise_modified(node)
        if node.out_vc[0] != 0:
            _raise_modified(node)
        if type(node.out) is not array_type:  # (never on a one-device graph)
            xp = backend.of(node.out)
            ops, may_overwrite, array_type = ops_for(xp), xp.may_overwrite, xp.ndarray
        prim, params = node.prim, node.params
        if prim.saves:
            # the forward's saved arrays, for a VJP that may overwrite them: given away (a
            # copy while the graph is retained); None under create_graph, where VJPs recompute
            saved = node.saved
            if create_graph or saved is None:
                saved = None
            elif retain_graph:
                saved = {k: xp.copy(a) if backend.is_array(a) else a for k, a in saved.items()}
            else:
                node.saved = None
            params = {**params, "saved": saved}
        if create_graph:
            args, out = node.args, ops.output(node)
        else:
            args, out = node.arrays, node.out
        edges, wanted = node.edges, node.wanted
        if needed is not None:
            edges = [(i, a) for i, a in edges
                     if (a if a._node is None else a._node) in needed]
            wanted = [i for i, _ in edges]
        if observers:
            for callback in tuple(observers):
                callback(node, g)
        # only an array that nothing else holds (not another node's pending gradient, not a
        # captured result, not an observer's) may be overwritten by the VJP
        private = prim.overwrites_g and not create_graph and may_overwrite(g)
        input_grads = prim.vjp(ops, g, out, args, params, wanted, private)
        for i, a in edges:
            gi = input_grads[i]
            if gi is None:  # an argument without a gradient (a label, a condition)
                continue
            data = a._data
            if gi.shape != data.shape or gi.dtype != data.dtype:
                gi = _fit(gi, data, ops)
            child = a._node
            if child is None:
                results[a] = results[a] + gi if a in results else gi
            elif child in grads:
                grads[child] = grads[child] + gi
            else:
                grads[child] = gi
                heapq.heappush(pending, (-child.seq, child))
        # no stale reference may make the next gradient look shared
        gi = g = input_grads = None
        if not retain_graph:
            node.args = node.arrays = node.edges = node.out = node.saved = None


def _needed(order: list, targets) -> set:
    """The nodes (and target leaves) through which some target is reachable. Gradients flow
    only along edges (arguments that required grad when recorded), so edges are all it reads."""
    needed = {t if t._node is None else t._node for t in targets}
    for node in reversed(order):  # inputs before the nodes that use them
        if node in needed:
            continue
        for _, a in node.edges:
            if a in needed or (a._node is not None and a._node in needed):
                needed.add(node)
                break
    return needed


def root_gradient(data, gradient) -> object:
    """The gradient a backward starts from, for an output array `data`: ones for a scalar when
    `gradient` is None, else a copy of the array `gradient` in data's dtype (the caller's array
    must never end up as some .grad)."""
    xp = _HOST if type(data) is _HOST_ARRAY else backend.of(data)
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {data.shape} needs a `gradient` of that "
                "shape; a gradient is implied only for single-element (scalar) outputs such as "
                "a loss")
        return xp.ones(data.shape, data.dtype) if data.ndim else xp.asarray(1, data.dtype)
    g = xp.asarray(gradient)
    if g.shape != data.shape:
        raise ValueError(f"gradient has shape {g.shape} but the tensor has shape {data.shape}")
    return g.astype(data.dtype)  # a copy
