"""The primitive table's entry type and its one registration function.

Every primitive is stored in ONE form, whatever way its VJPs were written:

    forward(xp, *arrays, **params) -> out            (or (out, saved) when it `saves`)
    vjp(ops, g, out, args, params, wanted, g_private) -> per-position gradients

`xp` is the arrays' backend (NumPy's namespace plus the seam's functions, see
retrograd.backend). `ops` is a namespace with one function per primitive: on plain arrays during
a plain backward, recording Tensor functions under create_graph, so one VJP serves both; `ops.raw`
gives the array behind a value and `ops.xp` the backend, for work on raw arrays. `args` and
`params` are the node's arguments (a sequence) and keyword parameters (a dict). `vjp` returns a
sequence indexed by argument position holding the gradient of each position in `wanted` (None
elsewhere, or where the argument has no gradient). `g_private` is the engine's word that nothing
else holds the array `g`, which the VJP may then overwrite.

`primitive(...)` accepts three ways of writing the VJPs and turns each into that form when the
primitive is registered (as HIPS autograd's defvjp turns per-argument VJPs into vjp_argnums,
whose arguments and keyword arguments also travel as a tuple and a dict): one VJP per argument
``vjp_i(ops, g, out, *args, **params)``; one `joint` VJP for all arguments, ``joint(ops, g, out,
*args, wanted, g_private, **params)`` returning the per-position gradients (Linear: its
gradients share work); or, for `variadic` primitives (cat), one VJP called for each argument
with ``arg=i``. The engine then has one call and one loop. (Arguments travel as a tuple and a
dict rather than spread: each wrapper then costs one cheap call, not a re-packing of the keyword
parameters.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

DOMAINS = ("real", "positive", "nonzero", "bool")


@dataclass(frozen=True, eq=False)
class Primitive:
    """One table entry (see the module docstring for `forward` and `vjp`).

    `arity` is the number of positional arguments (None: any, for variadic primitives) and
    `differentiable` the positions that have a gradient (labels, conditions have none).
    `elementwise` primitives broadcast their arguments and are tested automatically over
    scalar, vector, matrix and broadcast shapes, drawing each argument from its `domain`
    ("real", "positive", "nonzero" or "bool").

    A primitive that `saves` returns `(out, saved)` from its forward, `saved` a dict of arrays
    its VJP would otherwise recompute (the fused losses keep exp(x - max)). During a plain
    backward the VJP receives it as `saved=` and may overwrite its arrays (the engine hands
    over a copy when the graph is retained); under create_graph it receives `saved=None` and
    recomputes with `ops`, so the gradient stays differentiable.
    """

    name: str
    forward: Callable
    vjp: Callable
    arity: int | None
    differentiable: frozenset | None  # None: every position (variadic)
    elementwise: bool = False
    domain: tuple[str, ...] = ()
    saves: bool = False
    # whether the VJP can use g_private (joint VJPs): the engine proves privacy only for those
    overwrites_g: bool = False
    # optional: into(xp, out, *arrays, **params) -> out, the forward written into `out` (an
    # array of the output's shape and dtype that nothing else holds), bit for bit the
    # forward's result; a compiled replay then reuses its last output (compiled/program.py)
    into: Callable | None = None

    def has_gradient(self, i: int) -> bool:
        """Whether argument position i receives a gradient."""
        return self.differentiable is None or i in self.differentiable


PRIMITIVES: dict[str, Primitive] = {}


def primitive(name: str, forward: Callable, *vjps: Callable | None, joint: Callable | None = None,
              arity: int | None = None, variadic: bool = False, elementwise: bool = False,
              domain=None, saves: bool = False, register: bool = True,
              into: Callable | None = None) -> Primitive:
    """Define a primitive and (unless register=False) add it to the table under `name`.

    Give either one VJP per positional argument (None for an argument without a gradient),
    or `joint` with `arity`, or `variadic=True` with one VJP that takes `arg=i`. `into` is an
    optional forward that writes into a given output array (see Primitive.into).
    """
    if register and name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is already defined")
    if sum((bool(vjps), joint is not None)) != 1:
        raise TypeError(f"primitive {name!r}: give per-argument VJPs or one joint VJP, not "
                        f"{'both' if vjps else 'neither'}")
    if joint is not None:
        if variadic or not isinstance(arity, int) or arity < 1:
            raise TypeError(f"primitive {name!r}: a joint VJP needs arity=<number of arguments>")
        vjp, differentiable = _from_joint(joint), None
    elif variadic:
        if len(vjps) != 1 or vjps[0] is None:
            raise TypeError(f"primitive {name!r}: a variadic primitive takes one VJP (with arg=)")
        vjp, arity, differentiable = _from_variadic(vjps[0]), None, None
    else:
        arity = len(vjps)
        differentiable = frozenset(i for i, f in enumerate(vjps) if f is not None)
        vjp = _from_per_argument(tuple(vjps))
    domain = tuple(domain) if domain is not None else ("real",) * (arity or 0)
    if not set(domain) <= set(DOMAINS):
        raise ValueError(f"primitive {name!r}: domains must be among {DOMAINS}, got {domain}")
    if saves and into is not None:
        raise TypeError(f"primitive {name!r}: a forward that saves cannot write into `out`")
    prim = Primitive(name, forward, vjp, arity, differentiable, elementwise, domain, saves,
                     overwrites_g=joint is not None, into=into)
    if register:
        PRIMITIVES[name] = prim
        for ns, function_of in _NAMESPACES:  # the namespaces made before this entry
            setattr(ns, name, function_of(prim))
    return prim


def _from_joint(joint: Callable) -> Callable:
    """The stored form of a joint VJP."""
    def vjp(ops, g, out, args, params, wanted, g_private):
        return joint(ops, g, out, *args, wanted=wanted, g_private=g_private, **params)
    return vjp


def _from_per_argument(vjps: tuple) -> Callable:
    """The stored form of one VJP per argument: each wanted argument's VJP, None elsewhere."""
    if len(vjps) == 1:  # unary and binary without a loop: the common cases, kept cheap
        (only,) = vjps

        def unary_vjp(ops, g, out, args, params, wanted, g_private):
            return (only(ops, g, out, *args, **params),)
        return unary_vjp
    if len(vjps) == 2:
        first, second = vjps

        def binary_vjp(ops, g, out, args, params, wanted, g_private):
            return (first(ops, g, out, *args, **params) if first and 0 in wanted else None,
                    second(ops, g, out, *args, **params) if second and 1 in wanted else None)
        return binary_vjp

    def vjp(ops, g, out, args, params, wanted, g_private):
        grads = [None] * len(args)
        for i in wanted:
            one = vjps[i]
            if one is not None:
                grads[i] = one(ops, g, out, *args, **params)
        return grads
    return vjp


