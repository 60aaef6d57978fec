"""Fused loss kernels, registered in the primitive table (ops.py): forward and VJPs side by side.

The course's central identity drives the main kernel: for logits x, per-sample target
coefficients a_c >= 0 (or any sign, for rewards) and p = softmax(x),

    loss = -sum_c a_c log p_c,        d loss / d x = p * sum_c a_c - a.

Every classification loss here is that formula with a different `a`:
  hard label y            a = one_hot(y)                        gradient p - one_hot(y)
  class weights w         a = w_y one_hot(y)                    w_y (p - one_hot(y))
  label smoothing eps     a = (1 - eps) w_y one_hot(y) + eps/C w   (torch's convention)
  probability targets q   a = w * ((1 - eps) q + eps/C)
  focal, gamma            a = w_y F one_hot(y), where F = (1-p_y)^g - g p_y (1-p_y)^(g-1) log p_y
                          is the derivative's per-sample weight (the loss itself is
                          -w_y (1-p_y)^g log p_y)
  REINFORCE, returns R    a = R one_hot(action)

Index targets keep `a` sparse (a weight per sample plus a dense smoothing row); probability
targets keep it dense. The forward saves exp(x - max) and its row sums, so the backward is two
passes over the logits, done in place.
"""

from __future__ import annotations

import numpy as np


