"""The array seam (retrograd.backend): the core reaches NumPy only through it, imports flow one
way, and the NumPy backend's fast paths and ownership proof agree with plain NumPy."""

import ast
import pathlib
import sys

import numpy as np
import pytest

import retrograd
from retrograd import backend
from retrograd.backend import numpy_backend as nb

SRC = pathlib.Path(retrograd.__file__).parent
CORE = ["tensor.py", "tensor_methods.py", "engine.py", "autograd.py", "functions.py", "random.py",
        "grad_mode.py", *(f"ops/{p.name}" for p in sorted((SRC / "ops").glob("*.py")))]
# modules above the core that must also reach NumPy only through the seam (host-side code --
# data/, train/, course/, viz/ -- may use NumPy, and so may optim/lr_finder.py, whose arithmetic
# is on Python floats)
NO_NUMPY = CORE + ["cuda.py", "targets.py", "cpu.py",
                   *(str(p.relative_to(SRC)) for p in sorted((SRC / "optim").glob("*.py"))
                     if p.name != "lr_finder.py"),
                   *(str(p.relative_to(SRC)) for p in sorted((SRC / "nn").rglob("*.py")))]
# the layers, lowest first: a module may import only from its own layer or lower ones
LAYERS = [{"backend"}, {"ops"}, {"grad_mode"}, {"engine", "tensor_methods"}, {"tensor"},
          {"autograd", "functions", "random"}]


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports as 'retrograd.x')."""
    package = ["retrograd", *path.relative_to(SRC).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            if not node.module:  # from . import x: x is a module of the package
                names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("name", NO_NUMPY)
def test_the_core_names_numpy_only_through_the_backend(name):
    imports = imported_modules(SRC / name)
    assert not {m for m in imports if m == "numpy" or m.startswith("numpy.")}, imports
    names = {n.id for n in ast.walk(ast.parse((SRC / name).read_text()))
             if isinstance(n, ast.Name)}
    assert not names & {"np", "numpy"}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "retrograd" or len(parts) < 2:
        return None
    for k, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return k
    return None


@pytest.mark.parametrize("name", CORE)
def test_imports_flow_one_way(name):
    """backend <- ops <- grad_mode <- engine, tensor_methods <- tensor <- autograd, functions,
    random: no module imports a higher layer (which rules out the old tensor <-> engine and
    tensor <-> tensor_methods cycles), and none imports a sibling of its own layer."""
    own = layer_of("retrograd." + name.removesuffix(".py").replace("/", "."))
    for module in imported_modules(SRC / name):
        k = layer_of(module)
        if k is None or module.split(".")[1] == name.split("/")[0].removesuffix(".py"):
            continue
        assert k < own, f"{name} imports {module} (layer {k}, its own is {own})"


def test_importing_retrograd_loads_no_optional_array_library():
    import subprocess

    code = ("import sys, retrograd; bad = {'cupy', 'torch', 'jax'} & set(sys.modules); "
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ finding an array's backend


def test_of_finds_the_numpy_backend_for_arrays_subclasses_and_scalars():
    assert backend.of(np.ones(3)) is nb
    assert backend.of(np.ma.masked_array([1.0, 2.0])) is nb  # a subclass of ndarray
    for scalar in (1.5, 3, True, np.float32(2), None):
        assert backend.of(scalar) is nb
    assert backend.of_arrays([2.0, None, np.zeros(2)]) is nb
    assert backend.is_array(np.zeros(2)) and not backend.is_array([1.0]) \
        and not backend.is_array(np.float64(1.0))


def test_register_refuses_a_backend_missing_part_of_the_vocabulary():
    import types

    partial = types.ModuleType("half")
    partial.NAME, partial.ARRAY_TYPES = "half", (memoryview,)
    partial.exp = np.exp
    with pytest.raises(TypeError, match=r"backend 'half' lacks \[.*'may_overwrite'"):
        backend.register(partial)
    assert backend.of(memoryview(b"x")) is nb  # nothing was registered


def test_the_numpy_backend_provides_its_whole_vocabulary():
    missing = [name for name in nb.VOCABULARY if not hasattr(nb, name)]
    assert missing == []


def test_from_data_takes_torch_dtypes_and_copies():
    assert backend.from_data([1.5, 2]).dtype == np.float32
    assert backend.from_data([1, 2]).dtype == np.int64
    assert backend.from_data([True]).dtype == np.bool_
    assert backend.from_data(2.5, dtype=np.float64).dtype == np.float64
    a = np.arange(3, dtype=np.int32)
    b = backend.from_data(a)
    assert b.dtype == np.int32 and not np.shares_memory(a, b)
    with pytest.raises(TypeError, match="data of type <U1"):
        backend.from_data(["a"])


# ------------------------------------------------------------------ may this buffer be overwritten


def test_may_overwrite_a_fresh_array_held_by_one_variable():
    a = np.ones((3, 4)) @ np.ones((4, 5))
    assert nb.may_overwrite(a)


def test_may_not_overwrite_an_array_held_twice():
    a = np.ones(4)
    others = [a]
    assert not nb.may_overwrite(a)
    others.clear()
    assert nb.may_overwrite(a)


def test_may_overwrite_a_transposed_fresh_product_but_not_a_shared_base():
    a = (np.ones((3, 4)) @ np.ones((4, 5))).T
    assert nb.may_overwrite(a)
    base = a.base
    assert not nb.may_overwrite(a)  # the base is visible through another name
    del base
    assert nb.may_overwrite(a)


def test_may_not_overwrite_a_partial_view_or_a_read_only_array():
    a = np.ones((4, 4))[:2]  # its base is larger than the view
    assert not nb.may_overwrite(a)
    b = np.ones(3)
    b.flags.writeable = False
    assert not nb.may_overwrite(b)
    c = np.broadcast_to(np.ones(3), (2, 3))
    assert not nb.may_overwrite(c)


# ------------------------------------------------------------------ the loss kernels' fast paths


def test_fast_exp_matches_numpy_exp_to_float32_rounding():
    """The kernels' exp (exp2(x log2 e) where that is faster) against NumPy's exp in float64:
    the relative error stays within a few float32 ulps plus the rounding of x log2 e."""
    x = np.linspace(-87, 88, 200_001, dtype=np.float32)
    exact = np.exp(x.astype(np.float64))
    rel = np.abs(nb.fast_exp(x).astype(np.float64) - exact) / exact
    assert np.all(rel <= 4 * 2.0 ** -24 + 1.2e-7 * np.abs(x))
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(nb.fast_exp(x64), np.exp(x64))  # float64 is never approximated
    out = np.empty_like(x)
    assert nb.fast_exp(x, out=out) is out


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)])
def test_row_sums_and_class_gathers_match_numpy_indexing(shape):
    rng = np.random.default_rng(0)
    for a in (rng.standard_normal(shape), np.asfortranarray(rng.standard_normal(shape))):
        t = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
        np.testing.assert_allclose(nb.row_sums(a), a.sum(axis=1), rtol=1e-12)
        picked = np.take_along_axis(a, t[:, None], axis=1)[:, 0]
        np.testing.assert_array_equal(nb.take_class(a, t), picked)
        v = rng.standard_normal(t.shape)
        expected = a.copy()
        for index in np.ndindex(*t.shape):
            n, rest = index[0], index[1:]
            expected[(n, t[index]) + rest] += v[index]
        b = a.copy()
        nb.add_to_class(b, t, v)
        np.testing.assert_allclose(b, expected, rtol=1e-12)


def test_scatter_add_accumulates_repeated_indices_and_reductions_cover_every_axis():
    out = np.zeros(4)
    nb.scatter_add(out, np.array([0, 2, 0]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out, [4.0, 0.0, 2.0, 0.0])
    a = np.arange(6.0).reshape(2, 3)
    assert nb.reduce_sum(a, None) == 15 and nb.reduce_min(a, None) == 0 \
        and nb.reduce_max(a, None) == 5


def test_random_draws_follow_the_seeded_generator():
    """The backend's draws are the host generator's own (the seed fixes them bit for bit)."""
    u = nb.uniform(nb.default_rng(3), (2, 3), np.float32)
    np.testing.assert_array_equal(u, np.random.default_rng(3).random((2, 3), dtype=np.float32))
    z = nb.standard_normal(nb.default_rng(4), (5,), np.float64)
    np.testing.assert_array_equal(z, np.random.default_rng(4).standard_normal(5))


def test_a_registered_backend_runs_the_forwards_and_the_backward_of_its_arrays(monkeypatch):
    """Dispatch by array type: tensors over a second backend's arrays (here a tagged ndarray
    subclass whose backend records its calls) run the loss kernel's fast paths, the ownership
    proof and the plain backward's namespace of that backend; the gradients stay torch's."""
    import types

    import torch

    class Tagged(np.ndarray):
        pass

    calls = []
    tagged = types.ModuleType("tagged")
    for name in nb.VOCABULARY:
        setattr(tagged, name, getattr(nb, name))
    tagged.NAME, tagged.ARRAY_TYPES, tagged.ndarray = "tagged", (Tagged,), Tagged
    tagged.asarray = lambda a, dtype=None: np.asarray(a, dtype).view(Tagged)

    def recorded(name):
        def call(*args, **kwargs):
            calls.append(name)
            return getattr(nb, name)(*args, **kwargs)
        return call

    for name in ("fast_exp", "row_sums", "add_to_class", "may_overwrite"):
        setattr(tagged, name, recorded(name))
    monkeypatch.setattr(backend, "_BY_TYPE", dict(backend._BY_TYPE))
    monkeypatch.setattr(backend, "_BACKENDS", list(backend._BACKENDS))
    backend.register(tagged)

    rng = np.random.default_rng(0)
    x_np, y_np = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    x = retrograd.from_numpy(x_np.copy().view(Tagged)).requires_grad_()
    loss = retrograd.nn.functional.cross_entropy(x, retrograd.from_numpy(y_np.view(Tagged)))
    assert type(loss.numpy()) is Tagged
    loss.backward()
    assert calls == ["fast_exp", "row_sums", "add_to_class", "may_overwrite"]
    xt = torch.tensor(x_np, requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.from_numpy(y_np)).backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
