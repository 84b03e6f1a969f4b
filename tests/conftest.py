import copy
import csv
import gzip
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "hessian_powerlaw" / "data" / "pdb"
EDGE = ROOT / "tests" / "data" / "pdb"

# The tests run `hessian-powerlaw` and `snakemake` from the environment running pytest,
# activated or not (`.venv/bin/python -m pytest`).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


class DenseOperator:
    """A symmetric matrix as a solver operator (matmat, n, dtype, device, counters)."""

    def __init__(self, matrix, dtype):
        self.matrix, self.n, self.dtype, self.device = matrix.to(dtype), matrix.shape[0], dtype, "cpu"
        self.hvp_count = self.data_passes = 0

    def matmat(self, v):
        self.hvp_count += v.shape[1]
        self.data_passes += 1
        return self.matrix @ v.to(self.dtype)


def manifest(path):
    with open(path, newline="") as handle:
        return {row["pdb_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="session")
def bundled_manifest():
    return manifest(BUNDLED / "MANIFEST.tsv")


def bundled_files():
    return sorted(BUNDLED.glob("*.pdb.gz"))


def pdb_text(name):
    """Text of a bundled or edge-case entry, e.g. '4hhb' or '3tah'."""
    for folder in (BUNDLED, EDGE):
        path = folder / f"{name}.pdb.gz"
        if path.exists():
            return gzip.decompress(path.read_bytes()).decode()
    raise FileNotFoundError(name)


@pytest.fixture(scope="session")
def tiny_trained():
    """A trained 1-hidden-layer net with 483 parameters on a synthetic 3-class problem (float64),
    its dense Hessian and eigenvalues."""
    from hessian_powerlaw.network.models import mlp
    from hessian_powerlaw.network.operators.autograd import HessianOperator

    torch.manual_seed(0)
    x = torch.randn(300, 12, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    model = mlp(12, 3, 1, 30).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dense = HessianOperator(model, x, y, chunk_size=128, dtype=torch.float64).dense()
    ascending = torch.linalg.eigvalsh(dense).numpy()
    return SimpleNamespace(
        model=model, x=x, y=y, dense=dense, ascending=ascending, descending=ascending[::-1]
    )


@pytest.fixture
def tiny(tiny_trained):
    """tiny_trained with its own copy of the model and an
    autograd Hessian operator of it."""
    from hessian_powerlaw.network.operators.autograd import HessianOperator

    model = copy.deepcopy(tiny_trained.model)
    op = HessianOperator(model, tiny_trained.x, tiny_trained.y, chunk_size=128, dtype=torch.float64)
    return SimpleNamespace(**{**vars(tiny_trained), "model": model, "op": op})
