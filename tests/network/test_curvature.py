import json
import math

import numpy as np
import pytest
import torch

from hessian_powerlaw import cli
from hessian_powerlaw.network import probe, training
from hessian_powerlaw.network.eigensolvers import SolverError, top_eigenpairs
from hessian_powerlaw.network.models import mlp
from hessian_powerlaw.network.trace import estimate_trace, hutchinson, hutchpp
from hessian_powerlaw.network.training import STUDY_SPEC, train
from hessian_powerlaw.report import curvature

SETTINGS = {**probe.DEFAULTS, "every": 1, "n_eval": 128, "n_hvps": 12, "top_k": 2, "bottom_k": 2}
SPEC = {**STUDY_SPEC, "n_train": 256, "epochs": 2, "schedule": "constant"}


class Quadratic:
    """The Hessian A = Q diag(eigenvalues) Q^T of the loss 0.5 x^T A x."""

    def __init__(self, eigenvalues, seed=0):
        n = len(eigenvalues)
        q, _ = torch.linalg.qr(
            torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        )
        self.a = q @ torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64)) @ q.T
        self.n, self.dtype, self.device = n, torch.float64, "cpu"

    def matmat(self, v):
        return self.a @ v


@pytest.mark.parametrize("estimator", ["hutchinson", "hutchpp"])
def test_trace_of_a_quadratic_is_the_sum_of_its_eigenvalues(estimator):
    values = np.concatenate([np.linspace(5, 1, 50), -np.linspace(0.5, 0.01, 30), np.zeros(120)])
    quad = Quadratic(values)
    est = estimate_trace(quad, estimator, n_hvps=60, seed=3)
    assert est["hvps"] == 60 and est["stderr"] > 0
    assert abs(est["trace"] - values.sum()) < 3 * est["stderr"]


@pytest.mark.parametrize("estimator", ["hutchinson", "hutchpp"])
def test_trace_of_a_network_hessian_matches_the_dense_one(tiny, estimator):
    op, dense = tiny.op, tiny.dense
    exact = float(torch.trace(dense))
    est = estimate_trace(op, estimator, n_hvps=90, seed=1)
    assert abs(est["trace"] - exact) < 3 * est["stderr"], (est, exact)


def test_hutchpp_beats_hutchinson_on_a_power_law_spectrum():
    """Same products, smaller error: the top of a decaying spectrum is captured exactly."""
    values = np.arange(1, 301, dtype=float) ** -1.0
    quad = Quadratic(values, seed=2)
    errors = {name: [] for name in ("hutchinson", "hutchpp")}
    for seed in range(10):
        for name, run in (("hutchinson", hutchinson), ("hutchpp", hutchpp)):
            est = run(quad.matmat, quad.n, 60, seed=seed, dtype=torch.float64)
            errors[name].append(abs(est["trace"] - values.sum()))
    assert np.mean(errors["hutchpp"]) < 0.5 * np.mean(errors["hutchinson"])


def test_trace_estimators_refuse_too_few_products():
    quad = Quadratic(np.ones(10))
    with pytest.raises(ValueError, match="at least 4"):
        estimate_trace(quad, "hutchpp", n_hvps=3)
    with pytest.raises(ValueError, match="at least 2"):
        estimate_trace(quad, "hutchinson", n_hvps=1)
    with pytest.raises(ValueError, match="unknown trace estimator"):
        estimate_trace(quad, "xtrace")


def test_bottom_eigenvalues_match_dense(tiny):
    op, eigenvalues = tiny.op, tiny.ascending
    assert eigenvalues[0] < 0  # a trained network's Hessian has a negative part
    result = top_eigenpairs(op, 4, which="SA", tol=1e-8, progress=False, verify=True)
    norm = np.abs(eigenvalues).max()
    np.testing.assert_allclose(result.eigenvalues, eigenvalues[:4], rtol=0, atol=1e-6 * norm)
    assert result.converged and result.residuals.max() < 1e-6
    with pytest.raises(SolverError, match="lanczos and dense solvers only"):
        top_eigenpairs(op, 4, solver="arpack", which="SA")


