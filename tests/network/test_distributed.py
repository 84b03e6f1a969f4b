"""Data-parallel products on torch.distributed (two gloo processes on the CPU): the same top-K
as one process, for tensors and for per-rank DataLoaders of different sizes, and a failing rank
stops every rank with its message."""

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
        result = hp.top_spectrum(
            model, nn.CrossEntropyLoss(), data, k=6, solver="lanczos", dtype=torch.float64, tol=1e-9
        )
        out["eigenvalues"] = result.eigenvalues.tolist()
    except Exception as err:
        out["error"] = f"{type(err).__name__}: {err}"
    (folder / f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


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
    return hp.top_spectrum(
        model, nn.CrossEntropyLoss(), (x, y), k=6, solver="lanczos", dtype=torch.float64, tol=1e-9
    )


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("case", ["tensors", "loader"])
def test_two_ranks_give_the_one_process_spectrum(tmp_path, reference, case):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ranks = _run(tmp_path, case)
    for out in ranks:
        assert "error" not in out, out
        np.testing.assert_allclose(out["eigenvalues"], reference.eigenvalues, rtol=1e-6)
    assert ranks[0]["eigenvalues"] == ranks[1]["eigenvalues"]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_a_failing_rank_stops_every_rank_with_its_message(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ranks = _run(tmp_path, "failing")
    for out in ranks:
        assert "rank 1 of 2 failed" in out["error"] and "30 samples but y" in out["error"]
