"""Functional autodiff: `grad` (gradients without touching `.grad`, optionally differentiable)
and `gradcheck` (analytic gradients against central finite differences in float64)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import backend
from .engine import root_gradient, run_backward
from .grad_mode import no_grad
from .tensor import Tensor, _wrap, graph_namespace

_host = backend.host  # the Jacobians are host-side float64 numerics


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple[Tensor | None, ...]:
    """d(sum_k <grad_outputs_k, outputs_k>)/d(inputs), as a tuple with one entry per input.

    `.grad` is left untouched. With create_graph=True the returned gradients are part of a new
    graph, so they can be differentiated again (Hessian-vector products); without it the backward
    runs on plain arrays and builds nothing.
    """
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    grad_outputs = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for t in inputs:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError("grad: every input must be a Tensor that requires grad")
    roots, root_grads = [], []
    direct = {}  # an output that is itself an input contributes its grad_output directly
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not out.requires_grad:
            raise RuntimeError("grad: an output does not require grad (it does not depend on "
                               "any input that requires grad)")
        g = root_gradient(out._data, g._data if isinstance(g, Tensor) else g)
        g = _wrap(g) if create_graph else g
        if out._node is None:
            direct[id(out)] = direct[id(out)] + g if id(out) in direct else g
        else:
            roots.append(out)
            root_grads.append(g)
    retain = create_graph if retain_graph is None else retain_graph
    results = {}
    if roots:
        results = run_backward(roots, root_grads, graph_ops=graph_namespace, targets=inputs,
                               create_graph=create_graph, retain_graph=retain)
    grads = []
    for t in inputs:
        g = results.get(t)
        if id(t) in direct:
            g = direct[id(t)] if g is None else g + direct[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError("grad: one of the inputs was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        grads.append(None if g is None else (g if isinstance(g, Tensor) else _wrap(g)))
    return tuple(grads)


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with finite differences."""


def gradcheck(fn: Callable, inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check fn's gradients against central differences (f(x + eps) - f(x - eps)) / 2 eps.

    Inputs that require grad are checked; all inputs are copied to float64 first (if floating).
    Every output's full Jacobian is compared entry by entry: |analytic - numerical| must be
    <= atol + rtol * |numerical|. On failure raises GradcheckError naming the worst entry
    (or returns False when raise_exception=False).
    """
    inputs = [_float64_copy(t) for t in _as_tuple(inputs)]
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    outputs = _as_tuple(fn(*inputs))
    for k, out in enumerate(outputs):
        analytic = _analytic_jacobian(out, [inputs[i] for i in wrt])
        for j, i in enumerate(wrt):
            numerical = _numerical_jacobian(fn, inputs, i, k, eps)
            bad = _host.abs(analytic[j] - numerical) - (atol + rtol * _host.abs(numerical))
            if bad.size and (bad.max() > 0 or not _host.isfinite(analytic[j]).all()):
                worst = _host.unravel_index(
                    _host.nanargmax(_host.where(_host.isnan(bad), float("inf"), bad)), bad.shape)
                out_idx = _index(worst[0], out.shape)
                in_idx = _index(worst[1], inputs[i].shape)
                a, n = analytic[j][worst], numerical[worst]
                message = (f"gradcheck: Jacobian mismatch for output {k} w.r.t. input {i}: "
                           f"worst at output index {out_idx}, input index {in_idx}: analytic "
                           f"{a:.10g}, numerical {n:.10g} (|difference| {abs(a - n):.3g} > "
                           f"atol + rtol * |numerical| = {atol + rtol * abs(n):.3g})")
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def _index(flat: int, shape: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in _host.unravel_index(flat, shape)) if shape else ()


def _float64_copy(t):
    if not isinstance(t, Tensor):
        return t
    data = t._data.astype(_host.float64) if t.dtype.kind == "f" else t._data.copy()
    return Tensor(data, requires_grad=t.requires_grad)


def _analytic_jacobian(out: Tensor, wrt: list[Tensor]) -> list:
    """Rows of d out / d input, one backward per output element (graph retained)."""
    jac = [_host.zeros((max(out.numel(), 1), t.numel())) for t in wrt]
    if not out.requires_grad:
        return jac
    xp = backend.of(out._data)
    for row in range(out.numel()):
        seed = xp.zeros(out.numel(), dtype=out.dtype)
        seed[row] = 1
        grads = grad(out, wrt, grad_outputs=seed.reshape(out.shape), retain_graph=True,
                     allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                jac[j][row] = backend.of(g._data).to_numpy(g._data).reshape(-1)
    return jac


def _numerical_jacobian(fn, inputs, i: int, k: int, eps: float):
    """d output_k / d input_i by central differences, perturbing the input's array in place."""
    x = inputs[i]._data
    flat = x.reshape(-1)
    out_size = max(_as_tuple(fn(*inputs))[k].numel(), 1) if x.size else 1
    jac = _host.zeros((out_size, x.size))
    with no_grad():
        for col in range(x.size):
            keep = flat[col]
            flat[col] = keep + eps
            plus = _host_float64(_as_tuple(fn(*inputs))[k])
            flat[col] = keep - eps
            minus = _host_float64(_as_tuple(fn(*inputs))[k])
            flat[col] = keep
            jac[:, col] = (plus - minus) / (2 * eps)
    return jac


def _host_float64(t: Tensor):
    """A flat float64 host copy of a tensor's values."""
    return _host.array(backend.of(t._data).to_numpy(t._data), dtype=_host.float64).reshape(-1)
