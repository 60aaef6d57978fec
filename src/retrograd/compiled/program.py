"""A recorded step as a straight-line program of array operations, and its replay.

The replay runs the same primitive forwards and VJPs as eager execution, on the same arrays, in
the same order, with the same gradient accumulation, so its results are the eager results bit
for bit; what it leaves out is the bookkeeping around them: no Tensor is made for an
intermediate value, no graph node, no version check, no heap, and none of the Python of the
step itself (module calls, argument checks in the losses). The calls recorded as live (the
optimizer's step and zero_grad, a scheduler's step) run as calls, so whatever they read (the
learning rate, Adam's step count, a loaded state) is read afresh on every replay.

Memory: an operation whose primitive offers `into` (ops/registry.py) writes into its output
array of the last replay when the reference count shows nothing else holds it (a returned
tensor, a view, a `.grad` would), and a second gradient for a value is added in place into the
first under the same proof; both give the same bytes as fresh arrays.
"""

from __future__ import annotations

from .. import backend
from ..engine import _fit  # the engine's own undoing of broadcasting and promotion
from ..ops import array_namespace
from ..tensor import Tensor, _wrap, hand_to_leaves
from .trace import BACKWARD, FORWARD, LIVE

# argument sources, as small integers for the replay's dispatch
_OP, _IN, _LIVE, _CONST, _TUPLE = 0, 1, 2, 3, 4
_KINDS = {"op": _OP, "in": _IN, "live": _LIVE, "const": _CONST, "tuple": _TUPLE}


def _source(spec):
    kind, value = spec
    if kind == "tuple":
        return (_TUPLE, tuple(_source(s) for s in value))
    if kind == "unk":
        raise ValueError("an unconfirmed value cannot be replayed")
    return (_KINDS[kind], value)


