"""retrograd.compile: a step traced once and replayed (see docs in `compile`).

    trace.py    recording one eager call: the tape, and the reasons to stay eager
    program.py  the tape as a straight-line program of array operations, and its replay
    keys.py     the cache key: the call's signature and the state around the step
    verify.py   running eager alongside and comparing every result and state bit for bit
"""

from __future__ import annotations

import functools
import warnings

from ..tensor import TRACERS, Tensor
from .keys import Unsupported, buffers_of, discover, flatten, state_key, state_tensors
from .program import Program
from .trace import Hooks, Recorder
from .verify import VerifyError, verified_call

__all__ = ["CompileWarning", "CompiledFunction", "VerifyError", "compile"]


class CompileWarning(UserWarning):
    """A compiled function runs eagerly (the message says why)."""


_PENDING = object()  # a key traced once whose tape has values still to confirm


class CompiledFunction:
    """`fn` traced once per cache key and replayed after (see `compile`)."""

    def __init__(self, fn, verify: int = 0, max_cache: int = 8, *, quiet: bool = False):
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        if not isinstance(verify, int) or isinstance(verify, bool) or verify < 0:
            raise ValueError(f"compile: verify must be a non-negative integer (the number of "
                             f"calls to check against eager), got {verify!r}")
        if not isinstance(max_cache, int) or isinstance(max_cache, bool) or max_cache < 1:
            raise ValueError(f"compile: max_cache must be a positive integer, got "
                             f"{max_cache!r}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.verify = verify
        self.max_cache = max_cache
        self.cache: dict = {}  # key -> Program, or (_PENDING, tape)
        self.eager_reason: str | None = None  # set once: the function runs eagerly for good
        self.traces = 0  # calls that ran eagerly to record
        self.replays = 0
        self.verified = 0
        self._full_warned = quiet  # quiet: fall back without warnings (fit's own steps)
        self._quiet = quiet
        self._modules, self._optimizers = discover(fn)

    def __call__(self, *args, **kwargs):
        if self.eager_reason is not None or TRACERS:
            # inside another trace the outer recorder sees this function's operations
            return self.fn(*args, **kwargs)
        try:
            signature, leaves, arrays = flatten(args, kwargs)
        except Unsupported as exc:
            return self._give_up(str(exc), args, kwargs)
        key = (signature, state_key(self._modules, self._optimizers))
        entry = self.cache.get(key)
        if isinstance(entry, Program) and not entry.fits():
            del self.cache[key]  # a tensor it reads changed shape or dtype: trace again
            entry = None
        if isinstance(entry, Program):
            if not entry.guards_hold(arrays):
                # labels outside the recorded fast path: this call runs eagerly, as written
                return self.fn(*args, **kwargs)
            if self.verified < self.verify:
                self.verified += 1
                return verified_call(self, entry, args, kwargs, arrays, leaves)
            self.replays += 1
            return entry.run(arrays, leaves)
        if entry is None and len(self.cache) >= self.max_cache:
            if not self._full_warned:
                self._full_warned = True
                warnings.warn(f"retrograd.compile: {self.__name__} was traced for "
                              f"{self.max_cache} different signatures (max_cache); other "
                              "signatures run eagerly", CompileWarning, stacklevel=2)
            return self.fn(*args, **kwargs)
        return self._trace(key, entry, args, kwargs, leaves, arrays)

    def _trace(self, key, entry, args, kwargs, leaves, arrays):
        recorder = Recorder(arrays, [(k, v) for k, v in enumerate(leaves)
                                     if isinstance(v, Tensor)],
                            buffers_of(self._modules))
        self.traces += 1
        recorder.watch(state_tensors(self._modules, self._optimizers))
        with Hooks(recorder):
            result = self.fn(*args, **kwargs)
            recorder.check_gradients()
            recorder.check_state()
            out_spec = _output_spec(recorder, result)
        if recorder.reason is not None:
            self._give_up(recorder.reason)
            return result
        if self._adopt(recorder.objects.values()):
            return result  # the key now covers more state: the next call records again
        tape = (recorder.instructions, recorder.n_ops, out_spec, recorder.guards)
        if isinstance(entry, tuple) and entry[0] is _PENDING:
            from .confirm import confirmed

            tape, why = confirmed(entry[1], tape)
            if why is not None:
                self._give_up(why)
                return result
        elif recorder.unknown:
            # a value made in Python during the call: the next call with this key tells
            # whether it is a constant or comes from the data
            self.cache[key] = (_PENDING, tape)
            return result
        self.cache[key] = Program(*tape)
        return result

    def _adopt(self, objects) -> bool:
        """Add the modules and optimizers the trace used but `discover` did not find (reached
        through a registry, say) to the state the key covers; whether any was added."""
        from ..nn.module import Module
        from ..optim.optimizer import Optimizer

        known = {id(m) for root in self._modules for m in root.modules()}
        known |= {id(o) for o in self._optimizers}
        new_modules = [o for o in objects if isinstance(o, Module) and id(o) not in known]
        new_optimizers = [o for o in objects if isinstance(o, Optimizer) and id(o) not in known]
        if not new_modules and not new_optimizers:
            return False
        inner = {id(m) for root in new_modules for m in root.modules() if m is not root}
        self._modules += [m for m in new_modules if id(m) not in inner]
        self._optimizers += new_optimizers
        self.cache.clear()
        return True

    def _give_up(self, reason: str, args=None, kwargs=None):
        self.eager_reason = reason
        self.cache.clear()
        if not self._quiet:
            warnings.warn(f"retrograd.compile: {self.__name__} runs eagerly: {reason}",
                          CompileWarning, stacklevel=3)
        if args is not None:
            return self.fn(*args, **kwargs)
        return None


def _output_spec(rec: Recorder, value):
    if isinstance(value, Tensor):
        node = value._node
        if node is not None and node.edges is not None:
            rec.stop("the function returns a tensor whose graph is still alive: a backward "
                     "outside the compiled function would need it (compile the whole step, "
                     "backward included, or run the function under no_grad)")
        return ("tensor", rec.classify(value))
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return (type(value).__name__, tuple(_output_spec(rec, v) for v in value))
    if isinstance(value, dict) and type(value) is dict:
        return ("dict", tuple((k, _output_spec(rec, v)) for k, v in value.items()))
    if value is not None and any(value is r for r in rec.live_results):
        rec.stop("the function returns what a live call returned (clip_grad_norm_'s norm, "
                 "a closure's loss): a replay would return the recorded value")
    spec = rec.classify(value)
    if spec[0] == "tuple":
        rec.stop("the function returns a tuple subclass holding arrays")
    return ("value", spec)


def compile(fn=None, *, verify: int = 0, max_cache: int = 8):  # noqa: A001  (torch's name)
    """step = compile(fn): fn traced on its first call per signature, replayed after.

    The first call with a new cache key (input shapes and dtypes, Python scalar arguments,
    grad mode, the train/eval mode of the modules fn reaches and their parameters, the
    optimizers' parameter groups) runs fn eagerly and records the array operations it runs;
    later calls with that key replay them (forwards, VJPs, gradient accumulation into
    `.grad`) without building a graph, while optimizer and scheduler steps and zero_grad run
    live, so learning-rate changes, Adam's step count, weight decay and loaded state dicts
    are honored. Dropout draws fresh masks from retrograd's generator in eager order. The
    result is the eager result bit for bit; tensors returned are never overwritten by a
    later call.

    fn runs eagerly for good, with one CompileWarning saying why, when the trace reads a
    tensor's value into Python (.item(), bool, float), changes a tensor in place, steps an
    optimizer with a closure (L-BFGS, Newton-CG), or uses a value made in Python that
    differs between two calls. Beyond `max_cache` keys, new keys run eagerly (one warning).
    `verify=N` runs the first N replays alongside eager execution and raises VerifyError
    at the first difference. Python side effects of fn (appending to a list, printing) and
    Python values fn reads from outside (a global float) happen or are read when tracing
    only, as in torch.compile and jax.jit.

    Usable as a decorator, with or without arguments.
    """
    if fn is None:
        return functools.partial(compile, verify=verify, max_cache=max_cache)
    return CompiledFunction(fn, verify=verify, max_cache=max_cache)
