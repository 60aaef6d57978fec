"""retrograd.distributed in one process (the world of one) and its sharding rules. The oracles:
torch.utils.data.DistributedSampler (indices, lengths, padding), retrograd's DataLoader and
plain optimizers (what a world of one must reproduce exactly), hand-counted shard sizes, and a
fresh `python` subprocess (no mpi4py import without a launcher). The 2-rank behaviour is in
test_distributed_mpi.py."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import DistributedSampler as TorchSampler

import retrograd as rg
import retrograd.distributed as dist
from retrograd.data import DataLoader, TensorDataset

SRC = Path(__file__).resolve().parent.parent / "src"


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_",
                                                                    "MV2_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


PROBE = ("import sys, retrograd.distributed as d; before = d.is_initialized(); d.init(); "
         "print(before, d.is_initialized(), d.get_rank(), d.get_world_size(), "
         "'mpi4py' in sys.modules)")


# ------------------------------------------------------------------------------------------
# the world


def test_plain_python_is_a_world_of_one_without_importing_mpi4py():
    out = subprocess.run([sys.executable, "-c", PROBE], env=_clean_env(), capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["False", "True", "0", "1", "False"]


def test_single_process_launch_without_mpi4py_is_a_world_of_one(tmp_path):
    """mpiexec -n 1 (PMI_SIZE=1) with mpi4py absent: rank 0 of 1, no error."""
    (tmp_path / "mpi4py").mkdir()
    (tmp_path / "mpi4py" / "__init__.py").write_text("raise ImportError('absent')\n")
    env = _clean_env(PMI_RANK="0", PMI_SIZE="1")
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out[:4] == ["False", "True", "0", "1"]


def test_launcher_detection_from_the_environment():
    assert not dist.launched_by_mpi({})
    assert not dist.launched_by_mpi({"SLURM_NTASKS": "4", "SLURM_PROCID": "1"})
    assert dist.launched_by_mpi({"PMI_RANK": "1", "PMI_SIZE": "2"})
    assert dist.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"})
    assert dist.launched_by_mpi({"PMIX_RANK": "0"})
    # hydra's variables inherited by a child process whose PMI descriptor was not: not a rank
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    assert not dist.launched_by_mpi({"PMI_RANK": "0", "PMI_SIZE": "2", "PMI_FD": str(read)})
    r, w = os.pipe()
    try:
        assert dist.launched_by_mpi({"PMI_RANK": "0", "PMI_SIZE": "2", "PMI_FD": str(r)})
    finally:
        os.close(r)
        os.close(w)


def test_world_of_one_collectives_are_the_identity():
    dist.init()
    assert dist.is_initialized()
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    assert (dist.get_local_rank(), dist.get_local_size()) == (0, 1)
    assert dist.get_comm() is None and dist.is_root()
    dist.barrier()
    t = rg.tensor([[1.0, -2.0], [3.5, 4.0]])
    for op in ("mean", "sum", "max", "min"):
        assert dist.all_reduce(t, op=op) is t
        np.testing.assert_array_equal(t.numpy(), [[1.0, -2.0], [3.5, 4.0]])
    assert dist.all_reduce(2.5) == 2.5 and dist.all_reduce(3, op="sum") == 3
    assert dist.broadcast_object({"a": 1}) == {"a": 1}
    model = rg.nn.Linear(3, 2)
    before = model.weight.numpy().copy()
    dist.broadcast_parameters(model)
    dist.broadcast_parameters(model.named_parameters())
    np.testing.assert_array_equal(model.weight.numpy(), before)


def test_collective_argument_errors():
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(np.ones(2), op="avg")
    with pytest.raises(TypeError, match="op='sum'"):
        dist.all_reduce(np.ones(2, dtype=np.int64))
    with pytest.raises(TypeError, match="expected a Tensor"):
        dist.all_reduce("1")
    with pytest.raises(TypeError, match="sum of a bool array"):
        dist.all_reduce(np.ones(2, dtype=bool), op="sum")
    with pytest.raises(ValueError, match="root must be a rank in 0 .. 0"):
        dist.broadcast_parameters(rg.nn.Linear(2, 2), root=1)
    with pytest.raises(TypeError, match="got a single Parameter"):
        dist.broadcast_parameters(rg.nn.Linear(2, 2).weight)
    with pytest.raises(TypeError, match="'x' is a list"):
        dist.broadcast_parameters({"x": [1.0]})


# ------------------------------------------------------------------------------------------
# DistributedOptimizer in a world of one: the plain optimizer, step for step


def _mlp():
    rg.manual_seed(3)
    return rg.nn.Sequential(rg.nn.Linear(5, 8), rg.nn.ReLU(), rg.nn.Linear(8, 3)).double()


@pytest.mark.parametrize("make", [lambda p: rg.optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: rg.optim.Adam(p, lr=0.01)], ids=["sgd", "adam"])
def test_world_of_one_distributed_optimizer_is_the_optimizer(make, rng):
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    runs = []
    for distributed in (False, True):
        model = _mlp()
        opt = make(model.parameters())
        if distributed:
            opt = dist.DistributedOptimizer(opt)
        for i in range(0, 40, 8):
            opt.zero_grad()
            rg.nn.functional.cross_entropy(model(rg.tensor(x[i:i + 8])),
                                           rg.tensor(y[i:i + 8])).backward()
            opt.step(local_batch_size=8) if distributed else opt.step()
        runs.append((model, opt))
    (m1, o1), (m2, o2) = runs
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for key, value in s1["state"][k].items():
            np.testing.assert_array_equal(value, s2["state"][k][key])


def test_distributed_optimizer_is_the_wrapped_optimizer_for_everything_else():
    model = _mlp()
    inner = rg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    opt = dist.DistributedOptimizer(inner)
    assert isinstance(opt, rg.optim.Optimizer)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    scheduler = rg.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    opt.zero_grad()
    model(rg.ones(2, 5, dtype=rg.float64)).sum().backward()
    opt.step()
    scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.05)
    assert "DistributedOptimizer(SGD" in repr(opt)
    assert opt.allreduce_calls == 0  # a world of one sends nothing


def test_distributed_optimizer_empty_step_and_scalars():
    model = _mlp()
    opt = dist.DistributedOptimizer(rg.optim.SGD(model.parameters(), lr=0.5))
    before = [p.numpy().copy() for p in model.parameters()]
    model(rg.ones(2, 5, dtype=rg.float64)).sum().backward()
    np.testing.assert_array_equal(opt.synchronize(local_batch_size=0, scalars=[1.5, 2]),
                                  [1.5, 2.0])
    assert all(p.grad is None for p in model.parameters())  # no rows: nothing to learn
    opt.step()
    for a, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)


def test_distributed_optimizer_errors():
    model = _mlp()
    with pytest.raises(TypeError, match="LBFGS evaluates the loss several times"):
        dist.DistributedOptimizer(rg.optim.LBFGS(model.parameters()))
    with pytest.raises(TypeError, match="expected a retrograd Optimizer"):
        dist.DistributedOptimizer(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1))
    opt = dist.DistributedOptimizer(rg.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="already distributed"):
        dist.DistributedOptimizer(opt)
    with pytest.raises(ValueError, match="bucket_bytes"):
        dist.DistributedOptimizer(rg.optim.SGD(model.parameters(), lr=0.1), bucket_bytes=0)
    with pytest.raises(ValueError, match="local_batch_size must be >= 0"):
        opt.step(local_batch_size=-1)
    with pytest.raises(TypeError, match="local_batch_size must be an int"):
        opt.step(local_batch_size=2.0)
    with pytest.raises(ValueError, match="scalars must be a flat sequence"):
        opt.synchronize(scalars=[[1, 2]])


# ------------------------------------------------------------------------------------------
# DistributedSampler against torch's


CASES = [(n, N, drop) for n in (0, 1, 3, 10, 11, 17, 64) for N in (1, 2, 3, 4, 5, 16)
         for drop in (False, True)]


@pytest.mark.parametrize("n,N,drop_last", CASES)
def test_sampler_unshuffled_equals_torch(n, N, drop_last):
    """Without shuffling there is no generator: every rank's indices, padding and drop_last
    included, must be torch's."""
    data = list(range(n))
    for rank in range(N):
        ours = dist.DistributedSampler(data, num_replicas=N, rank=rank, shuffle=False,
                                       drop_last=drop_last)
        theirs = TorchSampler(data, num_replicas=N, rank=rank, shuffle=False,
                              drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


@pytest.mark.parametrize("n,N,drop_last", [c for c in CASES if c[0] > 0])
def test_sampler_shuffled_follows_torch_rules(n, N, drop_last):
    """torch draws its permutation with its own generator, so the indices cannot be equal;
    its rules can: our shuffled shard is our permutation taken at torch's unshuffled positions
    (same padding, same drop), shards are equal in size, they cover the dataset (each row at
    most once with drop_last), every rank draws the same permutation, set_epoch changes it."""
    data = list(range(n))
    perm = np.random.default_rng(7 + 2).permutation(n)
    shards = []
    for rank in range(N):
        ours = dist.DistributedSampler(data, num_replicas=N, rank=rank, seed=7,
                                       drop_last=drop_last)
        ours.set_epoch(2)
        positions = list(TorchSampler(data, num_replicas=N, rank=rank, shuffle=False,
                                      drop_last=drop_last))
        assert list(ours) == perm[positions].tolist()
        assert list(ours) == list(ours)  # deterministic
        shards.append(list(ours))
    assert len({len(s) for s in shards}) == 1
    union = [i for s in shards for i in s]
    if drop_last:
        assert len(set(union)) == len(union) == N * (n // N)
    else:
        assert set(union) == set(range(n)) and len(union) == N * -(-n // N)
    first = dist.DistributedSampler(data, num_replicas=N, rank=0, seed=7)
    later = dist.DistributedSampler(data, num_replicas=N, rank=0, seed=7)
    later.set_epoch(1)
    if len(first) > 3:
        assert list(first) != list(later)


def test_sampler_defaults_and_errors():
    sampler = dist.DistributedSampler(range(10))  # the world: rank 0 of 1
    assert (sampler.num_replicas, sampler.rank, sampler.shuffle, sampler.seed) == (1, 0, True, 0)
    assert sorted(sampler) == list(range(10))
    for bad in (2, -1):
        with pytest.raises(ValueError):
            TorchSampler(range(10), num_replicas=2, rank=bad)
        with pytest.raises(ValueError, match="rank"):
            dist.DistributedSampler(range(10), num_replicas=2, rank=bad)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(range(10), num_replicas=0, rank=0)


def test_sampler_drives_retrograd_dataloader():
    ds = TensorDataset(np.arange(10.0)[:, None], np.arange(10))
    sampler = dist.DistributedSampler(ds, num_replicas=3, rank=1, shuffle=False)
    batches = [y.numpy().tolist() for _, y in DataLoader(ds, batch_size=2, sampler=sampler)]
    assert batches == [[1, 4], [7, 0]]  # rows 1, 4, 7 and the padding's first row


# ------------------------------------------------------------------------------------------
# global batches and their shards


def test_local_batch_sizes_and_shards_by_hand():
    assert dist.local_batch_sizes(128, 2) == [64, 64]
    assert dist.local_batch_sizes(15, 2) == [8, 7]  # digits' last batch
    assert dist.local_batch_sizes(1, 2) == [1, 0]
    assert dist.local_batch_sizes(10, 4) == [3, 3, 2, 2]
    batch = np.array([9, 4, 7, 1, 0, 3, 8])
    assert dist.shard_indices(batch, 0, 3).tolist() == [9, 1, 8]
    assert dist.shard_indices(batch, 2, 3).tolist() == [7, 3]
    assert dist.shard_indices(batch[:1], 1, 2).tolist() == []


def test_check_batch_size_refuses_in_one_line():
    assert dist.check_batch_size(128, 2) == 128
    with pytest.raises(ValueError) as info:
        dist.check_batch_size(100, 3)
    assert str(info.value) == ("batch size 100 does not divide among 3 processes: the global "
                               "batch is split into equal shards, use a multiple of 3 (e.g. "
                               "99 or 102)")
    with pytest.raises(ValueError, match="use a multiple of 4 \\(e.g. 4\\)"):
        dist.check_batch_size(2, 4)
    with pytest.raises(ValueError, match="4 processes for 3 training rows"):
        dist.check_batch_size(8, 4, n_rows=3)
    with pytest.raises(ValueError, match="batch size must be an integer >= 1"):
        dist.check_batch_size(0, 1)


def _pairs(loader):
    return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]


@pytest.mark.parametrize("shuffle,drop_last", [(True, False), (False, False), (True, True)])
def test_global_batch_loader_in_a_world_of_one_is_the_dataloader(shuffle, drop_last, rng):
    x, y = rng.standard_normal((37, 3)), np.arange(37)
    ds = TensorDataset(x, y)
    rg.manual_seed(5)
    expected = _pairs(DataLoader(ds, batch_size=8, shuffle=shuffle, drop_last=drop_last))
    after = rg.get_rng_state()
    rg.manual_seed(5)
    loader = dist.GlobalBatchLoader(ds, batch_size=8, shuffle=shuffle, drop_last=drop_last)
    got = _pairs(loader)
    assert rg.get_rng_state() == after  # the same draws from the global generator
    assert len(loader) == len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


@pytest.mark.parametrize("N", [2, 3, 4])
def test_shards_of_a_step_make_the_single_process_batch(N, rng):
    """Rank r's step j for every r, put together, is the DataLoader's batch j: the short last
    batch included, no row twice; ranks past its length get 0 rows."""
    n, batch = 2 * 12 * N + 5, 4 * N
    ds = TensorDataset(rng.standard_normal((n, 2)), np.arange(n))
    expected = [y for _, y in _pairs(DataLoader(ds, batch_size=batch, shuffle=True,
                                                generator=np.random.default_rng(11)))]
    per_rank = []
    for rank in range(N):
        loader = dist.GlobalBatchLoader(ds, batch_size=batch, shuffle=True, rank=rank,
                                        num_replicas=N, generator=np.random.default_rng(11))
        per_rank.append([y for _, y in _pairs(loader)])
        assert len(loader) == len(expected)
    for j, want in enumerate(expected):
        parts = [per_rank[r][j] for r in range(N)]
        assert [len(p) for p in parts] == dist.local_batch_sizes(len(want), N)
        assert sorted(np.concatenate(parts).tolist()) == sorted(want.tolist())


def test_full_batch_shards_are_torch_distributed_sampler_rows():
    """On the same (unshuffled) order, rank r's shard of global batch j is what torch's
    DistributedSampler with a DataLoader of batch B / N gives rank r at step j."""
    n, N, local = 48, 3, 4
    ds = TensorDataset(np.zeros((n, 1)), np.arange(n))
    for rank in range(N):
        ours = [y.tolist() for _, y in _pairs(dist.GlobalBatchLoader(
            ds, batch_size=N * local, rank=rank, num_replicas=N))]
        theirs = [b.tolist() for b in TorchLoader(
            torch.arange(n), batch_size=local,
            sampler=TorchSampler(range(n), num_replicas=N, rank=rank, shuffle=False))]
        assert ours == theirs


def test_global_batch_loader_from_loader_and_errors():
    ds = TensorDataset(np.zeros((10, 1)), np.arange(10))
    loader = dist.GlobalBatchLoader.from_loader(DataLoader(ds, batch_size=4), rank=1,
                                                num_replicas=2)
    assert [y.numpy().tolist() for _, y in loader] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="batch size 5 does not divide among 2"):
        dist.GlobalBatchLoader(ds, batch_size=5, rank=0, num_replicas=2)
    with pytest.raises(ValueError, match="mutually exclusive"):
        dist.GlobalBatchLoader(ds, batch_size=2, shuffle=True, sampler=range(10))
    with pytest.raises(ValueError, match="invalid rank 2"):
        dist.GlobalBatchLoader(ds, batch_size=2, rank=2, num_replicas=2)


def test_launch_command_and_missing_mpiexec(monkeypatch, tmp_path):
    argv = dist.mpiexec_argv(3, ["-m", "retrograd", "train"])
    assert argv[1:] == ["-n", "3", sys.executable, "-m", "retrograd", "train"]
    assert os.access(argv[0], os.X_OK) and os.path.basename(argv[0]) == "mpiexec"
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        dist.mpiexec_argv(0, [])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImportError, match=r"mpiexec was not found\): pip install "
                                          r"'retrograd\[mpi\]'"):
        dist.mpiexec_argv(2, ["-m", "retrograd"])