class Program:
    """The replayable form of a tape (see trace.Recorder) whose values are all confirmed."""

    def __init__(self, instructions: list, n_ops: int, output_spec, guards: list):
        self.n_ops = n_ops
        self.guards = tuple(guards)
        self.code = []
        self.live_tensors = []  # the tensors read live (parameters, buffers)
        for ins in instructions:
            if ins[0] == FORWARD:
                _, j, prim, specs, pspecs, xp = ins
                sources = tuple(_source(s) for s in specs)
                static = {k: s[1] for k, s in pspecs.items() if s[0] == "const"}
                dynamic = tuple((k, _source(s)) for k, s in pspecs.items() if s[0] != "const")
                self.live_tensors += [s[1] for s in sources if s[0] == _LIVE]
                self.code.append((FORWARD, j, prim.forward, sources, static, dynamic, xp,
                                  prim.saves, prim.into))
            elif ins[0] == LIVE:
                self.code.append(ins)
            else:
                _, root, shape, dtype, nodes, retain = ins
                compiled = []
                for j, wanted, edges, saves, overwrites in nodes:
                    prim = self._prim_of(instructions, j)
                    params = {k: s[1] for k, s in self._pspecs_of(instructions, j).items()}
                    # an edge's target shape and dtype, for the engine's _fit, are fixed by
                    # the key: the target's array need not stay alive for them
                    compiled.append((j, prim.vjp, params, wanted,
                                     tuple((i, *_source(t), _Like(tshape, tdtype))
                                           for i, t, tshape, tdtype in edges), saves,
                                     overwrites))
                    self.live_tensors += [t[1] for _, t, _, _ in edges if t[0] == "live"]
                self.code.append([BACKWARD, root, shape, dtype, tuple(compiled), retain,
                                  frozenset()])
        self.output = _output_source(output_spec)
        # each operation's output of the last replay, for the primitives that can write into
        # one (Primitive.into): reused when nothing else holds it any more (see run)
        self.slots = [None] * n_ops
        self._set_lifetimes()
        seen = set()
        self.live_tensors = [t for t in self.live_tensors
                             if id(t) not in seen and not seen.add(id(t))]
        # the arrays of the live tensors when last seen: a changed shape or dtype (Module.to)
        # makes the program stale
        self.layout = tuple((t, t._data.shape, t._data.dtype, t.requires_grad)
                            for t in self.live_tensors)

    def _set_lifetimes(self) -> None:
        """For each backward, the operations whose values something after it still reads
        (a later operation or backward, the outputs); the others are released node by node,
        as the engine releases a node's arrays, so their memory is reused while hot."""
        later: set = set(_ops_in_output(self.output))
        for ins in reversed(self.code):
            if ins[0] == FORWARD:
                later |= set(_ops_in_sources(ins[3]))
                later |= set(_ops_in_sources(tuple(s for _, s in ins[5])))
            elif ins[0] == BACKWARD:
                ins[6] = frozenset(later)
                later.add(ins[1])
                for j, _, _, _, edges, _, _ in ins[4]:
                    later.add(j)
                    later |= {ref for _, kind, ref, _ in edges if kind == _OP}
        for k, ins in enumerate(self.code):
            if ins[0] == BACKWARD:
                self.code[k] = tuple(ins)

    @staticmethod
    def _prim_of(instructions, j):
        for ins in instructions:
            if ins[0] == FORWARD and ins[1] == j:
                return ins[2]
        raise KeyError(j)

    @staticmethod
    def _pspecs_of(instructions, j):
        for ins in instructions:
            if ins[0] == FORWARD and ins[1] == j:
                return ins[4]
        raise KeyError(j)

    def guards_hold(self, inputs: list) -> bool:
        """Whether the call's input arrays pass the guards (guards.py)."""
        for check in self.guards:
            if not check.holds(inputs):
                return False
        return True

    def fits(self) -> bool:
        """Whether every live tensor still has the shape, dtype and requires_grad it had
        when recorded."""
        for t, shape, dtype, requires_grad in self.layout:
            data = t._data
            if data.shape != shape or data.dtype != dtype or t.requires_grad != requires_grad:
                return False
        return True

    # ------------------------------------------------------------------ replay
    def run(self, inputs: list, leaves: list):
        """Replay on the call's input arrays (`inputs`) and its flattened arguments
        (`leaves`: the objects, for inputs that receive a gradient or are returned)."""
        env = [None] * self.n_ops
        args_env = [None] * self.n_ops
        saved_env = [None] * self.n_ops
        slots = self.slots
        for ins in self.code:
            kind = ins[0]
            if kind == FORWARD:
                _, j, forward, sources, static, dynamic, xp, saves, into = ins
                # (_value inlined for the usual sources: this runs for every operation)
                arrays = [env[r] if k == 0 else r._data if k == 2 else inputs[r] if k == 1
                          else _value((k, r), env, inputs) for k, r in sources]
                if dynamic:
                    params = dict(static)
                    for k, s in dynamic:
                        params[k] = _value(s, env, inputs)
                else:
                    params = static
                if into is None:
                    out = forward(xp, *arrays, **params)
                    if saves:
                        out, saved_env[j] = out
                    if type(out) is not xp.ndarray:
                        out = xp.asarray(out)
                else:
                    # the last replay's output, unless something still holds it (a returned
                    # tensor, a .grad, a view, another thread's replay): the reference count
                    # decides, so nothing anyone can see is ever overwritten
                    out, slots[j] = slots[j], None
                    if out is not None and xp.may_overwrite(out):
                        out = into(xp, out, *arrays, **params)
                    else:
                        out = forward(xp, *arrays, **params)
                        if type(out) is not xp.ndarray:
                            out = xp.asarray(out)
                    slots[j] = out
                env[j] = out
                args_env[j] = arrays
            elif kind == LIVE:
                _, obj, name, args, kwargs = ins
                getattr(obj, name)(*args, **kwargs)
            else:
                _backward(ins, env, args_env, saved_env, inputs, leaves)
        return _build(self.output, env, inputs, leaves)


