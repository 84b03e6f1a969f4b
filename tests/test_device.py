"""The device paths (GPU products, solvers, protein eigenvalues, training and spectra) checked the
same way on every device this machine has: 'cpu' always, 'cuda' where a GPU is (skipped here
otherwise; `benchmarks/gpu_check.sh` runs this file on a GPU machine). Each compares the
device's result with an independent CPU float64 reference."""

import copy
import json

import numpy as np
import pytest
import torch

from conftest import BUNDLED
from hessian_powerlaw import cli
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.models import build
from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.operators.sequential import SequentialHessian
from hessian_powerlaw.protein.analysis import batched_eigenvalues, eigenvalues
from hessian_powerlaw.protein.anm import anm_hessian
from hessian_powerlaw.protein.structure import read_calpha

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
    ),
]


def _lenet_problem(seed=3):
    torch.manual_seed(seed)
    model = build("lenet", (1, 12, 12), 4, 2, 16).double()
    x, y = torch.randn(60, 1, 12, 12, dtype=torch.float64), torch.randint(0, 4, (60,))
    return model, x, y


@pytest.mark.parametrize("device", DEVICES)
def test_block_products_on_the_device_equal_cpu_autograd(device):
    model, x, y = _lenet_problem()
    reference = HessianOperator(model, x, y, chunk_size=16, dtype=torch.float64)
    v = torch.randn(reference.n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = reference.matmat(v)
    fast = SequentialHessian(copy.deepcopy(model).to(device), x, y, chunk_size=16, dtype=torch.float64)
    assert fast.device.type == torch.device(device).type
    for _ in range(2):  # the second pass reads the primal cache
        got = fast.matmat(v.to(device))
        assert got.device.type == torch.device(device).type
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-9, atol=1e-11)


def _small_conv_problem(seed=4):
    """A 193-parameter convolutional net (convolutions, ReLUs, max pools, linear layers) and 60
    images: small enough for a dense Hessian."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    ).double()
    x, y = torch.randn(60, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (60,))
    return model, x, y


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", ["block", "lanczos"])
def test_top_eigenvalues_on_the_device_equal_dense_eigvalsh(device, solver):
    model, x, y = _small_conv_problem()
    reference = HessianOperator(model, x, y, chunk_size=30, dtype=torch.float64)
    dense = reference.matmat(torch.eye(reference.n, dtype=torch.float64))
    exact = np.sort(np.linalg.eigvalsh(((dense + dense.T) / 2).numpy()))[::-1]
    op = SequentialHessian(copy.deepcopy(model).to(device), x, y, chunk_size=30, dtype=torch.float64)
    result = top_eigenpairs(op, 20, solver=solver, tol=1e-9, block_size=4, verify=True, progress=False)
    assert result.converged and result.vectors.device.type == torch.device(device).type
    np.testing.assert_allclose(result.eigenvalues, exact[:20], rtol=1e-7)
    assert result.residuals.max() < 1e-6


@pytest.mark.parametrize("backend", ["torch", pytest.param("cuda", marks=DEVICES[1].marks)])
def test_protein_eigenvalues_on_the_device_equal_lapack(backend):
    """Float64 torch eigvalsh (CPU or GPU), one entry and a batch of equal orders, against
    LAPACK's dsyevd: the 1e-10 agreement the protein side promises."""
    hessian = anm_hessian(read_calpha(BUNDLED / "1aki.pdb.gz")["coords"])
    reference = eigenvalues(hessian.copy(), "scipy")
    scale = reference.max()
    single = eigenvalues(hessian.copy(), backend)
    assert np.max(np.abs(single - reference)) / scale < 1e-10
    shuffled = hessian[::-1, ::-1].copy()  # the same spectrum, another matrix
    for values in batched_eigenvalues([hessian, shuffled], backend):
        assert np.max(np.abs(values - reference)) / scale < 1e-10


@pytest.mark.parametrize("backend", ["torch", pytest.param("cuda", marks=DEVICES[1].marks)])
def test_protein_command_on_the_device_equals_lapack(tmp_path, backend):
    """`protein --eigen-backend torch|cuda` (one process, entries sorted by size and solved in
    batches of equal order) gives the fits of the LAPACK backend, entry by entry."""
    files = [str(BUNDLED / f"{name}.pdb.gz") for name in ("1aki", "3ptb", "1brs")]
    tables = {}
    for name in ("scipy", backend):
        table = tmp_path / f"{name}.tsv"
        assert cli.main(["protein", *files, "--eigen-backend", name, "--out", str(table)]) == 0
        tables[name] = {row["pdb_id"]: row for row in read_tsv(table)}
    assert len(tables["scipy"]) == 3
    for pdb_id, want in tables["scipy"].items():
        got = tables[backend][pdb_id]
        assert got["status"] == want["status"] == "ok" and got["n_zero_modes"] == want["n_zero_modes"]
        for key in ("xmin", "beta", "beta_sigma", "d_ks"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), (pdb_id, key)
        # the lognormal fit is a Nelder-Mead optimisation: round-off moves its stopping point
        assert got["lr_lognormal"] == pytest.approx(want["lr_lognormal"], abs=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_train_and_spectrum_on_the_device(tmp_path, device):
    """`train` and `dnn-spectrum` with --device: the model file loads anywhere, the record's
    eigenvalues equal a float64 ARPACK reference on the CPU."""
    model_path, record_path = tmp_path / "m.pt", tmp_path / "rec.json"
    train = ["train", "--model", "fcn", "--width", "8", "--depth", "1", "--n-train", "256", "--epochs", "1"]
    assert cli.main([*train, "--device", device, "--quiet", "--out", str(model_path)]) == 0
    spectrum = ["dnn-spectrum", str(model_path), "--device", device, "--k", "10", "--n-eval", "200"]
    spectrum += ["--solver", "block", "--block-size", "2", "--tol", "1e-8", "--dtype", "float64", "--quiet"]
    got, want = tmp_path / "got.npy", tmp_path / "want.npy"
    assert cli.main([*spectrum, "--spectrum", str(got), "--out", str(record_path)]) == 0
    record = json.loads(record_path.read_text())
    assert record["device"] == device and record["converged"]
    arpack = ["dnn-spectrum", str(model_path), "--device", "cpu", "--k", "10", "--n-eval", "200"]
    arpack += ["--solver", "arpack", "--tol", "1e-10", "--dtype", "float64", "--quiet"]
    arpack += ["--spectrum", str(want)]
    assert cli.main([*arpack, "--out", str(tmp_path / "arpack.json")]) == 0
    top = np.load(got, allow_pickle=False)[0]
    np.testing.assert_allclose(top, np.load(want, allow_pickle=False)[0], rtol=1e-7)
