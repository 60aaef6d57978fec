"""retrograd.einsum against torch.einsum (float64): values, first and second derivatives, over
matrix products, batches, outer products, traces of products, reductions, ellipses, size-1
broadcasting and three operands; bad equations are one ValueError like torch's refusals."""

import numpy as np
import pytest
import torch

import retrograd as rg

CASES = [("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]),
         ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("i,i->", [(4,), (4,)]),
         ("i,j->ij", [(3,), (4,)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]),
         ("ij->j", [(3, 4)]), ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
         ("abc,cd,de->ae", [(2, 3, 4), (4, 5), (5, 2)]), ("ij,ij->ij", [(3, 4), (3, 4)]),
         ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]), ("i,j,k->ijk", [(2,), (3,), (4,)]),
         ("bi,bi->b", [(5, 3), (5, 3)]), ("...i->...", [(2, 3, 4)]),
         ("ij,kj->ik", [(3, 1), (2, 4)]), ("...ij->ij", [(2, 3, 4)]),
         ("ij,ji->", [(3, 4), (4, 3)]), ("b h i d, b h j d -> b h i j", [(2, 2, 3, 4),
                                                                         (2, 2, 5, 4)])]


@pytest.mark.parametrize("equation,shapes", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_torch(equation, shapes):
    rng = np.random.default_rng(len(equation))
    xs = [rng.standard_normal(s) for s in shapes]
    ours = [rg.tensor(x, requires_grad=True) for x in xs]
    theirs = [torch.tensor(x, requires_grad=True) for x in xs]
    out, ref = rg.einsum(equation, *ours), torch.einsum(equation, *theirs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ref.shape)
    # first derivatives with create_graph, then a second derivative through them
    grads = rg.autograd.grad((out * rg.tensor(g)).sum(), ours, create_graph=True)
    tgrads = torch.autograd.grad((ref * torch.tensor(g)).sum(), theirs, create_graph=True)
    for a, b in zip(grads, tgrads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    if len(xs) > 1:  # a bilinear form's second derivative is non-zero across operands
        second = sum(((a * a).sum() for a in grads), rg.tensor(0.0, dtype=np.float64))
        tsecond = sum((a * a).sum() for a in tgrads)
        second.backward()
        tsecond.backward()
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_list_of_operands_and_float32_as_torch():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4,)).astype(
        np.float32)
    out = rg.einsum("ij,j->i", [rg.tensor(a), rg.tensor(b)])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), torch.einsum("ij,j->i", torch.tensor(a),
                                                         torch.tensor(b)).numpy(), rtol=1e-5)


BAD = [("ij,jk->ik", [(3, 4)], "names 2 operands, got 1"),
       ("ij,jk->ik", [(3, 4), (5, 6)], "subscript 'j' has size 5"),
       ("ijk->i", [(3, 4)], "name 3 dimensions, the operand has 2"),
       ("ij->q", [(3, 4)], "output subscript 'q' appears in no operand"),
       ("ii->i", [(3, 3)], "diagonals are not supported"),
       ("i1->i", [(3, 3)], "invalid subscripts"),
       ("ij->ii", [(3, 4)], "invalid output subscripts")]


@pytest.mark.parametrize("equation,shapes,message", BAD, ids=range(len(BAD)))
def test_bad_equations_are_one_value_error(equation, shapes, message):
    with pytest.raises(ValueError, match=message):
        rg.einsum(equation, *[rg.zeros(*s) for s in shapes])
    if message != "diagonals are not supported":  # torch takes diagonals; it refuses the rest
        with pytest.raises(RuntimeError):
            torch.einsum(equation, *[torch.zeros(s) for s in shapes])
