"""Whether operations record a graph: `no_grad()`, `enable_grad()`, `set_grad_enabled(mode)`.

One process-wide switch (not thread-local: retrograd runs its work on one Python thread).
"""

from __future__ import annotations

import functools


class _State:
    enabled = True


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad record a graph."""
    return _State.enabled


class set_grad_enabled:
    """Context manager (or plain call) that turns graph recording on or off."""

    def __init__(self, mode: bool):
        self.prev = _State.enabled
        _State.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _State.enabled = self.prev
        return False


class _GradModeContext:
    mode: bool

    def __enter__(self):
        self.prev = _State.enabled
        _State.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _State.enabled = self.prev
        return False

    def __call__(self, fn):
        """Use as a decorator: run `fn` in this mode."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Within this block (or decorated function) no graph is recorded: inference, updates."""

    mode = False


class enable_grad(_GradModeContext):
    """Re-enables graph recording inside a no_grad block."""

    mode = True