def _from_variadic(one: Callable) -> Callable:
    """The stored form of a variadic primitive's VJP, called once per wanted argument."""
    def vjp(ops, g, out, args, params, wanted, g_private):
        grads = [None] * len(args)
        for i in wanted:
            grads[i] = one(ops, g, out, *args, **params, arg=i)
        return grads
    return vjp


# ----------------------------------------------------------------------------------------------
# the namespace VJPs run on during a plain backward

_NAMESPACES: list[tuple] = []  # (namespace, function_of) of every `namespace` made
_ARRAY_NAMESPACES: dict[str, SimpleNamespace] = {}  # backend name: its array namespace


def namespace(function_of: Callable, **extras) -> SimpleNamespace:
    """A namespace with one function per primitive, `function_of(prim)`, plus `extras`; kept
    complete: a primitive registered later is added to it too."""
    ns = SimpleNamespace(**extras, **{n: function_of(p) for n, p in PRIMITIVES.items()})
    _NAMESPACES.append((ns, function_of))
    return ns


def array_namespace(xp) -> SimpleNamespace:
    """`ops` for a plain backward on backend `xp`: each primitive is its own forward on that
    backend's arrays, so nothing is wrapped and no graph is built; `raw` is the identity and
    `xp` the backend."""
    ns = _ARRAY_NAMESPACES.get(xp.NAME)
    if ns is None:
        ns = _ARRAY_NAMESPACES[xp.NAME] = namespace(
            functools.partial(_array_function, xp=xp), raw=_identity, xp=xp)
    return ns


def _identity(a):
    return a


def _array_function(prim: Primitive, *, xp) -> Callable:
    """The primitive's forward on backend xp, returning only the output."""
    if not prim.saves:
        return functools.partial(prim.forward, xp)
    forward = prim.forward

    def f(*args, **params):
        return forward(xp, *args, **params)[0]
    return f
