"""Elementwise primitives: arithmetic, functions, where, clamp, casts.

Broadcasting is undone in one place, the engine: a VJP here returns the gradient in the output's
shape and the engine sums it back to each argument's shape (and casts it to its dtype).
"""

from __future__ import annotations

from .. import backend
from .registry import primitive


def _sigmoid(xp, x):
    # exp(-|x|) never overflows, and e / (1 + e) keeps full relative precision in the left tail,
    # where 1 - 1 / (1 + e) would round to 0.
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


# pow follows torch's conventions where the calculus formula would give 0 * inf:
# the slope in x is 0 wherever the exponent is 0, and the slope in y is 0 where x == 0 <= y.
def _pow_vjp_x(ops, g, out, x, y):
    zero = ops.raw(y) == 0
    if not ops.xp.any(zero):
        return g * y * x ** (y - 1)
    y = ops.where(zero, 1, y)
    return ops.where(zero, 0, g * y * x ** (y - 1))


def _pow_vjp_y(ops, g, out, x, y):
    at_zero = (ops.raw(x) == 0) & (ops.raw(y) >= 0)
    if ops.xp.any(at_zero):
        x = ops.where(at_zero, 1, x)  # log 1 = 0 there
    return g * out * ops.log(x)


# arithmetic
primitive("add", lambda xp, x, y: xp.add(x, y),
          lambda ops, g, out, x, y: g,
          lambda ops, g, out, x, y: g, elementwise=True)
primitive("sub", lambda xp, x, y: xp.subtract(x, y),
          lambda ops, g, out, x, y: g,
          lambda ops, g, out, x, y: -g, elementwise=True)
primitive("mul", lambda xp, x, y: xp.multiply(x, y),
          lambda ops, g, out, x, y: g * y,
          lambda ops, g, out, x, y: g * x, elementwise=True)
primitive("div", lambda xp, x, y: xp.divide(x, y),
          lambda ops, g, out, x, y: g / y,
          lambda ops, g, out, x, y: -g * out / y, elementwise=True, domain=("real", "nonzero"))
primitive("pow", lambda xp, x, y: xp.power(x, y), _pow_vjp_x, _pow_vjp_y, elementwise=True,
          domain=("positive", "real"))
primitive("neg", lambda xp, x: xp.negative(x), lambda ops, g, out, x: -g, elementwise=True)

# functions
primitive("exp", lambda xp, x: xp.exp(x), lambda ops, g, out, x: g * out, elementwise=True)
primitive("log", lambda xp, x: xp.log(x), lambda ops, g, out, x: g / x, elementwise=True,
          domain=("positive",))
primitive("sqrt", lambda xp, x: xp.sqrt(x), lambda ops, g, out, x: g / (out + out),
          elementwise=True, domain=("positive",))
primitive("abs", lambda xp, x: xp.abs(x), lambda ops, g, out, x: g * ops.sign(x),
          elementwise=True, domain=("nonzero",))
primitive("sign", lambda xp, x: xp.sign(x), lambda ops, g, out, x: g * 0, elementwise=True,
          domain=("nonzero",))
primitive("tanh", lambda xp, x: xp.tanh(x), lambda ops, g, out, x: g * (1 - out * out),
          elementwise=True)
primitive("sigmoid", _sigmoid, lambda ops, g, out, x: g * out * (1 - out), elementwise=True)
primitive("softplus", lambda xp, x: xp.logaddexp(0, x), lambda ops, g, out, x: g * ops.sigmoid(x),
          elementwise=True)
# NOTE: relu's mask comes from its output, so the forward result is all the VJP keeps alive.
primitive("relu", lambda xp, x: xp.maximum(x, 0),
          lambda ops, g, out, x: g * (ops.raw(out) > 0), elementwise=True, domain=("nonzero",))
# torch.clamp passes the gradient where min <= x <= max, i.e. exactly where the output equals x.
primitive("clamp", lambda xp, x, min=None, max=None: xp.clip(x, min, max),
          lambda ops, g, out, x, min=None, max=None: g * (ops.raw(out) == ops.raw(x)),
          elementwise=True)

# selection and casts
primitive("where", lambda xp, c, x, y: xp.where(c, x, y),
          None,
          lambda ops, g, out, c, x, y: ops.where(c, g, 0),
          lambda ops, g, out, c, x, y: ops.where(c, 0, g), elementwise=True,
          domain=("bool", "real", "real"))
# a copy onto another device (Tensor.to(device)); the gradient goes back to the input's device
primitive("to_device", lambda xp, x, device: backend.move(x, device),
          lambda ops, g, out, x, device: ops.to_device(g, device=_device_of(ops.raw(x))))


def _device_of(a):
    return backend.of(a).device_of(a)


primitive("astype", lambda xp, x, dtype: x.astype(dtype),
          lambda ops, g, out, x, dtype: ops.astype(g, dtype=x.dtype))
