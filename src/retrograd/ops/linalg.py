"""Products: matmul, and Linear (with and without its ReLU) as one node each, whose joint VJPs
share the work their gradients have in common."""

from __future__ import annotations

from .registry import primitive


# matmul follows np.matmul's rules for 1-D operands: a vector is promoted to a matrix and the
# added axis removed from the result, so its gradient removes it again.
def _drop_last(a):
    return a.reshape(a.shape[:-1])


def _matmul_vjp_x(ops, g, out, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * y
    if y.ndim == 1:
        return g.reshape(g.shape + (1,)) * y
    if x.ndim == 1:
        return _drop_last(y @ g.reshape(g.shape + (1,)))
    return g @ y.mT


def _matmul_vjp_y(ops, g, out, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:
        return x.reshape(x.shape + (1,)) * g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    if y.ndim == 1:
        return _drop_last(x.mT @ g.reshape(g.shape + (1,)))
    return x.mT @ g


primitive("matmul", lambda xp, x, y: xp.matmul(x, y), _matmul_vjp_x, _matmul_vjp_y,
          into=lambda xp, out, x, y: xp.matmul(x, y, out=out))


def _linear(xp, x, weight, bias=None):
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


def _linear_relu(xp, x, weight, bias=None):
    out = x @ weight.T  # _linear's body, not a call: this runs once per layer and step
    if bias is not None:
        out += bias
    return xp.maximum(out, 0, out=out)


def _linear_into(xp, out, x, weight, bias=None):
    """_linear written into `out` (the same product, then the same bias pass)."""
    xp.matmul(x, weight.T, out=out)
    if bias is not None:
        out += bias
    return out


def _linear_relu_into(xp, out, x, weight, bias=None):
    xp.matmul(x, weight.T, out=out)
    if bias is not None:
        out += bias
    return xp.maximum(out, 0, out=out)


def _linear_vjp(ops, g, out, x, w, b=None, *, wanted, g_private=False):
    """(d x, d W, d b) of x @ W.T + b for cotangent g; x may have leading batch axes."""
    gx = g @ w if 0 in wanted else None
    if g.ndim != 2:  # fold the batch axes: the weight's gradient sums over all of them
        g, x = g.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
    if 1 in wanted:  # in the weight's memory order, so the optimizer's passes stay contiguous
        gw = (x.T @ g).T if ops.xp.column_major(ops.raw(w)) else g.T @ x
    else:
        gw = None
    if b is None:
        return gx, gw
    return gx, gw, (g.sum(axis=0) if 2 in wanted else None)


def _linear_relu_vjp(ops, g, out, x, w, b=None, *, wanted, g_private=False):
    """The linear VJP of g where the ReLU passed its input, 0 elsewhere; the gate is applied
    in place when the engine says no one else holds g (as hand-written NumPy would)."""
    if g_private:
        g *= out > 0
    else:
        g = g * (ops.raw(out) > 0)
    return _linear_vjp(ops, g, out, x, w, b, wanted=wanted)


# Linear as one node: x @ W.T + b, so a layer costs one node forward and one backward.
primitive("linear", _linear, joint=_linear_vjp, arity=3, into=_linear_into)
# relu(x @ W.T + b) as one node: the ReLU runs in place on the fresh product (nn.Sequential
# fuses Linear followed by ReLU into it).
primitive("linear_relu", _linear_relu, joint=_linear_relu_vjp, arity=3,
          into=_linear_relu_into)
