"""The primitive table: every differentiable operation, its forward and its VJPs side by side.

A primitive's forward maps ndarrays (plus keyword parameters such as `axis`) to one ndarray. Its
vector-Jacobian products, one per positional argument, map the output's cotangent `g` to that
argument's cotangent, with the signature ``vjp(xp, g, out, *args, **params)``. A layer whose
gradients share work (Linear, Linear + ReLU) gives one joint VJP for all its arguments instead
(see `primitive`).

Every VJP is written once, against `xp`: a namespace with one function per primitive. During a plain
``backward()`` the engine passes ``ARRAY_NS``, whose functions are the forwards themselves, and all
arguments are raw ndarrays, so no graph is built and nothing is wrapped. Under
``create_graph=True`` it passes the Tensor namespace, whose functions record graph nodes, so the
very same VJP code produces a differentiable gradient (Hessian-vector products need exactly that).
Besides `xp.<primitive>`, VJPs use only what ndarray and Tensor share: the operators
``+ - * / ** @ > ==``, ``.T``, ``.mT``, ``.reshape(shape)``, ``.sum(axis=, keepdims=)``,
``.shape``, ``.ndim``, ``.dtype``; ``xp.raw(t)`` gives the ndarray behind a value, for masks that
carry no gradient.

Broadcasting is undone in one place, the engine: a VJP of an elementwise primitive returns the
gradient in the output's shape and the engine sums it back to the argument's shape.

Adding a primitive is one ``primitive(...)`` entry here. Elementwise entries are tested by finite
differences automatically (tests/test_ops_table.py); any other entry must get a case there, and the
suite fails until it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from . import fused_losses as _fl


@dataclass(frozen=True)
class Primitive:
    """One table entry: `forward(*arrays, **params)` and one VJP per positional argument.

    A VJP of None marks an argument that is not differentiable (labels, conditions).
    `variadic` primitives (cat) take any number of arguments; their single VJP is called for
    each one with `arg=i`. `elementwise` primitives broadcast their arguments and are tested
    automatically over scalar, vector, matrix and broadcast shapes, drawing each argument from
    its `domain` ("real", "positive", "nonzero" or "bool").

    A primitive that `saves` returns `(out, saved)` from its forward, `saved` a dict of arrays
    its VJPs would otherwise recompute (the fused losses keep exp(x - max)). During a plain
    backward every VJP of the node receives the same dict as `saved=`: a VJP may overwrite its
    arrays or add intermediates that the node's other VJPs share (the engine hands over a copy
    when the graph is retained). Under create_graph VJPs receive `saved=None` and recompute with
    `xp`, so the gradient stays differentiable.
    """

    name: str
    forward: Callable[..., np.ndarray]
    vjps: tuple[Callable | None, ...]
    elementwise: bool = False
    domain: tuple[str, ...] = ()
    variadic: bool = False
    saves: bool = False
    joint: Callable | None = None


PRIMITIVES: dict[str, Primitive] = {}


def primitive(name, forward, *vjps, elementwise=False, domain=None, variadic=False,
              saves=False, joint=None, arity=None) -> Primitive:
    """Register a primitive in the table (see the module docstring for the VJP signature).

    Instead of one VJP per argument, a primitive may give one `joint` VJP for its `arity`
    arguments, ``joint(xp, g, out, *args, wanted, g_private, **params)``, returning a tuple
    with the gradient of each argument position in `wanted` (None elsewhere), the way torch's
    autograd.Function.backward does: the backward then calls it once per node, and work the
    gradients share (a ReLU's gate, a reshape) is done once. `g_private` is the engine's word
    that nothing else holds the array g, which the VJP may then overwrite. The per-argument
    VJPs are derived from it.
    """
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is already defined")
    if joint is not None:
        vjps = tuple(_one_of(joint, i) for i in range(arity))
    domain = tuple(domain) if domain is not None else ("real",) * len(vjps)
    prim = Primitive(name, forward, tuple(vjps), elementwise, domain, variadic, saves, joint)
    PRIMITIVES[name] = prim
    return prim


def _one_of(joint: Callable, i: int) -> Callable:
    """The VJP of argument i alone, from a joint VJP."""
    def vjp(xp, g, out, *args, **params):
        return joint(xp, g, out, *args, wanted=(i,), g_private=False, **params)[i]
    return vjp


# ----------------------------------------------------------------------------------------------
# shape helpers (plain functions of shapes, used by forwards and VJPs alike)


def kept_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    """The shape a reduction over `axis` has with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def sum_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `x` down to `shape`: the adjoint of broadcasting `shape` up to x.shape."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return x.sum(axis=axes, keepdims=True).reshape(shape)


def _is_basic_index(index) -> bool:
    """True for indices made of ints, slices, None and Ellipsis: they never repeat an element."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def _scatter_add(g: np.ndarray, shape: tuple[int, ...], index) -> np.ndarray:
    """zeros(shape) with g added at `index`; repeated indices accumulate (np.add.at)."""
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows, and e / (1 + e) keeps full relative precision in the left tail,
    # where 1 - 1 / (1 + e) would round to 0.
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


def _amax_share(x, out, axis):
    """Each maximal element's share of the gradient: ties split it evenly, as torch.amax does."""
    hit = x == out.reshape(kept_shape(x.shape, axis))
    return hit / hit.sum(axis=axis, keepdims=True, dtype=x.dtype)


def _cat_vjp(xp, g, out, *xs, axis, arg):
    start = sum(x.shape[axis] for x in xs[:arg])
    index = [slice(None)] * g.ndim
    index[axis] = slice(start, start + xs[arg].shape[axis])
    return xp.getitem(g, index=tuple(index))


# matmul follows np.matmul's rules for 1-D operands: a vector is promoted to a matrix and the
# added axis removed from the result, so its gradient removes it again.
# pow follows torch's conventions where the calculus formula would give 0 * inf:
# the slope in x is 0 wherever the exponent is 0, and the slope in y is 0 where x == 0 <= y.
def _pow_vjp_x(xp, g, out, x, y):
    zero = xp.raw(y) == 0
    if not np.any(zero):
        return g * y * x ** (y - 1)
    y = xp.where(zero, 1, y)
    return xp.where(zero, 0, g * y * x ** (y - 1))


def _pow_vjp_y(xp, g, out, x, y):
    at_zero = (xp.raw(x) == 0) & (xp.raw(y) >= 0)
    if np.any(at_zero):
        x = xp.where(at_zero, 1, x)  # log 1 = 0 there
    return g * out * xp.log(x)


def _drop_last(a):
    return a.reshape(a.shape[:-1])


def _matmul_vjp_x(xp, g, out, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * y
    if y.ndim == 1:
        return g.reshape(g.shape + (1,)) * y
    if x.ndim == 1:
        return _drop_last(y @ g.reshape(g.shape + (1,)))
    return g @ y.mT


def _matmul_vjp_y(xp, g, out, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:
        return x.reshape(x.shape + (1,)) * g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    if y.ndim == 1:
        return _drop_last(x.mT @ g.reshape(g.shape + (1,)))
    return x.mT @ g


# ----------------------------------------------------------------------------------------------
# the table

# elementwise arithmetic
primitive("add", np.add,
          lambda xp, g, out, x, y: g,
          lambda xp, g, out, x, y: g, elementwise=True)
primitive("sub", np.subtract,
          lambda xp, g, out, x, y: g,
          lambda xp, g, out, x, y: -g, elementwise=True)
primitive("mul", np.multiply,
          lambda xp, g, out, x, y: g * y,
          lambda xp, g, out, x, y: g * x, elementwise=True)
primitive("div", np.divide,
          lambda xp, g, out, x, y: g / y,
          lambda xp, g, out, x, y: -g * out / y, elementwise=True, domain=("real", "nonzero"))
primitive("pow", np.power, _pow_vjp_x, _pow_vjp_y, elementwise=True, domain=("positive", "real"))
primitive("neg", np.negative, lambda xp, g, out, x: -g, elementwise=True)

# elementwise functions
primitive("exp", np.exp, lambda xp, g, out, x: g * out, elementwise=True)
primitive("log", np.log, lambda xp, g, out, x: g / x, elementwise=True, domain=("positive",))
primitive("sqrt", np.sqrt, lambda xp, g, out, x: g / (out + out), elementwise=True,
          domain=("positive",))
primitive("abs", np.abs, lambda xp, g, out, x: g * xp.sign(x), elementwise=True,
          domain=("nonzero",))
primitive("sign", np.sign, lambda xp, g, out, x: g * 0, elementwise=True, domain=("nonzero",))
primitive("tanh", np.tanh, lambda xp, g, out, x: g * (1 - out * out), elementwise=True)
primitive("sigmoid", _sigmoid, lambda xp, g, out, x: g * out * (1 - out), elementwise=True)
# NOTE: relu's mask comes from its output, so the forward result is all the VJP keeps alive.
primitive("relu", lambda x: np.maximum(x, 0),
          lambda xp, g, out, x: g * (xp.raw(out) > 0), elementwise=True, domain=("nonzero",))
# torch.clamp passes the gradient where min <= x <= max, i.e. exactly where the output equals x.
primitive("clamp", lambda x, min=None, max=None: np.clip(x, min, max),
          lambda xp, g, out, x, min=None, max=None: g * (xp.raw(out) == xp.raw(x)),
          elementwise=True)
primitive("where", np.where,
          None,
          lambda xp, g, out, c, x, y: xp.where(c, g, 0),
          lambda xp, g, out, c, x, y: xp.where(c, 0, g), elementwise=True,
          domain=("bool", "real", "real"))
primitive("astype", lambda x, dtype: x.astype(dtype),
          lambda xp, g, out, x, dtype: xp.astype(g, dtype=x.dtype))

# linear algebra
primitive("matmul", np.matmul, _matmul_vjp_x, _matmul_vjp_y)


def _linear_relu(x, weight, bias=None):
    out = x @ weight.T  # _linear's body, not a call: this runs once per layer and step
    if bias is not None:
        out += bias
    return np.maximum(out, 0, out=out)


def _linear_vjp(xp, g, out, x, w, b=None, *, wanted, g_private=False):
    """(d x, d W, d b) of x @ W.T + b for cotangent g; x may have leading batch axes."""
    gx = g @ w if 0 in wanted else None
    if g.ndim != 2:  # fold the batch axes: the weight's gradient sums over all of them
        g, x = g.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
    if 1 in wanted:  # in the weight's memory order, so the optimizer's passes stay contiguous
        gw = (x.T @ g).T if _column_major(w) else g.T @ x
    else:
        gw = None
    if b is None:
        return gx, gw
    return gx, gw, (g.sum(axis=0) if 2 in wanted else None)


def _column_major(a) -> bool:
    """A matrix laid out by columns (for a contiguous one: F- but not C-contiguous)."""
    return type(a) is np.ndarray and a.ndim == 2 and a.strides[0] < a.strides[1]


def _linear_relu_vjp(xp, g, out, x, w, b=None, *, wanted, g_private=False):
    """The linear VJP of g where the ReLU passed its input, 0 elsewhere; the gate is applied
    in place when the engine says no one else holds g (as hand-written NumPy would)."""
    if g_private:
        g = np.multiply(g, out > 0, out=g)
    else:
        g = g * (xp.raw(out) > 0)
    return _linear_vjp(xp, g, out, x, w, b, wanted=wanted)


# Linear as one node: x @ W.T + b, so a layer costs one node forward and one backward.
primitive("linear", _linear, joint=_linear_vjp, arity=3)
# relu(x @ W.T + b) as one node: the ReLU runs in place on the fresh product (nn.Sequential
# fuses Linear followed by ReLU into it).
primitive("linear_relu", _linear_relu, joint=_linear_relu_vjp, arity=3)

# reductions
primitive("sum", lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
          lambda xp, g, out, x, axis=None, keepdims=False:
              xp.broadcast_to(g.reshape(kept_shape(x.shape, axis)), shape=x.shape))
primitive("amax", lambda x, axis=None, keepdims=False: np.amax(x, axis=axis, keepdims=keepdims),
          lambda xp, g, out, x, axis=None, keepdims=False:
              g.reshape(kept_shape(x.shape, axis)) * _amax_share(xp.raw(x), xp.raw(out), axis))

# shapes and indexing
primitive("reshape", lambda x, shape: x.reshape(shape),
          lambda xp, g, out, x, shape: xp.reshape(g, shape=x.shape))
primitive("transpose", lambda x, axes: np.transpose(x, axes),
          lambda xp, g, out, x, axes: xp.transpose(g, axes=tuple(np.argsort(axes))))
primitive("broadcast_to", lambda x, shape: np.broadcast_to(x, shape),
          lambda xp, g, out, x, shape: xp.sum_to(g, shape=x.shape))
primitive("sum_to", sum_to,
          lambda xp, g, out, x, shape: xp.broadcast_to(g, shape=x.shape))
primitive("getitem", lambda x, index: x[index],
          lambda xp, g, out, x, index: xp.scatter_add(g, shape=x.shape, index=index))
primitive("scatter_add", _scatter_add,
          lambda xp, g, out, x, shape, index: xp.getitem(g, index=index))
primitive("cat", lambda *xs, axis=0: np.concatenate(xs, axis=axis), _cat_vjp, variadic=True)

# softmax family, each one node with its true Jacobian
primitive("softmax", _softmax,
          lambda xp, g, out, x, axis: out * (g - (g * out).sum(axis=axis, keepdims=True)))
primitive("log_softmax", _log_softmax,
          lambda xp, g, out, x, axis: g - xp.exp(out) * g.sum(axis=axis, keepdims=True))
primitive("softplus", lambda x: np.logaddexp(0, x), lambda xp, g, out, x: g * xp.sigmoid(x),
          elementwise=True)

# Fused losses (fused_losses.py derives each): the course's softmax + cross-entropy against any
# target, whose gradient is p * sum(a) - a, and binary cross-entropy on logits or probabilities.
primitive("softmax_cross_entropy", _fl.softmax_cross_entropy, _fl.softmax_cross_entropy_vjp,
          _fl.softmax_cross_entropy_target_vjp, saves=True)
primitive("bce_with_logits", _fl.bce_with_logits, _fl.bce_with_logits_vjp_x,
          _fl.bce_with_logits_vjp_t)
primitive("bce", _fl.bce, _fl.bce_vjp_p, _fl.bce_vjp_t)


def _array_namespace() -> SimpleNamespace:
    """xp for a plain backward: each primitive is its own forward on ndarrays."""
    def without_saved(forward):
        return lambda *args, **params: forward(*args, **params)[0]

    functions = {n: without_saved(p.forward) if p.saves else p.forward
                 for n, p in PRIMITIVES.items()}
    return SimpleNamespace(raw=lambda a: a, **functions)


ARRAY_NS = _array_namespace()
