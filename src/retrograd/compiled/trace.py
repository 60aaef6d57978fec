"""Recording one eager call of a step: the tape that `program.Program` replays.

While a step runs under `Recorder`, every primitive that `tensor.apply` runs is reported here
(TRACERS), every backward is watched node by node (engine.observing), and calls whose
effect must happen live on every replay (an optimizer's `step` and `zero_grad`, a scheduler's
`step`, a module's `zero_grad`) are recorded as such and not looked into. Anything that would
make a replay differ from eager execution is a *reason* to stay eager: a tensor's value read
into Python (.item(), bool(t), float(t)), an in-place change to a tensor, an optimizer step with
a closure (L-BFGS, Newton-CG), a backward that the tape cannot express.

Where each argument of an operation comes from decides how a replay finds it (`classify`):
    ("in", k)      the k-th input array of the call (matched by identity)
    ("op", j)      the output of the j-th recorded operation
    ("live", t)    a tensor that outlives the call (a parameter, a module's buffer): its array
                   is read when the replay runs, so in-place updates and loads are seen
    ("const", v)   a Python value (scalar, None, dtype, shape, function)
    ("unk", v)     an array or tensor made outside the recorded operations: state that
                   outlives the call (a tensor captured from outside), or a value made in
                   Python during the call (a mask, a weight). A second trace tells which
                   (confirm.py): the same object both times is state, read live; anything
                   else stays eager, even when equal (it could depend on the data).
"""

from __future__ import annotations

import threading

from .. import backend, engine
from ..tensor import TRACERS, Tensor
from . import guards

FORWARD, LIVE, BACKWARD = "forward", "live", "backward"

# calls replayed as calls: (class attribute path, method names)
_LIVE_METHODS = (("optim.optimizer", "Optimizer", ("step", "zero_grad")),
                 ("optim.lr_scheduler", "LRScheduler", ("step",)),
                 ("optim.lr_scheduler", "ReduceLROnPlateau", ("step",)),
                 ("nn.module", "Module", ("zero_grad", "train")))

# Tensor methods that hand a value to Python, with how the warning names them
_READS = {"item": "Tensor.item()", "tolist": "Tensor.tolist()", "numpy": "Tensor.numpy()",
          "__array__": "converting a tensor to a NumPy array", "__bool__": "bool(tensor)",
          "__float__": "float(tensor)", "__int__": "int(tensor)"}


class TraceAbort(Exception):
    """Raised nowhere outside this package: carries the reason a step stays eager."""


