"""The backward pass: nodes newest first off a heap (any depth, no recursion), one VJP call per
(node, input) edge.

Without create_graph, VJPs run on raw ndarrays (`ARRAY_NS`): no tensor is wrapped and no node is
made, so a plain backward costs what the hand-written NumPy would. With create_graph, they run on
Tensors (`GRAPH_NS`) with grad mode on, so the gradients they return are differentiable.
"""

from __future__ import annotations

import contextlib
import heapq
import operator
import sys

import numpy as np

from .grad_mode import set_grad_enabled
from .ops import ARRAY_NS
from .tensor import GRAPH_NS, Node, Tensor, _wrap

# CPython's reference count proves that a gradient array is held nowhere else (NumPy elides
# temporaries the same way); elsewhere, no array is ever taken as private
_refcount = getattr(sys, "getrefcount", lambda _: 1 << 30)


def _owns_view(a: np.ndarray) -> bool:
    """Whether the view `a` alone holds its memory: its base is a whole plain array that only
    `a` refers to (a transposed fresh product, such as a column-major weight's gradient). The
    base's three references: `a`'s, this frame's `base` and getrefcount's argument."""
    base = a.base
    return (type(base) is np.ndarray and base.base is None and base.size == a.size
            and _refcount(base) == 3)


def _topological_order(roots: list[Node]) -> list[Node]:
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

# --- viz hook (issue 18; reconcile with the engine rewrite): observers of the backward ---------
_OBSERVERS: list = []


@contextlib.contextmanager
def observing(callback):
    """While active, the backward calls callback(node, grad) for each node it runs, in the
    order it runs them, just before the node's VJP (grad: the gradient of the node's output, an
    ndarray, or a Tensor under create_graph; the callback must not modify it)."""
    _OBSERVERS.append(callback)
    try:
        yield callback
    finally:
        _OBSERVERS.remove(callback)
# --- end of the viz hook ---------------------------------------------------------------------


def _raise_freed() -> None:
    raise RuntimeError(
        "trying to backward through the graph a second time: its saved arrays were "
        "freed by the first backward; pass retain_graph=True to the first one")


def _raise_modified(node: Node) -> None:
    for vc, saved in node.versions:
        if vc[0] != saved:
            raise RuntimeError(
                f"an input of {node.name()} was modified by an in-place operation after the "
                f"forward pass used it (version {vc[0]}, expected {saved}); "
                "compute the forward pass again after changing it")
    raise RuntimeError(f"the output of {node.name()} was modified by an in-place operation "
                       "after the forward pass; compute the forward pass again")


def _fit(g, like, xp):
    """Sum a broadcast gradient back to its argument's shape and give it the argument's dtype:
    the one place where broadcasting and type promotion are undone."""
    shape, dtype = like.shape, like.dtype
    if g.shape != shape:
        g = xp.sum_to(g, shape=shape)
    if g.dtype != dtype:
        g = xp.astype(g, dtype=dtype)
    return g


def run_backward(roots, root_grads, *, targets=None, create_graph=False, retain_graph=False):
    """Propagate `root_grads` from `roots` (tensors with nodes) down the graph.

    Returns {tensor: gradient} for every leaf that requires grad (targets=None), or for the
    given target tensors, which may be leaves or intermediate results.
    """
    needed = capture = None
    if targets is not None:
        needed = _needed(_topological_order([r._node for r in roots]), targets)
        capture = {t._node: t for t in targets if t._node is not None}
    grads: dict[Node, object] = {}  # pending gradient of each node's output
    pending: list = []  # the nodes with a gradient, a heap by decreasing creation number
    for root, g in zip(roots, root_grads, strict=True):
        node = root._node
        if node in grads:
            grads[node] = grads[node] + g
        else:
            grads[node] = g
            heapq.heappush(pending, (-node.seq, node))
    results: dict[Tensor, object] = {}

    if create_graph:
        with set_grad_enabled(True):
            _propagate(pending, grads, results, needed, capture, True, retain_graph)
    else:  # VJPs on arrays record nothing, whatever the grad mode
        _propagate(pending, grads, results, needed, capture, False, retain_graph)
    return results


