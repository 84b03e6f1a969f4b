"""The Python API for any network: top_spectrum against dense references, blocks, data forms."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import hessian_powerlaw as hp
from hessian_powerlaw.network.models import mlp
from hessian_powerlaw.network.operators.generic import LossHessian


class NormGelu(nn.Module):
    """Linear, LayerNorm, GELU, Linear: curvature in every layer (not piecewise linear)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.act = nn.GELU()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.act(self.norm(self.embed(x))))


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = NormGelu().double()
    x, y = torch.randn(50, 6, dtype=torch.float64), torch.randint(0, 3, (50,))
    op = LossHessian(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)
    dense = op.matmat(torch.eye(op.n, dtype=torch.float64))
    return model, x, y, dense


def test_dense_reference_is_the_autograd_hessian(problem):
    model, x, y, dense = problem
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta):
        params, i = {}, 0
        for name, p in model.named_parameters():
            params[name] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    np.testing.assert_allclose(
        dense.numpy(), torch.autograd.functional.hessian(loss, flat).numpy(), atol=1e-12
    )


def test_top_spectrum_equals_dense_eigvalsh_for_layernorm_and_gelu(problem):
    model, x, y, dense = problem
    reference = torch.linalg.eigvalsh(dense).flip(0).numpy()[:10]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    for data in ((x, y), loader):
        spectrum = hp.top_spectrum(model, nn.CrossEntropyLoss(), data, k=10, dtype=torch.float64, tol=1e-8)
        assert spectrum.products == "autograd" and spectrum.converged
        np.testing.assert_allclose(spectrum.eigenvalues, reference, rtol=1e-8, atol=1e-12)
        assert spectrum.hvp_count > 0 and spectrum.data_passes > 0 and spectrum.seconds >= 0
        assert spectrum.eigenvalues.shape == (10,) and spectrum.residuals.shape == (10,)


def test_block_spectra_equal_the_dense_sub_matrices(problem):
    model, x, y, dense = problem
    blocks = hp.top_spectrum(
        model, nn.CrossEntropyLoss(), (x, y), k=5, blocks="layer", dtype=torch.float64, tol=1e-8
    )
    assert set(blocks) == {"embed", "norm", "head"}
    start = 0
    for name, module in (("embed", model.embed), ("norm", model.norm), ("head", model.head)):
        size = sum(p.numel() for p in module.parameters())
        sub = dense[start : start + size, start : start + size]
        np.testing.assert_allclose(
            blocks[name].eigenvalues, torch.linalg.eigvalsh(sub).flip(0).numpy()[:5], rtol=1e-7, atol=1e-11
        )
        start += size
    globbed = hp.top_spectrum(
        model, nn.CrossEntropyLoss(), (x, y), k=3, blocks="*.weight", dtype=torch.float64
    )
    assert list(globbed) == ["*.weight"] and globbed["*.weight"].n_params == 6 * 8 + 8 + 8 * 3
    with pytest.raises(ValueError, match="matches no parameter"):
        hp.parameter_blocks(model, "conv*")


def test_fast_products_where_the_model_allows_and_the_callers_model_is_left_alone():
    torch.manual_seed(1)
    model = mlp(12, 4, 2, 10).train()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(80, 12), torch.randint(0, 4, (80,))
    fast = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=8, tol=1e-6)
    slow = hp.top_spectrum(model, lambda out, t: nn.functional.cross_entropy(out, t), (x, y), k=8, tol=1e-6)
    assert fast.products == "sequential" and slow.products == "autograd"
    np.testing.assert_allclose(fast.eigenvalues, slow.eigenvalues, rtol=1e-4)
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_any_loss_any_targets():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    spectrum = hp.top_spectrum(model, nn.MSELoss(), (x, y), k=4, solver="dense", dtype=torch.float64)
    op = LossHessian(model, nn.MSELoss(), (x, y), dtype=torch.float64)
    reference = torch.linalg.eigvalsh(op.matmat(torch.eye(op.n, dtype=torch.float64))).flip(0).numpy()[:4]
    np.testing.assert_allclose(spectrum.eigenvalues, reference, rtol=1e-10)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, hessian_powerlaw as hp; hp.power_law_fit; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert callable(hp.top_spectrum) and hp.power_law_fit.__module__ == "hessian_powerlaw.fit"


FACTORIES = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3))

def loader():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=20)

class Payload:
    def __reduce__(self):
        return (print, ("code ran",))
"""


def test_factory_command_line_reads_no_pickle(tmp_path, monkeypatch, capsys):
    import json
    import sys

    from hessian_powerlaw import cli
    from hessian_powerlaw.io import read_tsv

    (tmp_path / "myfactories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import myfactories

    model = myfactories.build()
    with torch.no_grad():
        model[0].weight.mul_(2)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    argv = ["dnn-spectrum", "--model-factory", "myfactories:build", "--data-factory", "myfactories:loader"]
    argv += ["--k", "12", "--tol", "1e-6", "--quiet"]
    assert cli.main([*argv, "--state-dict", "w.pt", "--out", "rec.json"]) == 0
    rec = json.loads((tmp_path / "rec.json").read_text())
    x = torch.cat([b[0] for b in myfactories.loader()])
    y = torch.cat([b[1] for b in myfactories.loader()])
    expected = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=12, tol=1e-6)
    assert rec["lambda_max"] == pytest.approx(float(expected.eigenvalues[0]), rel=1e-4)
    assert rec["n_params"] == 6 * 8 + 8 + 16 + 8 * 3 + 3 and rec["products"] == "autograd"
    assert rec["command"].startswith("hessian-powerlaw dnn-spectrum --model-factory")
    assert cli.main([*argv, "--blocks", "layer", "--out", "blocks.tsv"]) == 0
    assert [r["block"] for r in read_tsv(tmp_path / "blocks.tsv")] == ["0", "1", "3"]
    assert cli.main([*argv, "--curvature", "ggn", "--vectors", "v.npz", "--out", "ggn.json"]) == 0
    ggn = json.loads((tmp_path / "ggn.json").read_text())
    with np.load(tmp_path / "v.npz", allow_pickle=False) as named:
        assert ggn["curvature"] == "ggn" and named["0.weight"].shape == (12, 8, 6)
    for refused in (
        ["--operator", "gradient-covariance"],
        ["--curvature", "fisher", "--blocks", "layer", "--spectrum", "s.npy"],
        ["--n-eval", "10"],
        ["--blocks", "layer", "--spectrum", "s.npy"],
    ):
        assert cli.main([*argv, *refused, "--out", "no.json"]) == 2
        assert "do(es) not apply" in capsys.readouterr().err
    torch.save({"weights": myfactories.Payload()}, tmp_path / "evil.pt")
    assert cli.main([*argv, "--state-dict", "evil.pt", "--out", "no.json"]) == 2
    err = capsys.readouterr()
    assert "not a tensor-only state dict" in err.err and "code ran" not in err.out
    assert cli.main([*argv[:2], "nope:build", *argv[3:], "--out", "no.json"]) == 2
    assert "cannot import 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "no.json").exists()
    sys.modules.pop("myfactories", None)
