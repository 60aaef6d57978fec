"""retrograd.distributed's collectives under `mpiexec -n 2`, against values computed by hand:
all_reduce (every op, tensors, arrays of three dtypes, bools, numbers), the broadcasts, barrier,
and DistributedOptimizer's weighted average of hand-made gradients. This file is also the MPI
program (see test_distributed_mpi.py)."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_distributed_mpi import _check, _load, launch

HERE = Path(__file__).resolve()


def program_collectives(out: str) -> None:
    import retrograd as rg
    import retrograd.distributed as dist

    was = dist.is_initialized()
    dist.init()
    dist.init()  # idempotent
    rank, size = dist.get_rank(), dist.get_world_size()
    r = {"before": np.array(was), "rank": np.array(rank), "size": np.array(size),
         "local_size": np.array(dist.get_local_size()),
         "initialized": np.array(dist.is_initialized())}
    base = np.array([[1.5, -2.0, 3.25], [0.5, 7.0, -1.0]])
    for op in ("sum", "mean", "max", "min"):
        a = base * (rank + 1) + rank  # rank 0: base, rank 1: 2 base + 1
        t = rg.tensor(a.copy())
        out_t = dist.all_reduce(t, op=op)
        r[f"tensor_{op}"] = out_t.numpy().copy()
        r[f"same_object_{op}"] = np.array(out_t is t)
        f32 = a.astype(np.float32).T  # a Fortran-ordered float32 array, reduced in place
        dist.all_reduce(f32, op=op)
        r[f"f32_{op}"] = f32.T.copy()
    ints = np.array([rank + 1, 10 * (rank + 1)], dtype=np.int64)
    dist.all_reduce(ints, op="sum")
    r["int_sum"] = ints
    for op in ("max", "min"):  # any / all
        flags = np.array([True, rank == 1, False])
        r[f"bool_{op}"] = dist.all_reduce(flags, op=op)
    zero_d = np.array(2.0 * rank)
    r["zero_d_sum"] = dist.all_reduce(zero_d, op="sum")
    r["scalar_mean"] = np.array(dist.all_reduce(float(rank + 1), op="mean"))
    r["scalar_sum"] = np.array(dist.all_reduce(rank + 1, op="sum"))
    # broadcast_parameters: a state dict of tensors and arrays of two dtypes, from rank 1
    state = {"w": rg.tensor(np.full((2, 3), float(rank))),
             "b": np.full(4, rank + 0.5, dtype=np.float32),
             "n": np.array([rank * 7], dtype=np.int64)}
    dist.broadcast_parameters(state, root=1)
    r["bcast_w"], r["bcast_b"], r["bcast_n"] = state["w"].numpy(), state["b"], state["n"]
    r["bcast_object"] = np.array(dist.broadcast_object({"rank": rank, "x": [1, 2]}, root=0)
                                 ["rank"])
    # a mismatch (rank 1 has an extra tensor) is a ValueError on every rank, nothing copied
    mine = {"w": np.full(2, float(rank))} if rank == 0 else \
        {"w": np.full(2, float(rank)), "extra": np.zeros(1)}
    try:
        dist.broadcast_parameters(mine, root=0)
        r["mismatch_error"] = np.array("")
    except ValueError as exc:
        r["mismatch_error"] = np.array(str(exc))
    r["mismatch_untouched"] = mine["w"]
    # optimizer state from rank 0
    model = rg.nn.Linear(3, 2)
    opt = rg.optim.Adam(model.parameters(), lr=0.01 * (rank + 1))
    dist.broadcast_optimizer_state(opt, root=0)
    r["opt_lr"] = np.array(opt.param_groups[0]["lr"])
    # barrier: rank 1 writes a file before it; rank 0 must see it after
    marker = Path(f"{out}.marker")
    if rank == 1:
        time.sleep(0.5)
        marker.write_text("1")
    dist.barrier()
    r["marker_seen"] = np.array(marker.exists())
    # synchronize's scalars and the mixed local_batch_size error
    opt = dist.DistributedOptimizer(rg.optim.SGD(model.parameters(), lr=0.1))
    model(rg.ones(1, 3)).sum().backward()
    r["scalars"] = opt.synchronize(local_batch_size=rank + 1, scalars=[rank + 1.0, 10.0])
    opt.zero_grad()
    try:
        opt.synchronize(local_batch_size=3 if rank == 0 else None)
        r["mixed_error"] = np.array("")
    except ValueError as exc:
        r["mixed_error"] = np.array(str(exc))
    # the weighted average by hand: rank 0 has 3 rows, rank 1 has 1; float32 and float64
    # parameters (two buffers), one parameter with a gradient on rank 0 only, one with none,
    # and buckets of 16 bytes (many Allreduce calls, the same sums)
    a = rg.nn.Parameter(np.zeros((2, 2), dtype=np.float32))
    b = rg.nn.Parameter(np.zeros(3))
    c = rg.nn.Parameter(np.zeros(2))
    d = rg.nn.Parameter(np.zeros(1))
    for bucket in (64 << 20, 16):
        opt = dist.DistributedOptimizer(rg.optim.SGD([a, b, c, d], lr=1.0), bucket_bytes=bucket)
        a.grad = rg.tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32) * (rank + 1))
        b.grad = rg.tensor(np.array([1.0, -1.0, 0.5]) + 10 * rank)
        c.grad = rg.tensor(np.array([4.0, 8.0])) if rank == 0 else None
        d.grad = None
        opt.synchronize(local_batch_size=3 if rank == 0 else 1)
        r[f"weighted_a_{bucket}"] = a.grad.numpy().copy()
        r[f"weighted_b_{bucket}"] = b.grad.numpy().copy()
        r[f"weighted_c_{bucket}"] = c.grad.numpy().copy()
        r[f"weighted_d_none_{bucket}"] = np.array(d.grad is None)
        r[f"calls_{bucket}"] = np.array(opt.allreduce_calls)
    # an empty shard: rank 1 has 0 rows and a NaN gradient, which must not count
    opt = dist.DistributedOptimizer(rg.optim.SGD([b], lr=1.0))
    b.grad = rg.tensor(np.array([1.0, 2.0, 3.0]) if rank == 0 else np.full(3, np.nan))
    opt.synchronize(local_batch_size=5 if rank == 0 else 0)
    r["empty_shard"] = b.grad.numpy().copy()
    np.savez(f"{out}.rank{rank}.npz", **r)


@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("mpi") / "coll"
    _check(launch(HERE, "collectives", prefix))
    return {r: _load(prefix, r) for r in (0, 1)}


def test_collectives_against_hand_computed_values(collectives):
    base = np.array([[1.5, -2.0, 3.25], [0.5, 7.0, -1.0]])
    a0, a1 = base, 2 * base + 1
    expected = {"sum": a0 + a1, "mean": (a0 + a1) / 2, "max": np.maximum(a0, a1),
                "min": np.minimum(a0, a1)}
    for rank in (0, 1):
        r = collectives[rank]
        assert not r["before"] and r["initialized"]
        assert (int(r["rank"]), int(r["size"]), int(r["local_size"])) == (rank, 2, 2)
        for op, value in expected.items():
            np.testing.assert_array_equal(r[f"tensor_{op}"], value, err_msg=op)
            assert r[f"same_object_{op}"], "a Tensor is reduced in place and returned"
            np.testing.assert_array_equal(r[f"f32_{op}"], value.astype(np.float32),
                                          err_msg=op)
        np.testing.assert_array_equal(r["int_sum"], [3, 30])
        np.testing.assert_array_equal(r["bool_max"], [True, True, False])
        np.testing.assert_array_equal(r["bool_min"], [True, False, False])
        assert r["zero_d_sum"].shape == () and float(r["zero_d_sum"]) == 2.0
        assert float(r["scalar_mean"]) == 1.5 and int(r["scalar_sum"]) == 3
        np.testing.assert_array_equal(r["bcast_w"], np.full((2, 3), 1.0))
        np.testing.assert_array_equal(r["bcast_b"], np.full(4, 1.5, np.float32))
        np.testing.assert_array_equal(r["bcast_n"], [7])
        assert int(r["bcast_object"]) == 0
        assert "differ" in str(r["mismatch_error"])
        np.testing.assert_array_equal(r["mismatch_untouched"], np.full(2, float(rank)))
        assert float(r["opt_lr"]) == 0.01
        assert r["marker_seen"]
        # scalars summed over the ranks in the gradients' Allreduce
        np.testing.assert_array_equal(r["scalars"], [3.0, 20.0])
        assert "given on 1 of 2 ranks" in str(r["mixed_error"])
        for bucket in (64 << 20, 16):
            np.testing.assert_array_equal(  # (3 g0 + 1 g1) / 4 with g1 = 2 g0
                r[f"weighted_a_{bucket}"],
                np.array([[1.0, 2.0], [3.0, 4.0]], np.float32) * 5 / 4)
            assert r[f"weighted_a_{bucket}"].dtype == np.float32
            np.testing.assert_allclose(r[f"weighted_b_{bucket}"],
                                       np.array([1.0, -1.0, 0.5]) + 10 / 4, rtol=1e-15)
            np.testing.assert_array_equal(r[f"weighted_c_{bucket}"], [3.0, 6.0])
            assert r[f"weighted_d_none_{bucket}"]
        assert int(r[f"calls_{64 << 20}"]) == 2  # one buffer per dtype
        assert int(r["calls_16"]) > 2
        np.testing.assert_array_equal(r["empty_shard"], [1.0, 2.0, 3.0])

if __name__ == "__main__":
    {"collectives": program_collectives}[sys.argv[1]](sys.argv[2])
