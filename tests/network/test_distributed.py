"""Data-parallel products on torch.distributed (two gloo processes on the CPU): the same top-K
as one process, for tensors, for per-rank DataLoaders of different sizes and after a kill and
a resume from rank 0's checkpoint, and a failing rank stops every rank with its message."""

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import hessian_powerlaw as hp


def _problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 3, (30,))
    return model, x, y


def _spectrum(model, data, checkpoint=None):
    return hp.top_spectrum(
        model,
        nn.CrossEntropyLoss(),
        data,
        k=6,
        solver="lanczos",
        dtype=torch.float64,
        tol=1e-9,
        checkpoint=checkpoint,
    )


def _worker(rank, world, folder, case):
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=world)
    model, x, y = _problem()
    if case == "loader":  # shards of different sizes: rank 0 the first 17 samples, rank 1 the last 13
        part = slice(0, 17) if rank == 0 else slice(17, 30)
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[part], y[part]), batch_size=8)
    elif case == "failing" and rank == 1:
        data = (x, y[:3])  # this rank's data are broken
    else:
        data = (x, y)
    out = {}
    try:
        if case == "resume":
            _killed_after_two_saves(model, data, folder)
            dist.barrier()  # the rerun starts once every rank has died
        result = _spectrum(model, data, folder / "c.npz" if case == "resume" else None)
        out["eigenvalues"] = result.eigenvalues.tolist()
        out["checkpoint_left"] = (folder / "c.npz").exists()
        out["hvp_count"] = result.hvp_count
    except Exception as err:
        out["error"] = f"{type(err).__name__}: {err}"
    (folder / f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def _killed_after_two_saves(model, data, folder):
    """Every rank's solve dies at its second checkpoint save (saves after every step)."""
    from hessian_powerlaw.network.eigensolvers import checkpoint

    checkpoint.EVERY, save, saves = 0.0, checkpoint.SolverCheckpoint.save, []

    def save_then_die(self, *args):
        save(self, *args)
        saves.append(1)
        if len(saves) == 2:
            raise InterruptedError

    checkpoint.SolverCheckpoint.save = save_then_die
    try:
        _spectrum(model, data, folder / "c.npz")
    except InterruptedError:
        assert (folder / "c.npz").exists()
    finally:
        checkpoint.SolverCheckpoint.save = save


def _run(tmp_path, case):
    context = mp.start_processes(
        _worker, args=(2, tmp_path, case), nprocs=2, join=False, start_method="spawn"
    )
    deadline = 240
    while not context.join(timeout=deadline):
        pass
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture
def reference():
    model, x, y = _problem()
    return _spectrum(model, (x, y))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("case", ["tensors", "loader", "resume"])
def test_two_ranks_give_the_one_process_spectrum(tmp_path, reference, case):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ranks = _run(tmp_path, case)
    for out in ranks:
        assert "error" not in out, out
        np.testing.assert_allclose(out["eigenvalues"], reference.eigenvalues, rtol=1e-6)
    assert ranks[0]["eigenvalues"] == ranks[1]["eigenvalues"]
    assert not ranks[0]["checkpoint_left"]  # a resumed solve removes its checkpoint
    resumed = case == "resume"  # then the check of the operator adds one product
    assert ranks[0]["hvp_count"] == ranks[1]["hvp_count"] == reference.hvp_count + resumed


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_a_failing_rank_stops_every_rank_with_its_message(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ranks = _run(tmp_path, "failing")
    for out in ranks:
        assert "rank 1 of 2 failed" in out["error"] and "30 samples but y" in out["error"]
