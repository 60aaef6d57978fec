"""Registration (retrograd.ops.registry): every way of writing VJPs becomes the one stored form,
bad registrations are refused before the table changes, and a new entry is tested by the table's
finite-difference checks just by being registered."""

import numpy as np
import pytest

import retrograd
import test_ops_table
from retrograd.autograd import gradcheck
from retrograd.ops import PRIMITIVES, primitive
from retrograd.tensor import apply


def t64(a):
    return retrograd.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def product_three_ways():
    """x * y registered per argument, jointly and as a variadic primitive (not in the table)."""
    forward = lambda xp, x, y: xp.multiply(x, y)

    def joint(ops, g, out, x, y, *, wanted, g_private=False):
        return (g * y if 0 in wanted else None, g * x if 1 in wanted else None)

    def each(ops, g, out, x, y, *, arg):
        return g * (y if arg == 0 else x)

    return [primitive("p1", forward, lambda ops, g, out, x, y: g * y,
                      lambda ops, g, out, x, y: g * x, register=False),
            primitive("p2", forward, joint=joint, arity=2, register=False),
            primitive("p3", forward, each, variadic=True, register=False)]


@pytest.mark.parametrize("prim", product_three_ways(), ids=["per-argument", "joint", "variadic"])
def test_every_registration_form_gives_the_same_gradients(prim):
    x, y = t64([[1.0, -2.0, 0.5]]), t64([[3.0], [0.25]])  # broadcast to (2, 3)
    apply(prim, x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[3.25, 3.25, 3.25]])  # summed over y's rows
    np.testing.assert_array_equal(y.grad.numpy(), [[-0.5], [-0.5]])
    assert gradcheck(lambda a, b: apply(prim, a, b), [x, y])


def test_the_stored_vjp_computes_only_the_wanted_gradients():
    calls = []

    def first(ops, g, out, x, y):
        calls.append("x")
        return g * y

    def second(ops, g, out, x, y):
        calls.append("y")
        return g * x

    prim = primitive("counted", lambda xp, x, y: x * y, first, second, register=False)
    x, y = t64([2.0]), retrograd.tensor([3.0], dtype=np.float64)  # y needs no gradient
    apply(prim, x, y).sum().backward()
    assert calls == ["x"] and x.grad.item() == 3.0


def test_positions_without_a_vjp_have_no_gradient():
    where, cat = PRIMITIVES["where"], PRIMITIVES["cat"]
    assert [where.has_gradient(i) for i in range(3)] == [False, True, True]
    assert cat.arity is None and all(cat.has_gradient(i) for i in range(5))
    assert PRIMITIVES["linear"].arity == 3 and PRIMITIVES["linear"].overwrites_g
    assert not PRIMITIVES["mul"].overwrites_g


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(vjps=(lambda *a: 0,), joint=lambda *a: 0, arity=1), TypeError, "not both"),
    (dict(vjps=()), TypeError, "not neither"),
    (dict(vjps=(), joint=lambda *a: 0), TypeError, "arity="),
    (dict(vjps=(lambda *a: 0, lambda *a: 0), variadic=True), TypeError, "one VJP"),
    (dict(vjps=(lambda *a: 0,), domain=("complex",)), ValueError, "domains must be among"),
    (dict(name="mul", vjps=(lambda *a: 0,)), ValueError, "'mul' is already defined"),
])
def test_bad_registrations_are_refused_and_leave_the_table_alone(kwargs, error, match):
    before = dict(PRIMITIVES)
    name = kwargs.pop("name", "brand_new")
    vjps = kwargs.pop("vjps")
    with pytest.raises(error, match=match):
        primitive(name, lambda xp, x: x, *vjps, **kwargs)
    assert PRIMITIVES == before


def test_a_new_entry_is_tested_by_being_added(monkeypatch):
    """Registering an elementwise primitive puts it in the table's finite-difference cases
    (first and second order); a wrong VJP would fail them."""
    monkeypatch.setattr(test_ops_table, "PRIMITIVES", dict(PRIMITIVES))
    monkeypatch.setattr("retrograd.ops.registry.PRIMITIVES", test_ops_table.PRIMITIVES)
    monkeypatch.setattr("retrograd.ops.registry._NAMESPACES", [])  # leave the real ones alone
    primitive("cube", lambda xp, x: x * x * x, lambda ops, g, out, x: g * 3 * x * x,
              elementwise=True)
    cases = [c for c in test_ops_table.cases() if c.values[0] == "cube"]
    assert len(cases) == len(test_ops_table.UNARY_SHAPES)
    for case in cases:
        test_ops_table.test_first_derivatives(*case.values)
        test_ops_table.test_second_derivatives(*case.values)
    wrong = primitive("wrong_cube", lambda xp, x: x * x * x, lambda ops, g, out, x: g * x * x,
                      elementwise=True)
    case = next(c for c in test_ops_table.cases() if c.values[0] == "wrong_cube")
    with pytest.raises(retrograd.GradcheckError):
        test_ops_table.test_first_derivatives(*case.values)
    assert wrong.name not in PRIMITIVES  # the real table never saw them
