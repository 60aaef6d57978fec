"""Fused loss kernels, registered in the primitive table: forward and VJPs side by side.

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
passes over the logits, done in place. The exponential, the row sums and the gathers along the
class axis are the backend's (`xp.fast_exp`, `xp.row_sums`, `xp.take_class`): on the CPU they
are the kernel's fast paths.
"""

from __future__ import annotations

from ..backend import dtypes
from .registry import primitive


def _along_classes(w, ndim: int):
    """A per-class vector (C,) shaped to broadcast along the class axis of an ndim array."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _per_sample(v):
    """A per-sample array (N, d...), the loss's shape, made to broadcast against (N, C, d...);
    scalars (0-d) broadcast already."""
    return v.reshape(v.shape[:1] + (1,) + v.shape[1:]) if getattr(v, "ndim", 0) else v


def _reduced(xp, loss, reduce_by):
    """The per-sample losses, or their sum divided by `reduce_by` (1 for 'sum', the summed
    weights or the sample count for 'mean'): reducing inside the node saves two graph nodes."""
    return loss if reduce_by is None else xp.asarray(xp.reduce_sum(loss, None) / reduce_by)


def _index_coefficients(xp, x, target, weight, ignore_index, smoothing, sample_weight):
    """The sparse form of `a` for class-index targets (ignore_index None: nothing is ignored).

    Returns (t, hot, spread): t is the target with ignored entries replaced by class 0, hot the
    weight of each sample's target class (0 for ignored samples; a scalar when it is 1 for all),
    spread the per-sample factor of the smoothing row (None without smoothing).
    """
    dtype = x.dtype
    valid = None if ignore_index is None else target != ignore_index  # None: nothing ignored
    all_valid = valid is None or bool(valid.all())
    t = target if all_valid else xp.where(valid, target, 0)
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
        spread = xp.asarray(spread * (smoothing / x.shape[1]), dtype=dtype)
    return t, hot, spread


def _focal_factors(xp, nll, gamma: float):
    """(modulation (1-p)^g, gradient weight F) of the focal loss, computed from -log p_y.

    Uses 1 - p = -expm1(log p) and F = (1-p)^g (1 - g p log(p)/(1-p)), where log(p)/(1-p) -> -1
    as p -> 1, so both stay finite for any logits and any gamma >= 0.
    """
    logp = xp.minimum(-nll, 0)
    q = -xp.expm1(logp)
    mod = q ** gamma
    ratio = xp.where(q > 0, logp / xp.where(q > 0, q, 1), -1)
    return mod, mod * (1 - gamma * xp.exp(logp) * ratio)


# The exp-first path of _index_nll is taken when every row sum z >= _Z_MIN and every
# z / e_t <= _RATIO_MAX. Then e_t >= _Z_MIN / _RATIO_MAX is a normal number (2^-124 in float32,
# 2^-953 in float64), and entries of exp(x) below the normal range are negligible next to z (off
# by less than 2^-100 of it). Logits whose largest entry is below about -16 (float32) or whose
# loss exceeds about 69 nats take the shifted path, which is exact for any input.
_Z_MIN = {dtypes.float32: 2.0 ** -24, dtypes.float64: 2.0 ** -53}
_RATIO_MAX = {dtypes.float32: 2.0 ** 100, dtypes.float64: 2.0 ** 900}


def _index_nll(xp, x, t):
    """(e, z, shift, nll): e = exp(x - shift), z its row sums, and nll = log(z) + shift - x_t =
    -log softmax(x)_t, computed without cancellation; shift is None where it is 0.

    The usual per-row shift by the max costs a pass over the logits, so exp(x) is tried first
    and checked afterwards on the per-sample vectors alone (see _Z_MIN): when it holds, nothing
    that matters overflowed or lost precision, and nll = log(z / e_t) is exact to float
    rounding even for confident predictions. Otherwise (logits beyond about +-88 in float32,
    very negative logits or a huge loss) the shifted computation runs instead.
    """
    z_min = _Z_MIN.get(x.dtype)
    if x.size and z_min is not None:
        with xp.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            e = xp.fast_exp(x)
            z = xp.row_sums(e)
            ratio = z / xp.take_class(e, t)
        # two reductions (a NaN fails them too) instead of boolean passes
        if xp.reduce_min(z, None) >= z_min and \
                xp.reduce_max(ratio, None) <= _RATIO_MAX[x.dtype]:
            return e, z, None, xp.log(ratio)
    shift = x.max(axis=1)
    e = xp.fast_exp(x - _per_sample(shift))
    z = xp.row_sums(e)
    return e, z, shift, xp.log(z) - (xp.take_class(x, t) - shift)


def softmax_cross_entropy(xp, x, target, weight=None, ignore_index=-100, smoothing=0.0,
                          gamma=0.0, sample_weight=None, reduce_by=None):
    """Per-sample loss -sum_c a_nc log softmax(x_n)_c (class axis 1), or its sum / reduce_by;
    returns (loss, saved)."""
    w_row = None if weight is None else _along_classes(weight, x.ndim)
    if target.dtype.kind == "f":
        shifted = x - x.max(axis=1, keepdims=True)
        a = _dense_coefficients(target, w_row, smoothing, sample_weight)
        total = a.sum(axis=1)
        weighted = (a * shifted).sum(axis=1)
        e = xp.fast_exp(shifted, out=shifted)
        z = xp.row_sums(e)
        loss = total * xp.log(z) - weighted
        return _reduced(xp, loss, reduce_by), dict(e=e, z=z, a=a, total=total)

    t, hot, spread = _index_coefficients(xp, x, target, weight, ignore_index, smoothing,
                                         sample_weight)
    e, z, shift, nll = _index_nll(xp, x, t)
    hot_grad = hot
    if gamma:
        mod, focal_weight = _focal_factors(xp, nll, gamma)
        nll = mod * nll
        hot_grad = hot * focal_weight
    scale = hot * (1 - smoothing)
    loss = nll if type(scale) is float and scale == 1.0 else nll * scale  # skip a pass by 1
    hot_coef = total = hot_grad * (1 - smoothing)
    if spread is not None:
        n_weight = x.shape[1] if weight is None else weight.sum()
        row_sum = (x * w_row).sum(axis=1) if w_row is not None else x.sum(axis=1)
        log_z = xp.log(z) if shift is None else xp.log(z) + shift
        loss = loss + spread * (n_weight * log_z - row_sum)
        total = total + spread * n_weight
    saved = dict(e=e, z=z, t=t, hot=hot_coef, spread=spread, total=total)
    return _reduced(xp, loss, reduce_by), saved


def _dense_coefficients(target, w_row, smoothing, sample_weight):
    a = target * (1 - smoothing) + smoothing / target.shape[1] if smoothing else target
    if w_row is not None:
        a = a * w_row
    if sample_weight is not None:
        a = a * _per_sample(sample_weight)
    return a


def softmax_cross_entropy_vjp(ops, g, out, x, target, weight=None, ignore_index=-100,
                              smoothing=0.0, gamma=0.0, sample_weight=None, reduce_by=None,
                              saved=None):
    """d loss / d x = g * (p * sum_c a - a), from the saved exp(x - max) in place."""
    if reduce_by is not None:
        # every sample's cotangent: a scalar, kept a Python float on arrays so that the factors
        # below cost one vector operation instead of several
        g = float(g) / reduce_by if saved is not None else g / reduce_by
    if saved is None:
        return _vjp_recomputed(ops, g, x, target, weight, ignore_index, smoothing, gamma,
                               sample_weight)
    e = saved["e"]
    e *= _per_sample(g * saved["total"] / saved["z"])
    if target.dtype.kind == "f":
        e -= _per_sample(g) * saved["a"]
        return e
    ops.xp.add_to_class(e, saved["t"], -(g * saved["hot"]))
    if saved["spread"] is not None:
        row = _per_sample(g * saved["spread"])
        e -= row * _along_classes(weight, x.ndim) if weight is not None else row
    return e


def _vjp_recomputed(ops, g, x, target, weight, ignore_index, smoothing, gamma, sample_weight):
    """The same gradient in differentiable `ops` operations (used under create_graph)."""
    p = ops.softmax(x, axis=1)
    raw_x = ops.raw(x)
    xp = ops.xp
    g_b = _per_sample(g)
    w_row = None if weight is None else _along_classes(weight, raw_x.ndim)
    if ops.raw(target).dtype.kind == "f":
        a = _dense_coefficients(target, w_row, smoothing, sample_weight)
        return g_b * (p * a.sum(axis=1, keepdims=True) - a)
    t, hot, spread = _index_coefficients(xp, raw_x, ops.raw(target), weight, ignore_index,
                                         smoothing, sample_weight)
    hot_mask = xp.zeros(raw_x.shape, dtype=raw_x.dtype)
    xp.add_to_class(hot_mask, t, 1)
    hot_coef = xp.asarray(hot * (1 - smoothing), dtype=raw_x.dtype)
    if gamma:
        p_t = (p * hot_mask).sum(axis=1)
        logp_t = (ops.log_softmax(x, axis=1) * hot_mask).sum(axis=1)
        q = 1 - p_t
        focal = q ** gamma - gamma * p_t * q ** (gamma - 1) * logp_t
        hot_coef = focal * hot_coef
    hot_b = _per_sample(hot_coef)
    a = hot_mask * hot_b
    total = hot_b
    if spread is not None:
        smooth = _per_sample(spread) * (w_row if w_row is not None else xp.ones_like(raw_x))
        a = a + smooth
        total = total + smooth.sum(axis=1, keepdims=True)
    return g_b * (p * total - a)


def softmax_cross_entropy_target_vjp(ops, g, out, x, target, weight=None, ignore_index=-100,
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
    return coef * ops.log_softmax(x, axis=1)


# ----------------------------------------------------------------------------------------------
# binary cross-entropy


def bce_with_logits(xp, x, t, weight=None, pos_weight=None):
    """(1 - t) x + L softplus(-x), L = 1 + (pos_weight - 1) t: -[pw t log s(x) + (1-t) log s(-x)]
    with softplus(-x) = log(1 + e^-x) evaluated by logaddexp, so any logit is safe."""
    soft = xp.logaddexp(0, -x)
    loss = (1 - t) * x + (soft if pos_weight is None else (1 + (pos_weight - 1) * t) * soft)
    return loss if weight is None else loss * weight


def bce_with_logits_vjp_x(ops, g, out, x, t, weight=None, pos_weight=None):
    """g w (L sigmoid(x) - pw t)  (= g w (sigmoid(x) - t) without pos_weight)."""
    if pos_weight is None:
        d = ops.sigmoid(x) - t
    else:
        d = (1 + (pos_weight - 1) * t) * ops.sigmoid(x) - pos_weight * t
    return g * d if weight is None else g * weight * d


def bce_with_logits_vjp_t(ops, g, out, x, t, weight=None, pos_weight=None):
    """g w ((pw - 1) softplus(-x) - x)."""
    d = -x if pos_weight is None else (pos_weight - 1) * ops.softplus(-x) - x
    return g * d if weight is None else g * weight * d


_LOG_FLOOR = -100  # torch clamps BCE's logs at -100 so p = 0 or 1 gives a finite loss


def bce(xp, p, t, weight=None):
    """-w [t log p + (1 - t) log(1 - p)] with both logs clamped at -100, as torch."""
    with xp.errstate(divide="ignore"):
        log_p = xp.maximum(xp.log(p), _LOG_FLOOR)
        log_1mp = xp.maximum(xp.log1p(-p), _LOG_FLOOR)
    loss = -(t * log_p + (1 - t) * log_1mp)
    return loss if weight is None else loss * weight


# torch's EPSILON, a float32 constant even in float64 (as a Python float it stays weak: the
# clamp keeps the array's dtype)
_BCE_FLOOR = float(dtypes.float32.type(1e-12))


def bce_vjp_p(ops, g, out, p, t, weight=None):
    """g w (p - t) / max(p (1 - p), 1e-12), torch's formula."""
    d = (p - t) / ops.clamp(p * (1 - p), min=_BCE_FLOOR)
    return g * d if weight is None else g * weight * d


def bce_vjp_t(ops, g, out, p, t, weight=None):
    """g w (log(1 - p) - log p), logs clamped at -100 (the derivative of the clamped forward)."""
    with ops.xp.errstate(divide="ignore"):  # log 0 = -inf is clamped, as in the forward
        d = ops.clamp(ops.log(1 - p), min=_LOG_FLOOR) - ops.clamp(ops.log(p), min=_LOG_FLOOR)
    return g * d if weight is None else g * weight * d


# The course's softmax + cross-entropy against any target, whose gradient is p * sum(a) - a, and
# binary cross-entropy on logits or probabilities.
primitive("softmax_cross_entropy", softmax_cross_entropy, softmax_cross_entropy_vjp,
          softmax_cross_entropy_target_vjp, saves=True)
primitive("bce_with_logits", bce_with_logits, bce_with_logits_vjp_x, bce_with_logits_vjp_t)
primitive("bce", bce, bce_vjp_p, bce_vjp_t)