def _propagate(pending, grads, results, needed, capture, create_graph, retain_graph) -> None:
    """The backward loop: each node's gradient `grads[node]` through its VJPs into its inputs'
    entries (leaves: `results`).

    Nodes run in decreasing creation number, taken from the heap `pending`, to which a node is
    added when it first receives a gradient: every node that uses a node's output was created
    after it, so by the time a node comes off the heap all of its gradient has arrived. Nodes
    that no gradient reaches are never visited, and no separate graph traversal is needed.
    """
    xp = GRAPH_NS if create_graph else ARRAY_NS
    while pending:
        node = heapq.heappop(pending)[1]
        g = grads.pop(node)
        if node.edges is None:
            _raise_freed()
        if capture and node in capture:
            results[capture[node]] = g
        if needed is not None and node not in needed:
            if not retain_graph:
                _release(node)
            continue
        for vc, version in node.versions:
            if vc[0] != version:
                _raise_modified(node)
        if node.out_vc[0] != 0:
            _raise_modified(node)
        if _OBSERVERS:  # viz hook (issue 18)
            for observe in _OBSERVERS:
                observe(node, g)
        prim, params = node.prim, node.params
        if prim.saves:
            params = {**params, "saved": _hand_over(node, create_graph, retain_graph)}
        if create_graph:
            args, out = node.args, _wrap(node.out, True, node)
        else:
            args, out = node.arrays, node.out
        edges, wanted = node.edges, node.wanted
        if needed is not None:
            edges = [(i, a) for i, a in edges
                     if (a if a._node is None else a._node) in needed]
            wanted = [i for i, _ in edges]
        vjps, joint_vjp = prim.vjps, prim.joint
        if joint_vjp is not None:
            # only an array that nothing else holds (not another node's pending gradient,
            # not a captured result, not a view) may be overwritten by the VJP; the two
            # references are this loop's variable and getrefcount's argument
            private = (not create_graph and _refcount(g) == 2 and g.base is None
                       and g.flags.writeable)
            joint = joint_vjp(xp, g, out, *args, wanted=wanted, g_private=private, **params)
        for i, a in edges:
            child = a._node
            if joint_vjp is not None:
                gi = joint[i]
            elif prim.variadic:
                gi = vjps[0](xp, g, out, *args, **params, arg=i)
            elif vjps[i] is None:
                continue
            else:
                gi = vjps[i](xp, g, out, *args, **params)
            data = a._data
            if gi.shape != data.shape or gi.dtype != data.dtype:
                gi = _fit(gi, data, xp)
            if child is None:
                results[a] = results[a] + gi if a in results else gi
            elif child in grads:
                grads[child] = grads[child] + gi
            else:
                grads[child] = gi
                heapq.heappush(pending, (-child.seq, child))
        gi = g = joint = None  # no stale reference may make the next gradient look shared
        if not retain_graph:
            _release(node)


def _needed(order: list[Node], targets) -> set:
    """The nodes (and target leaves) through which some target is reachable."""
    needed = {t if t._node is None else t._node for t in targets}
    for node in reversed(order):  # inputs before the nodes that use them
        if node in needed:
            continue
        for a in node.args:
            if isinstance(a, Tensor) and (a in needed or
                                          (a._node is not None and a._node in needed)):
                needed.add(node)
                break
    return needed


def _hand_over(node: Node, create_graph: bool, retain_graph: bool) -> dict | None:
    """The forward's saved arrays, for VJPs that may overwrite them: given away (a copy while
    the graph is retained); None under create_graph, where the VJPs recompute."""
    if create_graph or node.saved is None:
        return None
    if retain_graph:
        return {k: np.copy(a) if isinstance(a, np.ndarray) else a for k, a in node.saved.items()}
    saved, node.saved = node.saved, None
    return saved


def _release(node: Node) -> None:
    """Drop what the node holds for its backward: the graph is used up."""
    node.args = node.arrays = node.edges = None
    node.out = None
    node.saved = None


def _root_gradient(t: Tensor, gradient) -> object:
    if gradient is None:
        if t._data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {t.shape} needs a `gradient` of that shape; "
                "a gradient is implied only for single-element (scalar) outputs such as a loss")
        return np.ones(t._data.shape, t._data.dtype) if t.ndim else np.array(1, t._data.dtype)
    g = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient)
    if g.shape != t.shape:
        raise ValueError(f"gradient has shape {g.shape} but the tensor has shape {t.shape}")
    return g.astype(t.dtype)  # a copy: the caller's array must never end up as some .grad


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


def backward(t: Tensor, gradient=None, *, retain_graph=None, create_graph=False) -> None:
    """Tensor.backward: accumulate into `.grad` of every leaf that requires grad."""
    if not t.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (no leaf it "
                           "depends on has requires_grad=True, or it was made under no_grad)")
    g = _root_gradient(t, gradient)
    if t._node is None:  # backward on a leaf itself
        _accumulate(t, _wrap(g))
        return
    if create_graph:
        g = _wrap(g)
    retain = (create_graph or retain_graphs.active) if retain_graph is None else retain_graph
    results = run_backward([t], [g], create_graph=create_graph, retain_graph=retain)
    while results:
        leaf, gi = results.popitem()
        if not create_graph:
            # a `.grad` must own its array: copy unless it is fresh and held by nothing else,
            # such as another leaf's entry (two references: `gi` and getrefcount's argument)
            if _refcount(gi) != 2 or (gi.base is not None and not _owns_view(gi)) \
                    or not gi.flags.writeable:
                gi = gi.copy(order="K")
            gi = _wrap(gi)
        _accumulate(leaf, gi)


def _accumulate(leaf: Tensor, g: Tensor) -> None:
    if leaf.grad is None:
        leaf.grad = g
    elif g.requires_grad or leaf.grad.requires_grad:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad._data += g._data