def _value(source, env, inputs):
    kind, ref = source
    if kind == _OP:
        return env[ref]
    if kind == _LIVE:
        return ref._data
    if kind == _CONST:
        return ref
    if kind == _IN:
        return inputs[ref]
    return tuple(_value(s, env, inputs) for s in ref)


def _backward(ins, env, args_env, saved_env, inputs, leaves) -> None:
    """One recorded backward: the engine's loop (engine._propagate) over a fixed node order,
    then Tensor.backward's accumulation into the leaves' .grad."""
    _, root, shape, dtype, nodes, retain, keep = ins
    out = env[root]
    xp = _xp_of(out)
    ops = array_namespace(xp)
    may_overwrite = xp.may_overwrite
    # d loss / d loss (Tensor.backward: a 0-d loss gets asarray(1), a one-element one ones)
    grads = {root: xp.asarray(1, dtype) if not shape else xp.ones(shape, dtype)}
    results: dict = {}
    for j, vjp, params, wanted, edges, saves, overwrites in nodes:
        g = grads.pop(j)
        if saves:
            saved = saved_env[j]
            if retain:
                saved = {k: xp.copy(a) if hasattr(a, "shape") else a for k, a in saved.items()}
            else:
                saved_env[j] = None
            params = {**params, "saved": saved}
            saved = None
        private = overwrites and may_overwrite(g)
        input_grads = vjp(ops, g, env[j], args_env[j], params, wanted, private)
        if j not in keep:  # nothing after this node reads its values
            env[j] = args_env[j] = None
        for i, kind, ref, like in edges:
            gi = input_grads[i]
            if gi is None:
                continue
            if gi.shape != like.shape or gi.dtype != like.dtype:
                gi = _fit(gi, like, ops)
            # a second use of a value adds to its gradient: in place when nothing else holds
            # the sum so far (the same additions, without a new array for each)
            if kind == _OP:
                into, key = grads, ref
            else:
                into, key = results, ref if kind == _LIVE else leaves[ref]
            if key not in into:
                into[key] = gi
                continue
            prev = into.pop(key)
            if may_overwrite(prev):
                prev += gi
                into[key] = prev
            else:
                into[key] = prev + gi
            prev = None
        gi = g = input_grads = None
    hand_to_leaves(results, may_overwrite)  # Tensor.backward's tail


class _Like:
    """The shape and dtype of an array, all that _fit reads of it."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


def _ops_in_sources(sources):
    for kind, ref in sources:
        if kind == _OP:
            yield ref
        elif kind == _TUPLE:
            yield from _ops_in_sources(ref)


def _ops_in_output(source):
    kind, ref = source
    if kind in ("tensor", "value"):
        yield from _ops_in_sources((ref,))
    elif kind == "dict":
        for _, s in ref:
            yield from _ops_in_output(s)
    else:
        for s in ref:
            yield from _ops_in_output(s)


_xp_of = backend.of


# ---------------------------------------------------------------------- outputs


def _output_source(spec):
    kind = spec[0]
    if kind in ("list", "tuple"):
        return (kind, tuple(_output_source(s) for s in spec[1]))
    if kind == "dict":
        return ("dict", tuple((k, _output_source(s)) for k, s in spec[1]))
    if kind == "tensor":  # a tensor made from the source
        return ("tensor", _source(spec[1]))
    return ("value", _source(spec[1]))


def _build(source, env, inputs, leaves):
    kind, ref = source
    if kind == "tensor":
        sub, where = ref
        if sub == _OP:
            return _wrap(env[where])  # a fresh array of this replay: no later replay writes it
        if sub == _IN:
            return leaves[where] if isinstance(leaves[where], Tensor) else _wrap(inputs[where])
        if sub == _LIVE:
            return where
        return _wrap(where.copy())
    if kind == "value":
        sub, where = ref
        return inputs[where] if sub == _IN else where if sub != _OP else env[where]
    if kind == "dict":
        return {k: _build(s, env, inputs, leaves) for k, s in ref}
    items = [_build(s, env, inputs, leaves) for s in ref]
    return items if kind == "list" else tuple(items)
