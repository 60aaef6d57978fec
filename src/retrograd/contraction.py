"""`retrograd.einsum`: a composition of primitive-table entries, not a primitive of its own.

An equation is contracted two operands at a time, left to right: each pair is permuted and
reshaped into a batched product (batch, left, contracted) @ (batch, contracted, right), the
matmul primitive; a subscript that only one operand carries and nothing later needs is summed
out first. The gradient (to any order) therefore comes from the entries it is made of:
permutes, reshapes, sums, broadcasts and matmul, each already checked by finite differences.

Not supported (a ValueError says so): a subscript repeated within one operand (a diagonal,
"ii->i"), which would need a gather the table does not have as a differentiable view.
"""

from __future__ import annotations

import math
import string

from .tensor import Tensor

_LETTERS = set(string.ascii_letters)


def _parse(equation: str, operands) -> tuple[list[str], str]:
    """Explicit subscripts per operand and the output's ('...' spelled out as spare letters)."""
    equation = equation.replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"einsum(): the equation {equation!r} names {len(inputs)} operands, "
                         f"got {len(operands)}")
    used = set(equation) & _LETTERS
    spare = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in used]
    ell_dims = 0
    for term, t in zip(inputs, operands, strict=True):
        bad = set(term.replace("...", "")) - _LETTERS
        if bad or term.count("...") > 1:
            raise ValueError(f"einsum(): invalid subscripts {term!r} in {equation!r} (letters "
                             "a-z, A-Z and one '...' per operand)")
        if "..." in term:
            ell_dims = max(ell_dims, t.ndim - (len(term) - 3))
    ell = "".join(spare[:ell_dims])
    expanded = []
    for term, t in zip(inputs, operands, strict=True):
        if "..." in term:
            n = t.ndim - (len(term) - 3)
            if n < 0:
                raise ValueError(f"einsum(): operand of shape {tuple(t.shape)} has fewer "
                                 f"dimensions than its subscripts {term!r}")
            term = term.replace("...", ell[ell_dims - n:])
        if len(term) != t.ndim:
            raise ValueError(f"einsum(): the subscripts {term!r} name {len(term)} dimensions, "
                             f"the operand has {t.ndim} (shape {tuple(t.shape)})")
        if len(set(term)) != len(term):
            raise ValueError(f"einsum(): subscript repeated within one operand ({term!r}): "
                             "diagonals are not supported")
        expanded.append(term)
    if arrow:
        out = out.replace("...", ell)  # left out of the output, the ellipsis is summed
        if set(out) - _LETTERS or len(set(out)) != len(out):
            raise ValueError(f"einsum(): invalid output subscripts {out!r} in {equation!r}")
        missing = set(out) - set("".join(expanded))
        if missing:
            raise ValueError(f"einsum(): output subscript {sorted(missing)[0]!r} appears in no "
                             f"operand of {equation!r}")
    else:  # implicit output: the ellipsis, then the letters seen once, in alphabetical order
        counts = "".join(expanded)
        out = ell + "".join(sorted(c for c in set(counts) - set(ell) if counts.count(c) == 1))
    return expanded, out


def _sizes(terms: list[str], operands) -> dict[str, int]:
    """Each subscript's size; ellipsis-style broadcasting allows size 1 against any size."""
    sizes: dict[str, int] = {}
    for term, t in zip(terms, operands, strict=True):
        for c, n in zip(term, t.shape, strict=True):
            if sizes.get(c, 1) != n and n != 1:
                if sizes.get(c, 1) != 1:
                    raise ValueError(f"einsum(): subscript {c!r} has size {n} in an operand of "
                                     f"shape {tuple(t.shape)} and size {sizes[c]} elsewhere")
            sizes[c] = max(sizes.get(c, 1), n)
    return sizes


def _reduce(t: Tensor, term: str, keep: set[str], sizes) -> tuple[Tensor, str]:
    """Sum out the subscripts nothing later needs; broadcast size-1 axes to full size."""
    drop = [i for i, c in enumerate(term) if c not in keep]
    if drop:
        t = t.sum(dim=tuple(drop))
        term = "".join(c for c in term if c in keep)
    full = tuple(sizes[c] for c in term)
    if tuple(t.shape) != full:
        t = t.expand(*full)
    return t, term


def _pair(a: Tensor, ta: str, b: Tensor, tb: str, keep: set[str], sizes) -> tuple[Tensor, str]:
    """a (ta) times b (tb) summed over their shared subscripts that `keep` does not need."""
    batch = [c for c in ta if c in tb and c in keep]
    summed = [c for c in ta if c in tb and c not in keep]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    nb, nc = math.prod(sizes[c] for c in batch), math.prod(sizes[c] for c in summed)
    nl, nr = math.prod(sizes[c] for c in left), math.prod(sizes[c] for c in right)
    a3 = a.permute(*(ta.index(c) for c in batch + left + summed)).reshape(nb, nl, nc)
    b3 = b.permute(*(tb.index(c) for c in batch + summed + right)).reshape(nb, nc, nr)
    letters = batch + left + right
    return (a3 @ b3).reshape(*(sizes[c] for c in letters)), "".join(letters)


def einsum(equation: str, *operands) -> Tensor:
    """out[output subscripts] = sum over the other subscripts of the product of the operands
    (torch.einsum; operands may also be given as one list). Differentiable to any order."""
    from .functions import as_tensor

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a string, got {type(equation).__name__}")
    if not operands:
        raise ValueError("einsum(): at least one operand is required")
    operands = [as_tensor(t) for t in operands]
    terms, out = _parse(equation, operands)
    sizes = _sizes(terms, operands)
    # needed[i]: the subscripts that operands after i and the output still need
    needed = [set(out).union(*terms[i + 1:]) for i in range(len(terms))]
    acc, acc_term = _reduce(operands[0], terms[0], needed[0], sizes)
    for i in range(1, len(operands)):
        t, term = _reduce(operands[i], terms[i], needed[i] | set(acc_term), sizes)
        acc, acc_term = _pair(acc, acc_term, t, term, needed[i], sizes)
    if acc_term == out:
        return acc
    return acc.permute(*(acc_term.index(c) for c in out))
