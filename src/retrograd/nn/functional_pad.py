"""F.pad with torch's signature and modes: constant (negative amounts crop), reflect, replicate
and circular.

pad = (left, right) for the last axis, then (left, right) for the one before it, and so on, as
in torch. Every mode is a composition of slicing, broadcasting and concatenation, which the
primitive table already differentiates, so the gradient needs no code of its own (reflect's
gradient adds each mirrored element back onto its source, as torch's reflection_pad backward
does). Arguments are checked first: one ValueError naming the bad amount and the input's shape.
"""

from __future__ import annotations

from ..backend import INTEGER_TYPES
from ..functions import cat, full
from ..tensor import Tensor

MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """input padded by pad = (left_last, right_last, left_second_last, ...) with `mode`."""
    amounts = _amounts(input, pad, mode, value)
    out = input
    for k, (lo, hi) in enumerate(amounts):
        axis = input.ndim - 1 - k
        if mode == "constant":
            out = _constant(out, axis, lo, hi, 0.0 if value is None else value)
        else:
            out = _PAD[mode](out, axis, lo, hi)
    return out


def _amounts(input: Tensor, pad, mode: str, value) -> list[tuple[int, int]]:
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {MODES}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, INTEGER_TYPES) and not isinstance(p, bool) for p in pad):
        raise ValueError(f"pad: pad must be a tuple of integers, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got {len(pad)} ({pad})")
    k = len(pad) // 2
    shape = tuple(input.shape)
    if k > len(shape):
        raise ValueError(f"pad: padding length too large: {len(pad)} values pad {k} axes of an "
                         f"input of shape {shape}")
    amounts = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k)]
    if mode == "constant":
        for i, (lo, hi) in enumerate(amounts):
            size = shape[len(shape) - 1 - i]
            if size + lo + hi < 0:
                raise ValueError(f"pad: padding ({lo}, {hi}) leaves a negative size on axis "
                                 f"{len(shape) - 1 - i} of an input of shape {shape}")
        return amounts
    if value is not None and value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value!r})")
    if not 1 <= k <= 3 or len(shape) not in (k + 1, k + 2):
        raise ValueError(f"pad: mode {mode!r} pads the last 1-3 axes of an unbatched (C, ...) "
                         f"or batched (N, C, ...) input: {len(pad)} values for an input of "
                         f"shape {shape}")
    for i, (lo, hi) in enumerate(amounts):
        axis = len(shape) - 1 - i
        size = shape[axis]
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: negative padding ({lo}, {hi}) on axis {axis} needs "
                             f"mode='constant' (got {mode!r})")
        if mode == "reflect" and max(lo, hi) >= size:
            raise ValueError(f"pad: padding size should be less than the corresponding input "
                             f"dimension, but got padding ({lo}, {hi}) at axis {axis} of an "
                             f"input of shape {shape}")
        if mode == "circular" and max(lo, hi) > size:
            raise ValueError(f"pad: circular padding ({lo}, {hi}) at axis {axis} wraps around "
                             f"more than once (input of shape {shape})")
        if mode == "replicate" and size == 0 and (lo or hi):
            raise ValueError(f"pad: replicate padding of the empty axis {axis} (input of shape "
                             f"{shape})")
    return amounts


def _take(x: Tensor, axis: int, start, stop, step=None) -> Tensor:
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop, step)
    return x[tuple(index)]


def _join(parts: list, axis: int) -> Tensor:
    parts = [p for p in parts if p.shape[axis]]
    return parts[0] if len(parts) == 1 else cat(parts, dim=axis)


def _constant(x: Tensor, axis: int, lo: int, hi: int, value: float) -> Tensor:
    # negative amounts crop first (torch's convention), then the positive ones are added
    x = _take(x, axis, max(-lo, 0), x.shape[axis] - max(-hi, 0))
    if lo <= 0 and hi <= 0:
        return x

    def block(n: int) -> Tensor:
        shape = list(x.shape)
        shape[axis] = max(n, 0)
        return full(tuple(shape), value, dtype=x.dtype, device=x.device)
    return _join([block(lo), x, block(hi)], axis)


def _reflect(x: Tensor, axis: int, lo: int, hi: int) -> Tensor:
    # x[lo], ..., x[1] before and x[n-2], ..., x[n-1-hi] after: the edge is not repeated
    n = x.shape[axis]
    left = _take(x, axis, lo, 0, -1) if lo else None
    stop = n - 2 - hi
    right = _take(x, axis, n - 2, stop if stop >= 0 else None, -1) if hi else None
    return _join([p for p in (left, x, right) if p is not None], axis)


def _replicate(x: Tensor, axis: int, lo: int, hi: int) -> Tensor:
    def edge(start: int, n: int) -> Tensor:
        piece = _take(x, axis, start, start + 1)
        shape = list(piece.shape)
        shape[axis] = n
        return piece.expand(*shape)
    n = x.shape[axis]
    parts = ([edge(0, lo)] if lo else []) + [x] + ([edge(n - 1, hi)] if hi else [])
    return _join(parts, axis)


def _circular(x: Tensor, axis: int, lo: int, hi: int) -> Tensor:
    n = x.shape[axis]
    parts = ([_take(x, axis, n - lo, n)] if lo else []) + [x] + \
        ([_take(x, axis, 0, hi)] if hi else [])
    return _join(parts, axis)


_PAD = {"reflect": _reflect, "replicate": _replicate, "circular": _circular}
