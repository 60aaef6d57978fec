"""The primitive table: every differentiable operation, its forward and its VJP side by side.

    registry.py    Primitive, `primitive(...)` (the one registration, which normalizes every way
                   of writing VJPs into one calling convention), PRIMITIVES, the namespaces
                   (`array_namespace`, `namespace`)
    elementwise.py arithmetic, functions, where, clamp, astype
    linalg.py      matmul, linear, linear_relu (joint VJPs)
    shapes.py      sum, amax, reshape, transpose, broadcast_to / sum_to, getitem / scatter_add,
                   cat
    softmax.py     softmax, log_softmax
    losses.py      the fused softmax cross-entropy and binary cross-entropies
    conv.py        conv (im2col + one GEMM) and its two gradients, conv_input_grad and
                   conv_weight_grad (each one's VJP is made of the other two); 2-D stride 1
                   channels-last, strided and 1-D ones through conv_cf.py (channels-first)
    pool.py        max_pool, avg_pool and its adjoint avg_pool_backward
    norm.py        normalize (BatchNorm / LayerNorm), vector_norm
    activation.py  erf, gelu, gelu_tanh, silu, leaky_relu, elu
    embedding.py   embedding (a row lookup whose gradient skips padding_idx)
    random.py      dropout's mask, drawn in the forward (outside the table: no gradient)

A forward is written against `xp`, the arrays' backend (retrograd.backend), and a VJP against
`ops`, the table itself as a namespace: on arrays during a plain backward (nothing is wrapped,
no graph is built), on Tensors under create_graph (the same VJP code then produces a
differentiable gradient). Besides `ops.<primitive>`, VJPs use only what arrays and Tensors
share: the operators ``+ - * / ** @ > ==``, ``.T``, ``.mT``, ``.reshape(shape)``,
``.sum(axis=, keepdims=)``, ``.shape``, ``.ndim``, ``.dtype``; ``ops.raw(t)`` gives the array
behind a value, for masks that carry no gradient, and ``ops.xp`` the arrays' backend.

Adding a primitive is one ``primitive(...)`` call in one of these files (a new family gets its
own file, imported below). Elementwise entries are tested by finite differences automatically
(tests/test_ops_table.py); any other entry needs a case there, and the suite fails until it has
one. For example, an elementwise entry (one VJP per argument) and one whose gradients share
work (a joint VJP):

    primitive("softsign", lambda xp, x: x / (1 + xp.abs(x)),
              lambda ops, g, out, x: g / ((1 + ops.abs(x)) * (1 + ops.abs(x))),
              elementwise=True)

    def _bilinear_vjp(ops, g, out, x, w, y, *, wanted, g_private=False):
        g = g.reshape(g.shape + (1,))  # x W y^T per row: the gradients share x W and W y^T
        return (g * (y @ w.mT) if 0 in wanted else None,
                (x * g).mT @ y if 1 in wanted else None,
                g * (x @ w) if 2 in wanted else None)

    primitive("bilinear", lambda xp, x, w, y: xp.sum((x @ w) * y, axis=-1),
              joint=_bilinear_vjp, arity=3)  # and a "bilinear" case in the test's CASES
"""

from . import (  # noqa: F401  (each fills the table)
    activation,
    conv,
    elementwise,
    embedding,
    linalg,
    losses,
    norm,
    pool,
    shapes,
    softmax,
)
from .random import DROPOUT_MASK
from .registry import PRIMITIVES, Primitive, array_namespace, namespace, primitive
from .shapes import kept_shape, sum_to

__all__ = ["DROPOUT_MASK", "PRIMITIVES", "Primitive", "array_namespace", "kept_shape",
           "namespace", "primitive", "sum_to"]