def test_measurement_matches_dense(tiny):
    model, x, y, op, dense, eigenvalues = (tiny.model, tiny.x, tiny.y, tiny.op, tiny.dense, tiny.ascending)
    settings = {**SETTINGS, "n_hvps": 60, "top_k": 3, "bottom_k": 3, "tol": 1e-8}
    record = probe.measure(model, x, y, settings, seed=0)
    assert record["lambda_max"] == pytest.approx(eigenvalues[-1], rel=1e-6)
    assert record["top"] == pytest.approx(eigenvalues[::-1][:3].tolist(), rel=1e-6)
    assert record["logdet_top"] == pytest.approx(np.log(eigenvalues[::-1][:3]).sum(), rel=1e-6)
    negative = eigenvalues[:3][eigenvalues[:3] < 0]
    assert record["neg_sum"] == pytest.approx(negative.sum(), rel=1e-5)
    assert record["n_negative"] == len(negative)
    assert abs(record["trace"] - float(torch.trace(dense))) < 3 * record["trace_stderr"]
    assert record["train_loss"] == pytest.approx(op.loss())
    assert record["hvps"] >= 60


@pytest.fixture(scope="module")
def data():
    return training.data_for(SPEC)


def test_curvature_along_training_leaves_training_unchanged(tmp_path, data):
    plain, _ = train(SPEC, tmp_path / "plain.pt", progress=False, data=data)
    measured, _ = train(
        SPEC, tmp_path / "m.pt", metrics=tmp_path / "m.json", progress=False, data=data, curvature=SETTINGS
    )
    for a, b in zip(plain.state_dict().values(), measured.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    metrics = json.loads((tmp_path / "m.json").read_text())
    points = metrics["curvature"]
    assert [p["epoch"] for p in points] == [0, 1, 2]
    assert metrics["curvature_settings"]["n_hvps"] == 12
    assert all(p["n_eval"] == 128 and p["trace_hvps"] == 12 and len(p["bottom"]) == 2 for p in points)
    assert points[-1]["train_loss"] < points[0]["train_loss"]


def test_interrupted_curvature_run_resumes_identically(tmp_path, data, monkeypatch):
    train(
        SPEC,
        tmp_path / "ref.pt",
        metrics=tmp_path / "ref.json",
        progress=False,
        data=data,
        curvature=SETTINGS,
    )
    real = training._measure

    def crash_at_second_epoch(model, x, y, settings, spec, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(model, x, y, settings, spec, epoch)

    monkeypatch.setattr(training, "_measure", crash_at_second_epoch)
    kwargs = {"checkpoint": tmp_path / "run.ckpt", "metrics": tmp_path / "run.json", "progress": False}
    with pytest.raises(KeyboardInterrupt):
        train(SPEC, tmp_path / "run.pt", data=data, curvature=SETTINGS, **kwargs)
    monkeypatch.setattr(training, "_measure", real)
    train(SPEC, tmp_path / "run.pt", data=data, curvature=SETTINGS, **kwargs)
    ref, run = (json.loads((tmp_path / f"{n}.json").read_text())["curvature"] for n in ("ref", "run"))
    strip = lambda points: [{k: v for k, v in p.items() if k != "seconds"} for p in points]  # noqa: E731
    assert strip(ref) == strip(run)


class Recorder:
    """Stands in for the optimizer: keeps the gradient it was asked to step with."""

    def __init__(self, params):
        self.params, self.grads = list(params), []

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step(self):
        self.grads.append(torch.cat([p.grad.reshape(-1) for p in self.params]).clone())


def test_gd_noise_adds_isotropic_noise_of_the_sgd_noise_magnitude():
    torch.manual_seed(0)
    model = mlp(20, 3, 1, 200)
    x, y = torch.randn(600, 20), torch.randint(0, 3, (600,))
    idx = torch.arange(64)
    params = list(model.parameters())
    full = torch.cat(
        [g.reshape(-1) for g in torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params)]
    )
    batch = torch.cat(
        [
            g.reshape(-1)
            for g in torch.autograd.grad(torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), params)
        ]
    )
    rec = Recorder(params)
    loss, _ = training._full_batch_step(
        model, rec, x, y, idx, "gd", torch.Generator().manual_seed(0), chunk=250
    )
    torch.testing.assert_close(rec.grads[0], full, rtol=1e-5, atol=1e-7)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(model(x), y).item(), rel=1e-6)
    training._full_batch_step(model, rec, x, y, idx, "gd-noise", torch.Generator().manual_seed(0))
    noise = rec.grads[1] - full
    target = float((batch - full).norm())
    assert float(noise.norm()) == pytest.approx(target, rel=0.05)  # 4.8k coordinates: ||xi|| concentrates
    assert abs(float(noise.mean())) < 4 * target / len(noise)  # zero mean, no direction preferred
    assert abs(float(torch.dot(noise, batch - full))) < 0.1 * target**2


