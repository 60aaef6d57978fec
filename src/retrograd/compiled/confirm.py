"""The second trace of a key whose first tape holds values from outside the recorded
operations (trace.Recorder's "unk"): the two tapes must agree operation for operation, and each
such value must be the same object on both calls (state that outlives the call, read live on
every replay). A value made anew on each call could come from the data, which a replay would
freeze: the function stays eager."""

from __future__ import annotations

from ..tensor import Tensor
from .trace import BACKWARD, FORWARD, LIVE


class _Differs(Exception):
    pass


def confirmed(first, second):
    """(tape, None) with every "unk" value of `first` resolved, or (None, why) when the two
    tapes of one key differ."""
    instructions_a, n_a, out_a, guards = first
    instructions_b, n_b, out_b, _ = second
    try:
        if n_a != n_b or len(instructions_a) != len(instructions_b):
            raise _Differs("the operations differ between two calls with the same signature "
                           "(a branch on the data outside retrograd's tensors?)")
        merged = [_instruction(a, b) for a, b in zip(instructions_a, instructions_b,
                                                      strict=True)]
        out = _output(out_a, out_b)
    except _Differs as exc:
        return None, str(exc)
    return (merged, n_a, out, guards), None


def _instruction(a, b):
    if a[0] != b[0]:
        raise _Differs("the operations differ between two calls with the same signature")
    if a[0] == FORWARD:
        _, j, prim, specs, pspecs, xp = a
        if b[2] is not prim or b[1] != j or len(b[3]) != len(specs) or b[4].keys() != \
                pspecs.keys():
            raise _Differs(f"operation {j} ({prim.name}) differs between two calls with the "
                           "same signature")
        where = f"{prim.name} (operation {j})"
        specs = tuple(_spec(s, t, f"argument {i} of {where}")
                      for i, (s, t) in enumerate(zip(specs, b[3], strict=True)))
        pspecs = {k: _spec(s, b[4][k], f"parameter {k!r} of {where}")
                  for k, s in pspecs.items()}
        return (FORWARD, j, prim, specs, pspecs, xp)
    if a[0] == LIVE:
        if a[1] is not b[1] or a[2:] != b[2:]:
            raise _Differs(f"the calls to {type(a[1]).__name__}.{a[2]} differ between two "
                           "calls with the same signature")
        return a
    if a[0] == BACKWARD:
        if not _equal_backward(a, b):
            raise _Differs("the backward differs between two calls with the same signature")
        return a
    raise _Differs(f"unknown instruction {a[0]!r}")


def _equal_backward(a, b) -> bool:
    if a[1:4] != b[1:4] or a[5] != b[5] or len(a[4]) != len(b[4]):
        return False
    for na, nb in zip(a[4], b[4], strict=True):
        if na[:2] != nb[:2] or na[3:] != nb[3:] or len(na[2]) != len(nb[2]):
            return False
        for (i, sa, *la), (k, sb, *lb) in zip(na[2], nb[2], strict=True):
            if i != k or la != lb or sa[0] != sb[0] or (sa[1] is not sb[1] and sa[1] != sb[1]):
                return False
    return True


def _spec(a, b, where: str):
    kind = a[0]
    if kind != b[0]:
        raise _Differs(f"{where} comes from different places in two calls")
    if kind in ("op", "in"):
        if a[1] != b[1]:
            raise _Differs(f"{where} comes from different places in two calls")
        return a
    if kind == "live":
        if a[1] is not b[1]:
            raise _Differs(f"{where} is a different tensor in two calls")
        return a
    if kind == "tuple":
        if len(a[1]) != len(b[1]):
            raise _Differs(f"{where} differs between two calls")
        return ("tuple", tuple(_spec(s, t, where) for s, t in zip(a[1], b[1], strict=True)))
    if kind == "unk":
        return _unknown(a[1], b[1], where)
    if not _same_value(a[1], b[1]):
        raise _Differs(f"{where} differs between two calls ({a[1]!r}, then {b[1]!r}): it "
                       "depends on the data")
    return a


def _unknown(x, y, where: str):
    if x is y:  # state that outlives the call: read live
        return ("live", x) if isinstance(x, Tensor) else ("const", x)
    # Made anew on each call: a constant rebuilt from Python data, or a value derived from the
    # data (a weight per sample, a mask). Equal values on two calls would not tell them apart
    # (two batches with the same label counts give the same class-weighted divisor).
    raise _Differs(f"{where} is made in Python on each call, outside retrograd's operations "
                   "(a mask, a weight or a constant tensor built inside the step); a replay "
                   "would freeze it")


def _same_value(x, y) -> bool:
    if x is y:
        return True
    try:
        same = x == y
        return bool(same) if not hasattr(same, "shape") else False
    except Exception:  # values that do not compare
        return False


def _output(a, b):
    kind = a[0]
    if kind != b[0]:
        raise _Differs("the function returns different things in two calls")
    if kind in ("list", "tuple"):
        if len(a[1]) != len(b[1]):
            raise _Differs("the function returns different things in two calls")
        return (kind, tuple(_output(s, t) for s, t in zip(a[1], b[1], strict=True)))
    if kind == "dict":
        if [k for k, _ in a[1]] != [k for k, _ in b[1]]:
            raise _Differs("the function returns different things in two calls")
        return ("dict", tuple((k, _output(s, t)) for (k, s), (_, t) in zip(a[1], b[1],
                                                                          strict=True)))
    return (kind, _spec(a[1], b[1], "a returned value"))