def _pick(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a[n, t_n, ...]: the entry of each sample's target class (class axis 1)."""
    if a.ndim == 2:
        return a[np.arange(a.shape[0]), t]
    return np.take_along_axis(a, t[:, None], axis=1)[:, 0]


def _add_at_target(a: np.ndarray, t: np.ndarray, v) -> None:
    """a[n, t_n, ...] += v_n, in place (each sample has one target: no repeated index)."""
    if a.ndim == 2:
        a[np.arange(a.shape[0]), t] += v
    else:
        idx = t[:, None]
        np.put_along_axis(a, idx, np.take_along_axis(a, idx, axis=1) + _per_sample(v), axis=1)


def _along_classes(w: np.ndarray, ndim: int) -> np.ndarray:
    """A per-class vector (C,) shaped to broadcast along the class axis of an ndim array."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _per_sample(v):
    """A per-sample array (N, d...), the loss's shape, made to broadcast against (N, C, d...);
    scalars (0-d) broadcast already."""
    return v.reshape(v.shape[:1] + (1,) + v.shape[1:]) if np.ndim(v) else v


def _reduced(loss: np.ndarray, reduce_by):
    """The per-sample losses, or their sum divided by `reduce_by` (1 for 'sum', the summed
    weights or the sample count for 'mean'): reducing inside the node saves two graph nodes."""
    return loss if reduce_by is None else np.asarray(loss.sum() / reduce_by)


def _index_coefficients(x, target, weight, ignore_index, smoothing, sample_weight):
    """The sparse form of `a` for class-index targets (ignore_index None: nothing is ignored).

    Returns (t, hot, spread): t is the target with ignored entries replaced by class 0, hot the
    weight of each sample's target class (0 for ignored samples; a scalar when it is 1 for all),
    spread the per-sample factor of the smoothing row (None without smoothing).
    """
    dtype = x.dtype
    valid = None if ignore_index is None else target != ignore_index  # None: nothing ignored
    all_valid = valid is None or bool(valid.all())
    t = target if all_valid else np.where(valid, target, 0)
    hot = 1.0 if all_valid else valid.astype(dtype)
    if weight is not None:
        hot = weight[t] * hot
    if sample_weight is not None:
        hot = sample_weight * hot
    spread = None
    if smoothing:
        spread = (1.0 if all_valid else valid.astype(dtype))
        if sample_weight is not None:
            spread = sample_weight * spread
        spread = np.asarray(spread * (smoothing / x.shape[1]), dtype=dtype)
    return t, hot, spread


def _focal_factors(nll: np.ndarray, gamma: float):
    """(modulation (1-p)^g, gradient weight F) of the focal loss, computed from -log p_y.

    Uses 1 - p = -expm1(log p) and F = (1-p)^g (1 - g p log(p)/(1-p)), where log(p)/(1-p) -> -1
    as p -> 1, so both stay finite for any logits and any gamma >= 0.
    """
    logp = np.minimum(-nll, 0)
    q = -np.expm1(logp)
    mod = q ** gamma
    ratio = np.where(q > 0, logp / np.where(q > 0, q, 1), -1)
    return mod, mod * (1 - gamma * np.exp(logp) * ratio)


# A row sum z at least this large makes exp's denormal or zero entries (below the dtype's
# smallest normal number) negligible: their probabilities are off by less than 2^-49 (float32).
_Z_MIN = {np.dtype(np.float32): 2.0 ** -100, np.dtype(np.float64): 2.0 ** -900}
_TINY = {dtype: np.finfo(dtype).tiny for dtype in _Z_MIN}
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce


def _row_sums(e: np.ndarray) -> np.ndarray:
    """Sums over the class axis; for a matrix through BLAS (a product with ones), several times
    faster than np.sum along rows."""
    return e @ np.ones(e.shape[1], dtype=e.dtype) if e.ndim == 2 else e.sum(axis=1)


def _index_nll(x: np.ndarray, t: np.ndarray):
    """(e, z, log_z, nll): e = exp(x - shift), z its row sums, log_z = log sum_c exp(x_c) and
    nll = log_z - x_t = -log softmax(x)_t, computed without cancellation.

    The usual per-row shift by the max costs a pass over the logits, so exp(x) is tried first
    and checked afterwards on the per-sample vectors alone: when every row sum z is finite and
    far above the denormals, and every target's e_t is a normal number with z / e_t finite,
    nothing that matters overflowed or lost precision, and nll = log(z / e_t) is exact to float
    rounding even for confident predictions. Otherwise (logits beyond about +-88 in float32,
    or a spread so large that z / e_t overflows) the shifted computation runs instead.
    """
    z_min = _Z_MIN.get(x.dtype)
    if x.size and z_min is not None:
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            e = np.exp(x)
            z = _row_sums(e)
            e_t = _pick(e, t)
            ratio = z / e_t
        # min/max reductions (a NaN fails them too) cost less than three boolean passes
        if (_MIN(z, axis=None) >= z_min and _MIN(e_t, axis=None) >= _TINY[x.dtype]
                and _MAX(ratio, axis=None) < np.inf):
            return e, z, np.log(z), np.log(ratio)
    shift = x.max(axis=1)
    e = np.exp(x - _per_sample(shift))
    z = _row_sums(e)
    log_shifted_z = np.log(z)
    return e, z, log_shifted_z + shift, log_shifted_z - (_pick(x, t) - shift)


def softmax_cross_entropy(x, target, weight=None, ignore_index=-100, smoothing=0.0, gamma=0.0,
                          sample_weight=None, reduce_by=None):
    """Per-sample loss -sum_c a_nc log softmax(x_n)_c (class axis 1), or its sum / reduce_by;
    returns (loss, saved)."""
    w_row = None if weight is None else _along_classes(weight, x.ndim)
    if target.dtype.kind == "f":
        shifted = x - x.max(axis=1, keepdims=True)
        a = _dense_coefficients(target, w_row, smoothing, sample_weight)
        total = a.sum(axis=1)
        weighted = (a * shifted).sum(axis=1)
        e = np.exp(shifted, out=shifted)
        z = _row_sums(e)
        return _reduced(total * np.log(z) - weighted, reduce_by), dict(e=e, z=z, a=a, total=total)

    t, hot, spread = _index_coefficients(x, target, weight, ignore_index, smoothing,
                                         sample_weight)
    e, z, log_z, nll = _index_nll(x, t)
    hot_grad = hot
    if gamma:
        mod, focal_weight = _focal_factors(nll, gamma)
        nll = mod * nll
        hot_grad = hot * focal_weight
    scale = hot * (1 - smoothing)
    loss = nll if type(scale) is float and scale == 1.0 else nll * scale  # skip a pass by 1
    hot_coef = total = hot_grad * (1 - smoothing)
    if spread is not None:
        n_weight = x.shape[1] if weight is None else weight.sum()
        row_sum = (x * w_row).sum(axis=1) if w_row is not None else x.sum(axis=1)
        loss = loss + spread * (n_weight * log_z - row_sum)
        total = total + spread * n_weight
    saved = dict(e=e, z=z, t=t, hot=hot_coef, spread=spread, total=total)
    return _reduced(loss, reduce_by), saved


def _dense_coefficients(target, w_row, smoothing, sample_weight):
    a = target * (1 - smoothing) + smoothing / target.shape[1] if smoothing else target
    if w_row is not None:
        a = a * w_row
    if sample_weight is not None:
        a = a * _per_sample(sample_weight)
    return a


def softmax_cross_entropy_vjp(xp, g, out, x, target, weight=None, ignore_index=-100,
                              smoothing=0.0, gamma=0.0, sample_weight=None, reduce_by=None,
                              saved=None):
    """d loss / d x = g * (p * sum_c a - a), from the saved exp(x - max) in place."""
    if reduce_by is not None:
        g = g / reduce_by  # every sample's cotangent: a scalar
    if saved is None:
        return _vjp_recomputed(xp, g, x, target, weight, ignore_index, smoothing, gamma,
                               sample_weight)
    e = saved["e"]
    e *= _per_sample(g * saved["total"] / saved["z"])
    if target.dtype.kind == "f":
        e -= _per_sample(g) * saved["a"]
        return e
    _add_at_target(e, saved["t"], -(g * saved["hot"]))
    if saved["spread"] is not None:
        row = _per_sample(g * saved["spread"])
        e -= row * _along_classes(weight, x.ndim) if weight is not None else row
    return e


def _vjp_recomputed(xp, g, x, target, weight, ignore_index, smoothing, gamma, sample_weight):
    """The same gradient in differentiable xp operations (used under create_graph)."""
    p = xp.softmax(x, axis=1)
    raw_x = xp.raw(x)
    g_b = _per_sample(g)
    w_row = None if weight is None else _along_classes(weight, raw_x.ndim)
    if xp.raw(target).dtype.kind == "f":
        a = _dense_coefficients(target, w_row, smoothing, sample_weight)
        return g_b * (p * a.sum(axis=1, keepdims=True) - a)
    t, hot, spread = _index_coefficients(raw_x, xp.raw(target), weight, ignore_index, smoothing,
                                         sample_weight)
    hot_mask = np.zeros(raw_x.shape, dtype=raw_x.dtype)
    _add_at_target(hot_mask, t, 1)
    hot_coef = np.asarray(hot * (1 - smoothing), dtype=raw_x.dtype)
    if gamma:
        p_t = (p * hot_mask).sum(axis=1)
        logp_t = (xp.log_softmax(x, axis=1) * hot_mask).sum(axis=1)
        q = 1 - p_t
        focal = q ** gamma - gamma * p_t * q ** (gamma - 1) * logp_t
        hot_coef = focal * hot_coef
    hot_b = _per_sample(hot_coef)
    a = hot_mask * hot_b
    total = hot_b
    if spread is not None:
        smooth = _per_sample(spread) * (w_row if w_row is not None else np.ones_like(raw_x))
        a = a + smooth
        total = total + smooth.sum(axis=1, keepdims=True)
    return g_b * (p * total - a)


def softmax_cross_entropy_target_vjp(xp, g, out, x, target, weight=None, ignore_index=-100,
                                     smoothing=0.0, gamma=0.0, sample_weight=None,
                                     reduce_by=None, saved=None):
    """d loss / d q for probability targets: -g (1 - eps) w_c log p_c."""
    if reduce_by is not None:
        g = g / reduce_by
    coef = -(1 - smoothing) * _per_sample(g)
    if weight is not None:
        coef = coef * _along_classes(weight, x.ndim)
    if sample_weight is not None:
        coef = coef * _per_sample(sample_weight)
    return coef * xp.log_softmax(x, axis=1)


# ----------------------------------------------------------------------------------------------
# binary cross-entropy


def bce_with_logits(x, t, weight=None, pos_weight=None):
    """(1 - t) x + L softplus(-x), L = 1 + (pos_weight - 1) t: -[pw t log s(x) + (1-t) log s(-x)]
    with softplus(-x) = log(1 + e^-x) evaluated by logaddexp, so any logit is safe."""
    soft = np.logaddexp(0, -x)
    loss = (1 - t) * x + (soft if pos_weight is None else (1 + (pos_weight - 1) * t) * soft)
    return loss if weight is None else loss * weight


def bce_with_logits_vjp_x(xp, g, out, x, t, weight=None, pos_weight=None):
    """g w (L sigmoid(x) - pw t)  (= g w (sigmoid(x) - t) without pos_weight)."""
    if pos_weight is None:
        d = xp.sigmoid(x) - t
    else:
        d = (1 + (pos_weight - 1) * t) * xp.sigmoid(x) - pos_weight * t
    return g * d if weight is None else g * weight * d


def bce_with_logits_vjp_t(xp, g, out, x, t, weight=None, pos_weight=None):
    """g w ((pw - 1) softplus(-x) - x)."""
    d = -x if pos_weight is None else (pos_weight - 1) * xp.softplus(-x) - x
    return g * d if weight is None else g * weight * d


_LOG_FLOOR = -100  # torch clamps BCE's logs at -100 so p = 0 or 1 gives a finite loss


def bce(p, t, weight=None):
    """-w [t log p + (1 - t) log(1 - p)] with both logs clamped at -100, as torch."""
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), _LOG_FLOOR)
        log_1mp = np.maximum(np.log1p(-p), _LOG_FLOOR)
    loss = -(t * log_p + (1 - t) * log_1mp)
    return loss if weight is None else loss * weight


_BCE_FLOOR = np.float32(1e-12)  # torch's EPSILON, a float32 constant even in float64


def bce_vjp_p(xp, g, out, p, t, weight=None):
    """g w (p - t) / max(p (1 - p), 1e-12), torch's formula."""
    d = (p - t) / xp.clamp(p * (1 - p), min=_BCE_FLOOR)
    return g * d if weight is None else g * weight * d


def bce_vjp_t(xp, g, out, p, t, weight=None):
    """g w (log(1 - p) - log p), logs clamped at -100 (the derivative of the clamped forward)."""
    with np.errstate(divide="ignore"):  # log 0 = -inf is clamped, as in the forward
        d = xp.clamp(xp.log(1 - p), min=_LOG_FLOOR) - xp.clamp(xp.log(p), min=_LOG_FLOOR)
    return g * d if weight is None else g * weight * d