def test_fits_recover_known_lines():
    fit = curvature.linear_fit([0.01, 0.04, 0.09, 0.16], [3 + 2 * v for v in (0.01, 0.04, 0.09, 0.16)])
    assert (
        fit["slope"] == pytest.approx(2)
        and fit["intercept"] == pytest.approx(3)
        and fit["r2"] == pytest.approx(1)
    )
    assert math.isnan(curvature.linear_fit([1, 2], [1, 2])["slope"])  # two points: no fit
    base = {key: "x" for key in curvature.GROUP_KEYS}
    rows = [
        {**base, "lr": lr, "seed": s, "trace_rate": -5 * lr**2 + 0.01 * s}
        for lr in (0.05, 0.1, 0.2)
        for s in (0, 1)
    ]
    (fit,) = curvature.lr_fits(rows)
    assert fit["n_points"] == 6 and fit["slope"] == pytest.approx(-5, abs=0.01)
    assert curvature.lr_fits([{**r, "lr": 0.1} for r in rows]) == []  # one lr: nothing to fit


def test_cli_trains_with_curvature_and_writes_tables_and_figures(tmp_path):
    for lr in ("0.05", "0.1"):
        argv = ["train", "--n-train", "256", "--epochs", "2", "--lr", lr, "--schedule", "constant", "--quiet"]
        argv += ["--curvature-every", "1", "--curvature-n-eval", "64", "--curvature-n-hvps", "6"]
        argv += ["--curvature-top-k", "2", "--curvature-bottom-k", "2"]
        argv += ["--metrics", str(tmp_path / f"lr{lr}.json"), "--out", str(tmp_path / f"lr{lr}.pt")]
        assert cli.main(argv) == 0
    metrics = sorted(str(p) for p in tmp_path.glob("lr*.json"))
    out = {name: tmp_path / f"{name}.tsv" for name in ("runs", "lr", "neg")}
    assert (
        cli.main(
            [
                "curvature-table",
                *metrics,
                "--out",
                str(out["runs"]),
                "--lr-fits",
                str(out["lr"]),
                "--negative-fits",
                str(out["neg"]),
                "--markdown",
                str(tmp_path / "c.md"),
            ]
        )
        == 0
    )
    text = (tmp_path / "c.md").read_text()
    assert "lr0.05" in text and "Negative eigenvalues against loss" in text
    assert cli.main(["curvature-plots", *metrics, "--out-dir", str(tmp_path / "plots")]) == 0
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {
        f"curvature_{n}.{e}" for n in ("trace", "lr", "negative", "noise") for e in ("png", "pdf")
    } <= names


def test_cli_refuses_unfinished_metrics(tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"spec": {}, "history": []}))
    code = cli.main(
        ["curvature-table", str(tmp_path / "m.json"), "--out", "a", "--lr-fits", "b", "--negative-fits", "c"]
    )
    assert code == 2 and "training did not finish" in capsys.readouterr().err
