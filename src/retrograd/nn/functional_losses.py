"""Loss functions with torch's signatures, defaults and reductions (re-exported by functional).

Every classification loss is one call of the fused softmax cross-entropy kernel with a different
target coefficient (see ops/losses.py); reductions are composed on top: 'mean' divides by the
total weight of the counted samples, exactly as torch does.
"""

from __future__ import annotations

from .. import backend
from ..ops import PRIMITIVES
from ..tensor import Tensor, _wrap, apply

_P = PRIMITIVES
_REDUCTIONS = ("none", "mean", "sum")


def _array(value, like: Tensor, dtype=None):
    """The array behind `value` for an operation with `like`: a Tensor's own array (on its
    device: a mismatch is the operation's error), or data (lists, host arrays) put on like's
    device."""
    if isinstance(value, Tensor):
        a = value._data
    else:
        a = value if backend.is_array(value) else backend.from_data(value)
        if backend.of(a).device_of(a) != like.device:
            a = backend.move(a, like.device)
    return a if dtype is None or a.dtype == dtype else a.astype(dtype)


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_float_input(name: str, input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating point, got dtype {input.dtype}")


def _class_weight(name: str, weight, n_classes: int, input: Tensor):
    if weight is None:
        return None
    w = _array(weight, input)
    xp = backend.of(w)
    if w.shape != (n_classes,):
        raise ValueError(f"{name}: weight must have shape ({n_classes},) (one entry per class), "
                         f"got {w.shape}")
    if not bool(xp.all(xp.isfinite(w))) or bool(xp.any(w < 0)):
        bad = w[~xp.isfinite(w) | (w < 0)][0]
        raise ValueError(f"{name}: class weights must be finite and >= 0, got {bad}")
    return w.astype(input.dtype)


def _class_indices(name: str, target, input: Tensor, ignore_index: int):
    """The targets as an integer array, checked: each in [0, C) or equal to ignore_index."""
    return _checked_indices(name, target, input, ignore_index)[0]


def _checked_indices(name: str, target, input: Tensor, ignore_index: int):
    """(labels, none_ignored): none_ignored is True when no label equals ignore_index."""
    labels = _array(target, input)
    kind = labels.dtype.kind
    if kind not in "iu":
        raise TypeError(f"{name}: class-index targets must be integers, got dtype {labels.dtype}")
    shape = input._data.shape
    expected = shape[:1] + shape[2:]
    if labels.shape != expected:
        raise ValueError(f"{name}: target of shape {labels.shape} does not match input of shape "
                         f"{shape} (expected {expected})")
    n_classes = shape[1]
    # one pass: seen as unsigned, a negative label is huge, so the max alone bounds them all
    unsigned = labels.view(labels.dtype.str.replace("i", "u")) if kind == "i" else labels
    if labels.size == 0 or backend.of(labels).reduce_max(unsigned, axis=None) < n_classes:
        return labels, not 0 <= ignore_index < n_classes  # every label is a class
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= n_classes))
    if bool(backend.of(bad).any(bad)):
        raise IndexError(f"{name}: target {labels[bad].flat[0]} is out of bounds for "
                         f"{n_classes} classes (valid: 0 to {n_classes - 1}, or "
                         f"ignore_index={ignore_index})")
    return labels, False


def _batched(input: Tensor, target):
    """torch accepts one unbatched sample: input (C,) and a scalar or (C,) target."""
    if input.ndim != 1:
        return input, target, False
    t = _array(target, input)
    if t.dtype.kind == "f":
        target = target.unsqueeze(0) if isinstance(target, Tensor) else t[None]
    else:
        target = t.reshape(1)
    return input.unsqueeze(0), target, True