class Recorder:
    """The tape of one call: `instructions` (FORWARD, LIVE, BACKWARD tuples, in order), the
    input arrays it was matched against, and the first `reason` to stay eager (None: none)."""

    def __init__(self, inputs: list, input_tensors: list, buffers: set):
        self.inputs = {id(a): k for k, a in enumerate(inputs) if a is not None}
        self.input_arrays = inputs  # held: their ids must stay unique while recording
        self.input_tensors = input_tensors  # (k, tensor) of inputs given as tensors
        self.buffers = buffers  # ids of module buffers: live state, not constants
        self.instructions: list = []
        self.guards: list = []  # checks each replay runs on its inputs first (guards.py)
        self.op_of_array: dict = {}  # id(output array) -> op index
        self.op_of_node: dict = {}  # id(node) -> op index
        self.held: list = []  # arrays and nodes whose ids are keys above
        self.n_ops = 0
        self.reason: str | None = None
        self.unknown = False  # whether some argument is an "unk" value
        self.live_depth = 0
        self.thread = threading.get_ident()
        self._nodes: list | None = None  # the backward being watched
        self._grads: list = []  # (leaf, its .grad array, its bytes) after the last backward
        self.live_results: list = []  # what the live calls returned (not replayable values)
        self._watched: list = []  # state tensors: only live calls may change them (watch)
        self.objects: dict = {}  # the modules called and the objects called live, by id
        self._state: list = []

    # ------------------------------------------------------------------ what happens
    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def recording(self) -> bool:
        return self.live_depth == 0 and threading.get_ident() == self.thread

    def on_apply(self, prim, args, arrays, params, result) -> None:
        if not self.recording():
            return
        specs = tuple(self.classify(a) for a in args)
        pspecs = {k: self.classify(v) for k, v in params.items()}
        why = guards.reason(prim, specs, params)
        if why is not None:
            self.stop(why)
        check = guards.guard(prim, specs, arrays)
        if check is not None:
            self.guards.append(check)
        j = self.n_ops
        self.n_ops += 1
        xp = backend.of_arrays([result._data])
        self.instructions.append((FORWARD, j, prim, specs, pspecs, xp))
        out = result._data
        self.op_of_array[id(out)] = j
        self.held.append(out)
        if result._node is not None:
            self.op_of_node[id(result._node)] = j
            self.held.append(result._node)

    def check_gradients(self) -> None:
        """Stop if a gradient written by a recorded backward changed since, other than by a
        recorded live call (a hand-made `p.grad._data *= 0.5` would not be replayed)."""
        for leaf, array, copy in self._grads:
            grad = leaf.grad
            if grad is None or grad._data is not array or grad._data.tobytes() != copy:
                self.stop("a gradient was changed outside the recorded operations after "
                          "backward (by NumPy on .grad, or a function retrograd cannot "
                          "replay)")
                break
        self._grads = []

    def watch(self, tensors: list) -> None:
        """Check that the state tensors (parameters, buffers) change only inside live calls:
        an update made by NumPy on `._data` (a hand-written SGD step, running statistics
        kept by hand) would not be replayed."""
        self._watched = tensors
        self._state = [(t._data, t._data.tobytes()) for t in tensors]

    def check_state(self) -> None:
        for t, (array, data) in zip(self._watched, self._state, strict=True):
            if t._data is not array or array.tobytes() != data:
                self.stop("a parameter or buffer was changed outside the recorded operations "
                          "and the optimizer's step (by NumPy on its array)")
                break

    def after_live(self, result) -> None:
        self.live_results.append(result)
        self._state = [(t._data, t._data.tobytes()) for t in self._watched]

    def on_live(self, obj, name: str, args: tuple, kwargs: dict) -> None:
        self.check_gradients()
        self.check_state()
        if name == "step" and (args or kwargs.get("closure") is not None):
            if args and callable(args[0]) or kwargs.get("closure") is not None:
                self.stop(f"{type(obj).__name__}.step was given a closure, which evaluates "
                          "the function again inside the step (L-BFGS, Newton-CG)")
                return
        for a in (*args, *kwargs.values()):
            if isinstance(a, Tensor) or backend.is_array(a):
                self.stop(f"{type(obj).__name__}.{name} was given a tensor, whose value it "
                          "reads in Python")
                return
        self.instructions.append((LIVE, obj, name, args, dict(kwargs)))

    def on_read(self, what: str) -> None:
        if self.recording():
            self.stop(f"{what} reads a tensor's value into Python during the step (a "
                      "branch on it would be frozen)")

    def on_inplace(self) -> None:
        if self.recording():
            self.stop("an in-place operation on a tensor (add_, copy_, t[i] = ...) changes "
                      "it outside the recorded operations")

    # ------------------------------------------------------------------ where values come from
    def classify(self, value):
        if isinstance(value, Tensor):
            data = value._data
            j = self.op_of_array.get(id(data))
            if j is not None:
                return ("op", j)
            k = self.inputs.get(id(data))
            if k is not None:
                return ("in", k)
            if (value.requires_grad and value._node is None) or id(value) in self.buffers:
                return ("live", value)
            self.unknown = True
            return ("unk", value)
        if backend.is_array(value):
            j = self.op_of_array.get(id(value))
            if j is not None:
                return ("op", j)
            k = self.inputs.get(id(value))
            if k is not None:
                return ("in", k)
            self.unknown = True
            return ("unk", value)
        if isinstance(value, tuple) and any(isinstance(v, Tensor) or backend.is_array(v)
                                            for v in value):
            return ("tuple", tuple(self.classify(v) for v in value))
        return ("const", value)

    # ------------------------------------------------------------------ backward
    def backward(self, original, root: Tensor, gradient, retain_graph, create_graph):
        """Run Tensor.backward, recording the nodes it runs as one BACKWARD instruction."""
        if not self.recording():
            return original(root, gradient, retain_graph, create_graph)
        if create_graph:
            self.stop("backward(create_graph=True) builds a graph of the gradient")
        elif gradient is not None:
            self.stop("backward(gradient=...) of a non-scalar output")
        elif root._node is None or id(root._data) not in self.op_of_array:
            self.stop("backward() of a tensor not computed inside the step")
        if self.reason is not None:
            return original(root, gradient, retain_graph, create_graph)
        self._nodes = nodes = []
        try:
            with engine.observing(self._observe):
                original(root, gradient, retain_graph, create_graph)
        finally:
            self._nodes = None
        retain = retain_graph if retain_graph is not None else engine.retain_graphs.active
        leaves = {id(a): a for _, _, edges, _, _ in nodes for _, (kind, a), _, _ in edges
                  if kind == "live"}
        leaves.update({id(t): t for k, t in self.input_tensors
                       if any(e[1] == ("in", k) for n in nodes for e in n[2])})
        self._grads = [(t, t.grad._data, t.grad._data.tobytes()) for t in leaves.values()
                       if t.grad is not None]
        self.instructions.append((BACKWARD, self.op_of_array[id(root._data)], root.shape,
                                  root.dtype, tuple(nodes), bool(retain)))

    def _observe(self, node, g) -> None:
        if self._nodes is None:
            self.stop("a backward outside Tensor.backward (retrograd.grad)")
            return
        j = self.op_of_node.get(id(node))
        if j is None:
            self.stop(f"backward reached {node.name()}, recorded before the step began")
            return
        edges = []
        for i, a in node.edges:
            if a._node is not None:
                k = self.op_of_node.get(id(a._node))
                if k is None:
                    self.stop("backward reached a graph recorded before the step began")
                    return
                edges.append((i, ("op", k), a._data.shape, a._data.dtype))
            else:
                kind = ("in", self.inputs[id(a._data)]) if any(
                    t is a for _, t in self.input_tensors) else ("live", a)
                edges.append((i, kind, a._data.shape, a._data.dtype))
        prim = node.prim
        self._nodes.append((j, tuple(node.wanted), tuple(edges), prim.saves,
                            prim.overwrites_g))


