"""Decisions the losses take in Python from the labels, checked again on every replay.

`cross_entropy` with class-index labels looks at the labels before its kernel runs: when every
label is a class in [0, C) (the common case, one reduction), it passes ignore_index=None and
divides the mean by the number of labels, both fixed by the shape; otherwise (a label equal to
ignore_index, or out of range) it counts the labels or raises. A replay keeps the recorded
decision only while the same check holds, so each replay first checks its labels (`Guard`);
a batch that fails it runs eagerly, which raises or ignores exactly as eager code does. A mean
whose divisor counts the labels (class weights, ignore_index within the classes) depends on the
data on every call: such a step stays eager (`reason`).
"""

from __future__ import annotations

from .. import backend


def reason(prim, specs: tuple, params: dict) -> str | None:
    """Why an operation recorded with these argument sources cannot be replayed, or None."""
    if prim.name != "softmax_cross_entropy" or specs[1][0] == "const":
        return None
    if params.get("ignore_index") is not None:
        return ("cross_entropy's mean counts the labels that are not ignore_index, which "
                "depends on the labels of each batch")
    if params.get("weight") is not None and params.get("reduce_by") not in (None, 1):
        return ("a class-weighted cross_entropy's mean divides by the summed weights of each "
                "batch's labels")
    return None


def guard(prim, specs: tuple, arrays: list):
    """A Guard for this operation (run on `arrays`), or None when its recorded decisions hold
    for any data."""
    if prim.name != "softmax_cross_entropy":
        return None
    kind, where = specs[1]
    if kind != "in":
        return None
    return Guard(where, arrays[0].shape)


class Guard:
    """Every label of input `k` is a class index in [0, n_classes) (cross_entropy's fast
    path, see the module docstring)."""

    def __init__(self, k: int, logits_shape: tuple):
        self.k = k
        self.n_classes = logits_shape[1] if len(logits_shape) > 1 else logits_shape[0]

    def holds(self, inputs: list) -> bool:
        labels = inputs[self.k]
        dtype = labels.dtype
        if dtype.kind not in "iu" or not labels.size:
            return True  # probability targets, no labels: no decision was taken on them
        if dtype.kind == "i":  # seen as unsigned a negative label is huge: the max bounds all
            labels = labels.view(_UNSIGNED.get(dtype) or _unsigned(dtype))
        return bool(backend.of(labels).reduce_max(labels, None) < self.n_classes)


_UNSIGNED: dict = {}


def _unsigned(dtype):
    _UNSIGNED[dtype] = dtype.str.replace("i", "u")
    return _UNSIGNED[dtype]