def _reduce(loss: Tensor, reduction: str, denominator) -> Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if denominator == 0:
        # torch: nan for a mean over no counted sample (everything ignored); the gradient is 0
        return total + float("nan")
    return total / denominator


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax + cross-entropy as one fused node, torch's semantics.

    input: logits (N, C), (N, C, d1, ...) or (C,). target: class indices (N, d1, ...) or
    probabilities of the input's shape. The gradient w.r.t. the logits is w (p - target) (with
    weights w and smoothed target, as in the course). 'mean' divides by the summed weight of the
    non-ignored targets (class indices) or by the number of samples (probabilities); when every
    target is ignored it is nan, as in torch.
    """
    return _softmax_loss("cross_entropy", input, target, weight, ignore_index, reduction,
                         label_smoothing)


def focal_loss(input: Tensor, target, gamma: float = 2.0, weight=None, reduction: str = "mean",
               ignore_index: int = -100) -> Tensor:
    """Multi-class focal loss l_n = -w_{y_n} (1 - p_{n,y_n})^gamma log p_{n,y_n} (Lin et al.).

    'mean' divides by the summed weight of the counted samples, exactly like cross_entropy, so
    gamma=0 gives cross_entropy exactly. Class-index targets only.
    """
    if not gamma >= 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    return _softmax_loss("focal_loss", input, target, weight, ignore_index, reduction, 0.0,
                         gamma=float(gamma), indices_only=True)


def policy_gradient_loss(logits: Tensor, actions, returns, reduction: str = "mean") -> Tensor:
    """REINFORCE as return-weighted cross-entropy: l_n = -R_n log softmax(logits_n)[a_n].

    The course's closing point: the return R replaces the 0/1 target. Returns are constants (no
    gradient flows into them); 'mean' divides by the number of samples.
    """
    _check_float_input("policy_gradient_loss", logits)
    r = _array(returns, logits)
    if logits.ndim != 2:
        raise ValueError(f"policy_gradient_loss: logits must be (N, A), got {logits.shape}")
    if r.shape != logits.shape[:1]:
        raise ValueError(f"policy_gradient_loss: returns of shape {r.shape} do not match "
                         f"{logits.shape[0]} samples")
    if not bool(backend.of(r).all(backend.of(r).isfinite(r))):
        raise ValueError("policy_gradient_loss: returns must be finite")
    return _softmax_loss("policy_gradient_loss", logits, actions, None, -100, reduction, 0.0,
                         sample_weight=r.astype(logits.dtype), indices_only=True)


def _softmax_loss(name, input, target, weight, ignore_index, reduction, label_smoothing,
                  gamma=0.0, sample_weight=None, indices_only=False) -> Tensor:
    _check_float_input(name, input)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    input, target, unbatched = _batched(input, target)
    if input.ndim < 2:
        raise ValueError(f"{name}: expected input of shape (N, C, ...), got {input.shape}")
    n_classes = input.shape[1]
    w = _class_weight(name, weight, n_classes, input)
    t = _array(target, input)
    if t.dtype.kind == "f":
        if indices_only:
            raise TypeError(f"{name}: expects class-index targets, got floating dtype {t.dtype}")
        if t.shape != input.shape:
            raise ValueError(f"{name}: probability targets must have the input's shape "
                             f"{input.shape}, got {t.shape}")
        if ignore_index != -100:
            raise ValueError(f"{name}: ignore_index is not supported with probability targets")
        if not isinstance(target, Tensor) or target.dtype != input.dtype:
            target = _wrap(t.astype(input.dtype)) if not isinstance(target, Tensor) \
                else target.to(input.dtype)
        denominator = t.size // n_classes
    else:
        target, none_ignored = _checked_indices(name, target, input, ignore_index)
        if none_ignored:
            ignore_index = None  # tells the kernel it need not look for ignored targets
        if sample_weight is not None or (none_ignored and w is None):
            denominator = target.size
        elif none_ignored:
            denominator = w[target].sum()
        else:
            counted = target != ignore_index
            denominator = counted.sum() if w is None else w[target[counted]].sum()
    options = dict(weight=w, ignore_index=ignore_index, smoothing=float(label_smoothing),
                   gamma=gamma, sample_weight=sample_weight)
    if reduction == "none":
        loss = apply(_P["softmax_cross_entropy"], input, target, **options)
        return loss.reshape(loss.shape[1:]) if unbatched else loss
    if reduction == "mean" and denominator == 0:
        # torch: nan for a mean over no counted sample (everything ignored); the gradient is 0
        return apply(_P["softmax_cross_entropy"], input, target, **options, reduce_by=1) \
            + float("nan")
    reduce_by = float(denominator) if reduction == "mean" else 1
    return apply(_P["softmax_cross_entropy"], input, target, **options, reduce_by=reduce_by)


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """-w_{y_n} input[n, y_n] on log-probabilities; 'mean' divides by the summed weights."""
    _check_float_input("nll_loss", input)
    _check_reduction(reduction)
    input, target, unbatched = _batched(input, target)
    labels = _class_indices("nll_loss", target, input, ignore_index)
    w = _class_weight("nll_loss", weight, input.shape[1], input)
    xp = backend.of(labels)
    counted = labels != ignore_index
    safe = xp.where(counted, labels, 0)
    coef = (safe[:, None] == xp.arange(input.shape[1]).reshape((1, -1) + (1,) *
                                                                (input.ndim - 2)))
    per_sample = (w[safe] if w is not None else 1) * counted
    per_sample = xp.asarray(per_sample, dtype=input.dtype)
    coef = coef * per_sample.reshape(per_sample.shape[:1] + (1,) + per_sample.shape[1:])
    loss = -(input * coef.astype(input.dtype)).sum(1)
    if unbatched:
        loss = loss.reshape(())
    denominator = counted.sum() if w is None else w[labels[counted]].sum()
    return _reduce(loss, reduction, denominator)


def _elementwise_target(name: str, input: Tensor, target) -> Tensor:
    t = target if isinstance(target, Tensor) else _wrap(_array(target, input, input.dtype))
    if t.shape != input.shape:
        raise ValueError(f"{name}: target of shape {t.shape} must have the input's shape "
                         f"{input.shape}")
    return t


def _elementwise_weight(name: str, weight, input: Tensor):
    if weight is None:
        return None
    w = _array(weight, input, input.dtype)
    try:
        backend.host.broadcast_shapes(w.shape, input.shape)
    except ValueError:
        raise ValueError(f"{name}: weight of shape {w.shape} does not broadcast to the input's "
                         f"shape {input.shape}") from None
    return w


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """(input - target)^2, averaged or summed."""
    _check_float_input("mse_loss", input)
    _check_reduction(reduction)
    diff = input - _elementwise_target("mse_loss", input, target)
    return _reduce(diff * diff, reduction, diff.numel())


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """-w [t log p + (1 - t) log(1 - p)] on probabilities p in [0, 1], logs clamped at -100."""
    _check_float_input("binary_cross_entropy", input)
    _check_reduction(reduction)
    t = _elementwise_target("binary_cross_entropy", input, target)
    p = input._data
    xp = backend.of(p)
    if p.size and bool(xp.any((p < 0) | (p > 1))):
        raise ValueError("binary_cross_entropy: input must be probabilities in [0, 1] "
                         "(use binary_cross_entropy_with_logits for logits)")
    w = _elementwise_weight("binary_cross_entropy", weight, input)
    loss = apply(_P["bce"], input, t, weight=w)
    return _reduce(loss, reduction, loss.numel())


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy fused: stable for any logit; gradient w (sigmoid(x) - t)
    (with pos_weight pw: w ((1 + (pw - 1) t) sigmoid(x) - pw t))."""
    name = "binary_cross_entropy_with_logits"
    _check_float_input(name, input)
    _check_reduction(reduction)
    t = _elementwise_target(name, input, target)
    w = _elementwise_weight(name, weight, input)
    pw = _elementwise_weight(name, pos_weight, input)
    if pw is not None and bool(backend.of(pw).any(pw < 0)):
        raise ValueError(f"{name}: pos_weight must be >= 0")
    loss = apply(_P["bce_with_logits"], input, t, weight=w, pos_weight=pw)
    return _reduce(loss, reduction, loss.numel())


def sigmoid_focal_loss(inputs: Tensor, targets, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> Tensor:
    """torchvision's focal loss on logits: alpha_t (1 - p_t)^gamma BCE(x, t), where
    p_t = p t + (1 - p)(1 - t) and alpha_t = alpha t + (1 - alpha)(1 - t); alpha < 0 disables it."""
    _check_reduction(reduction)
    if not gamma >= 0:
        raise ValueError(f"sigmoid_focal_loss: gamma must be >= 0, got {gamma}")
    t = _elementwise_target("sigmoid_focal_loss", inputs, targets)
    p = inputs.sigmoid()
    ce = binary_cross_entropy_with_logits(inputs, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return _reduce(loss, reduction, loss.numel())