class Hooks:
    """The patches that report to a Recorder, in place for the duration of one trace."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.undo: list = []

    def __enter__(self):
        rec = self.recorder
        TRACERS.append(rec.on_apply)
        try:
            self._patch_reads(rec)
            self._patch(Tensor, "_before_inplace", _inplace_wrapper(rec))
            self._patch(Tensor, "backward", _backward_wrapper(rec, Tensor.backward))
            for cls, names in _live_classes():
                for name in names:
                    if name in cls.__dict__:
                        self._patch(cls, name, _live_wrapper(rec, name, cls.__dict__[name]))
            # the modules the step calls: their train/eval mode joins the cache key
            from ..nn.module import Module

            self._patch(Module, "__call__", _call_wrapper(rec, Module.__dict__["__call__"]))
            # gradient clipping is a function: called through its module, it runs live too
            from ..nn import utils as nn_utils

            self._patch_function(nn_utils, "clip_grad_norm_", rec)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for cls, name, old in reversed(self.undo):
            setattr(cls, name, old)
        self.undo.clear()
        if TRACERS and TRACERS[-1] == self.recorder.on_apply:
            TRACERS.pop()
        return False

    def _patch_function(self, module, name: str, rec: Recorder) -> None:
        original = getattr(module, name)

        def live(*args, **kwargs):
            if threading.get_ident() != rec.thread:
                return original(*args, **kwargs)
            # a generator of parameters is used up by this call: replays get a list
            args = tuple(list(a) if _is_iterator(a) else a for a in args)
            outer = rec.live_depth == 0
            if outer:
                rec.on_live(_Function(module, name), "__call__", args, kwargs)
            rec.live_depth += 1
            try:
                result = original(*args, **kwargs)
            finally:
                rec.live_depth -= 1
            if outer:
                rec.after_live(result)
            return result

        self.undo.append((module, name, original))
        setattr(module, name, live)

    def _patch(self, cls, name, value) -> None:
        self.undo.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, value)

    def _patch_reads(self, rec: Recorder) -> None:
        for name, what in _READS.items():
            self._patch(Tensor, name, _read_wrapper(rec, what, Tensor.__dict__[name]))


class _Function:
    """A module-level function called live on replay: calling it looks it up afresh."""

    def __init__(self, module, name: str):
        self.module, self.name = module, name

    def __call__(self, *args, **kwargs):
        return getattr(self.module, self.name)(*args, **kwargs)


def _is_iterator(a) -> bool:
    return hasattr(a, "__next__") and hasattr(a, "__iter__")


def _live_classes() -> list:
    """(class, method names) for every class (and subclass loaded now) whose methods run live
    on replay."""
    import importlib

    out, seen = [], set()
    for module, name, names in _LIVE_METHODS:
        stack = [getattr(importlib.import_module(f"retrograd.{module}"), name)]
        while stack:
            cls = stack.pop()
            if (cls, names) in seen:
                continue
            seen.add((cls, names))
            out.append((cls, names))
            stack.extend(cls.__subclasses__())
    return out


def _read_wrapper(rec: Recorder, what: str, original):
    def read(self, *args, **kwargs):
        rec.on_read(what)
        return original(self, *args, **kwargs)
    return read


def _inplace_wrapper(rec: Recorder):
    original = Tensor.__dict__["_before_inplace"]

    def before_inplace(self):
        rec.on_inplace()
        return original(self)
    return before_inplace


def _backward_wrapper(rec: Recorder, original):
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        return rec.backward(original, self, gradient, retain_graph, create_graph)
    return backward


def _call_wrapper(rec: Recorder, original):
    def call(self, *args, **kwargs):
        if threading.get_ident() == rec.thread:
            rec.objects[id(self)] = self
        return original(self, *args, **kwargs)
    return call


def _live_wrapper(rec: Recorder, name: str, original):
    def live(self, *args, **kwargs):
        if threading.get_ident() != rec.thread:
            return original(self, *args, **kwargs)
        outer = rec.live_depth == 0
        if outer:
            rec.objects[id(self)] = self
            rec.on_live(self, name, args, kwargs)
        rec.live_depth += 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            rec.live_depth -= 1
        if outer:
            rec.after_live(result)
        return result
    return live
