"""Operations whose forward draws from retrograd's generator: dropout's mask.

A draw is an operation like any other, so a replayed step (retrograd.compile) runs it again
and draws fresh numbers, in the order eager execution draws them. The mask has no gradient and
no tensor argument, so it stays out of the primitive table (whose entries are differentiable
and checked by finite differences); `apply` runs it all the same.
"""

from __future__ import annotations

from .. import backend
from .registry import Primitive


def _dropout_mask(xp, *, shape, dtype, p, device, generator):
    """keep / (1 - p) with keep = U[0, 1) >= p on `device`, drawn from `generator()` (the
    generator in use when the forward runs, so manual_seed between replays is honored) on the
    host, and on the device itself elsewhere (seeded from it: masks differ from the host's)."""
    xp = backend.for_device(device)  # no tensor argument to take the backend from
    keep = xp.device_uniform(generator(), shape, dtype) >= p
    return keep * xp.asarray(1 / (1 - p), dtype=dtype)


def _no_gradient(ops, g, out, args, params, wanted, g_private):
    return ()


DROPOUT_MASK = Primitive("dropout_mask", _dropout_mask, _no_gradient, arity=0,
                         differentiable=frozenset())
