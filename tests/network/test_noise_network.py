"""The noise study's network pieces: the dense solver, label smoothing in the Hessian, the exact
trace, the 6220-parameter network, noisy descent and the experiments' records."""

import importlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hessian_powerlaw import cli
from hessian_powerlaw.network.eigensolvers import SolverError, dense, top_eigenpairs
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.models import LeNet, mlp
from hessian_powerlaw.network.noise import small_net
from hessian_powerlaw.network.noise.experiments import equilibrium, trace_run
from hessian_powerlaw.network.operators import HessianOperator, make_operator
from hessian_powerlaw.network.operators.sequential import UnsupportedModel
from hessian_powerlaw.network.spectrum import spectrum_sums
from hessian_powerlaw.network.trace import exact_trace

dense_module = importlib.import_module("hessian_powerlaw.network.eigensolvers.dense")


class Matrix:
    def __init__(self, matrix):
        self.matrix, self.n, self.dtype, self.device = matrix, matrix.shape[0], matrix.dtype, "cpu"
        self.hvp_count = self.data_passes = 0

    def matmat(self, v):
        self.hvp_count += v.shape[1]
        self.data_passes += 1
        return self.matrix @ v


def test_dense_solver_gives_every_eigenvalue_and_equals_block(tiny):
    result = top_eigenpairs(tiny.op, 20, solver="dense", progress=False)
    np.testing.assert_allclose(result.full, tiny.descending, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.eigenvalues, tiny.descending[:20], rtol=1e-9)
    assert result.converged and result.hvp_count == tiny.op.n
    assert np.all(result.residuals < 1e-8)
    block = top_eigenpairs(tiny.op, 20, solver="block", tol=1e-8, progress=False)
    np.testing.assert_allclose(result.eigenvalues, block.eigenvalues, rtol=1e-6)
    bottom = top_eigenpairs(tiny.op, 5, solver="dense", which="SA", progress=False)
    np.testing.assert_allclose(bottom.eigenvalues, tiny.ascending[:5], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(bottom.full, tiny.descending, rtol=1e-9, atol=1e-12)
    sums = spectrum_sums(result.full)
    assert sums["trace"] == pytest.approx(float(torch.trace(tiny.dense)), rel=1e-10)
    negative = tiny.ascending[tiny.ascending < 0]
    assert sums["n_negative"] == int(np.sum(result.full < 0))
    assert abs(sums["n_negative"] - len(negative)) <= int(np.sum(np.abs(tiny.ascending) < 1e-12))
    assert sums["negative_sum"] == pytest.approx(negative.sum(), rel=1e-8, abs=1e-12)


def test_dense_solver_refuses_large_and_asymmetric_operators(monkeypatch):
    monkeypatch.setattr(dense_module, "DENSE_LIMIT", 50)
    with pytest.raises(SolverError, match="exceed its limit of 50.*--solver block"):
        dense(Matrix(torch.eye(60, dtype=torch.float64)).matmat, 60, 3)
    monkeypatch.undo()
    skew = torch.eye(30, dtype=torch.float64)
    skew[0, 1] = 0.5
    with pytest.raises(SolverError, match="not symmetric"):
        dense(Matrix(skew).matmat, 30, 3)
    bad = torch.eye(30, dtype=torch.float64)
    bad[3, 3] = math.nan
    with pytest.raises(SolverError, match="NaN or inf"):
        dense(Matrix(bad).matmat, 30, 3)


def test_label_smoothing_equals_the_reference_formula_in_loss_and_hessian():
    torch.manual_seed(0)
    model = mlp(8, 4, 1, 6).double()
    x, y = torch.randn(40, 8, dtype=torch.float64), torch.randint(0, 4, (40,))
    eps, classes = 0.2, 4
    target = F.one_hot(y, classes).double() * (1 - eps) + eps / classes

    def reference(theta):
        params = dict(zip([n for n, _ in model.named_parameters()], _split(theta, model), strict=True))
        logits = torch.func.functional_call(model, params, (x,))
        return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    ref = torch.autograd.functional.hessian(reference, flat)
    assert float(reference(flat)) == pytest.approx(
        float(F.cross_entropy(model(x), y, label_smoothing=eps)), rel=1e-12
    )
    eye = torch.eye(len(flat), dtype=torch.float64)
    for implementation in ("autograd", "sequential"):
        op = make_operator(model, x, y, implementation, dtype=torch.float64, label_smoothing=eps)
        np.testing.assert_allclose(op.matmat(eye).numpy(), ref.numpy(), rtol=1e-8, atol=1e-11)
        assert op.loss() == pytest.approx(float(reference(flat)), rel=1e-12)
    plain = make_operator(model, x, y, "sequential", dtype=torch.float64)
    assert not torch.allclose(plain.matmat(eye), ref)  # smoothing changes the Hessian


def _split(theta, model):
    out, i = [], 0
    for p in model.parameters():
        out.append(theta[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


@pytest.mark.parametrize(
    "net,shape", [(lambda: mlp(36, 5, 1, 7), (1, 6, 6)), (lambda: LeNet((1, 12, 12), 3), (1, 12, 12))]
)
def test_exact_trace_equals_the_dense_hessian_trace(net, shape):
    torch.manual_seed(1)
    model = net().double()
    x = torch.randn(25, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (25,))
    dense_h = HessianOperator(model, x, y, dtype=torch.float64, label_smoothing=0.1).dense()
    assert exact_trace(model, x) == pytest.approx(float(torch.trace(dense_h)), rel=1e-10)


def test_exact_trace_refuses_layers_with_their_own_curvature():
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
    )
    with pytest.raises(UnsupportedModel):
        exact_trace(model, torch.randn(5, 4))


def test_smoothing_floor_is_the_loss_of_the_smoothed_targets():
    eps, classes = 0.1, 10
    target = torch.full((1, classes), eps / classes)
    target[0, 3] += 1 - eps
    loss = F.cross_entropy(torch.log(target), torch.tensor([3]), label_smoothing=eps)
    assert small_net.smoothing_floor(eps, classes) == pytest.approx(float(loss), rel=1e-6)
    assert small_net.smoothing_floor(0.0, classes) == 0.0


def test_flatness_tells_a_flat_loss_from_a_falling_one():
    rng = np.random.default_rng(0)
    flat = list(0.01 + 1e-4 * rng.standard_normal(40))
    falling = list(np.linspace(0.02, 0.01, 40))
    assert small_net.flatness(flat)[1] and not small_net.flatness(falling)[1]
    assert small_net.flatness(falling)[0] < -0.1


@pytest.fixture(scope="module")
def minimum(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "min.pt"
    settings = {"n_train": 60, "width": 8}
    meta = small_net.minimum(settings, init_seed=3, out=path, epochs=200, lr=0.1, progress=False)
    return path, meta


def test_the_papers_network_has_6220_parameters():
    data = small_net.load_data(small_net.SMALL_NET)
    x, _ = data["train"]
    assert tuple(x.shape) == (500, 1, 14, 14)
    from hessian_powerlaw.network.models import build, n_params

    assert n_params(build("fcn", (1, 14, 14), 10, depth=1, width=30)) == 6220


def test_minimum_is_a_model_file_the_other_commands_read(minimum):
    path, meta = minimum
    model, saved = load_model(path)
    assert saved["label_smoothing"] == 0.1 and saved["pool"] == 2 and saved["n_params"] == meta["n_params"]
    assert meta["history"][0][1] > meta["train_loss"]  # GD lowered the loss
    data = small_net.data_of(saved)
    assert tuple(data["train"][0].shape) == (60, 1, 14, 14)
    assert meta["excess_loss"] == pytest.approx(
        meta["train_loss"] - small_net.smoothing_floor(0.1, 10), rel=1e-12
    )


def test_descent_is_seeded_and_its_noises_have_the_matched_size(minimum):
    path, _ = minimum
    a = small_net.descend(path, "sgd", 0.05, 20, batch_size=5, every=5, seed=1)[2]
    b = small_net.descend(path, "sgd", 0.05, 20, batch_size=5, every=5, seed=1)[2]
    assert a == b and a["step"] == [0, 5, 10, 15, 20]
    gd = small_net.descend(path, "gd", 0.05, 20, every=10)[2]
    assert gd["loss"][-1] < gd["loss"][0]
    model, meta = load_model(path)
    x, y = small_net.data_of(meta)["train"]
    gen_noise = small_net._Noise("isotropic-topk", model, x, y, 0.1, 5, seed=0, top_k=4, refresh=10)
    g, _ = small_net._flat_grad(model, x, y, 0.1)
    xi = gen_noise.direction(0) - g
    basis = gen_noise.basis.to(xi.dtype)
    assert torch.linalg.vector_norm(xi - basis @ (basis.T @ xi)) < 1e-4 * torch.linalg.vector_norm(xi)
    from conftest import ROOT

    with pytest.raises(small_net.TrainingError, match="not a model file of noise-minimum"):
        small_net.descend(ROOT / "tests" / "data" / "dnn" / "lenet_collapsed.pt", "sgd", 0.1, 5)
    with pytest.raises(small_net.TrainingError, match="unknown noise"):
        small_net._Noise("levy", model, x, y, 0.1, 5, 0, 4, 10)


def test_equilibrium_and_trace_records(minimum):
    path, meta = minimum
    rec = equilibrium(path, batch_size=10, lr=0.05, steps=40, every=5, seed=0)
    assert rec["experiment"] == "equilibrium" and rec["n_params"] == meta["n_params"]
    assert rec["n_negative"] > 0 and rec["negative_sum"] < 0 and rec["lambda_min"] < 0
    assert rec["excess_loss"] == pytest.approx(rec["train_loss"] - small_net.smoothing_floor(0.1, 10))
    run = trace_run(path, "sgd", 0.05, batch_size=10, steps=40, every=10, seed=0, rate_from=0.0)
    assert run["history"]["step"] == [0, 10, 20, 30, 40] and len(run["history"]["trace"]) == 5
    _, first = load_model(path)
    model, _ = load_model(path)
    x, y = small_net.data_of(first)["train"]
    assert run["trace_start"] == pytest.approx(exact_trace(model, x), rel=1e-9)
    assert math.isfinite(run["trace_rate"]) and math.isfinite(run["trace_rate_se"])


def test_noise_commands_write_records_with_their_command(minimum, tmp_path, capsys):
    path, _ = minimum
    out = tmp_path / "tr.json"
    base = ["noise-trace", str(path), "--noise", "isotropic", "--lr", "0.05", "--steps", "20"]
    argv = [*base, "--every", "5", "--batch-size", "5", "--out", str(out)]
    assert cli.main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["noise"] == "isotropic" and rec["steps"] == 20
    assert rec["command"].startswith("hessian-powerlaw noise-trace")
    too_big = [*base, "--every", "5", "--batch-size", "999", "--out", str(tmp_path / "no.json")]
    assert cli.main(too_big) == 2
    assert "batch size 999" in capsys.readouterr().err
    assert not (tmp_path / "no.json").exists()
    few = [*base, "--every", "10", "--out", str(tmp_path / "no.json")]
    assert cli.main(few) == 2
    assert "at least 3 measurements" in capsys.readouterr().err


def test_diverged_noise_runs_are_errors_not_records(minimum, tmp_path, capsys):
    path, _ = minimum
    out = tmp_path / "tr.json"
    argv = ["noise-trace", str(path), "--noise", "sgd", "--lr", "1e5", "--steps", "20", "--every", "5"]
    assert cli.main([*argv, "--batch-size", "5", "--out", str(out)]) == 2
    assert "diverged by step" in capsys.readouterr().err and not out.exists()
    with pytest.raises(small_net.TrainingError, match="diverged"):
        small_net.minimum({"n_train": 60}, 0, tmp_path / "m.pt", epochs=20, lr=1e6, progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_dnn_spectrum_dense_reads_a_noise_study_model(minimum, tmp_path):
    path, meta = minimum
    out = tmp_path / "rec.json"
    argv = ["dnn-spectrum", str(path), "--solver", "dense", "--dtype", "float64", "--k", "10", "--quiet"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    model, saved = load_model(path)
    x, y = small_net.data_of(saved)["train"]
    assert rec["n_eval"] == 60 and "label smoothing 0.1" in rec["hessian"]
    assert rec["trace"] == pytest.approx(exact_trace(model.double(), x.double()), rel=1e-9)
    assert rec["negative_sum"] < 0 and rec["n_negative"] > 0 and rec["hvp_count"] == meta["n_params"]


def test_dnn_spectrum_dense_refuses_a_network_above_its_limit(tmp_path, capsys):
    from conftest import ROOT

    model = ROOT / "tests" / "data" / "dnn" / "lenet_collapsed.pt"
    argv = [
        "dnn-spectrum",
        str(model),
        "--solver",
        "dense",
        "--n-eval",
        "10",
        "--quiet",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert cli.main(argv) == 2
    assert "exceed its limit of 16384" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
