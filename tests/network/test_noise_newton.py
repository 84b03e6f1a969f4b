"""Reaching minima and displacing them (the noise study's Fig. 2a): Newton-CG on toy losses
whose minima are known in closed form, the flat-vector loss against autograd and dense
Hessians, the Gauss-Newton refinement of a network minimum, the displacement experiment and
the commands that record them."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from hessian_powerlaw import cli
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.noise import small_net
from hessian_powerlaw.network.noise.experiments import displacement
from hessian_powerlaw.network.noise.flat import FlatLoss
from hessian_powerlaw.network.noise.newton import NewtonError, newton_minimum


def valley():
    """L = (a b - 1)^2 / 2 + c^2: minimal (L = 0) on the hyperbola a b = 1, c = 0, a
    one-dimensional valley of degenerate minima (the Hessian is singular along it)."""

    def loss(t):
        return 0.5 * (t[0] * t[1] - 1) ** 2 + t[2] ** 2

    def gradient(t):
        r = t[0] * t[1] - 1
        return np.array([r * t[1], r * t[0], 2 * t[2]])

    def hvp(t, v):
        r = t[0] * t[1] - 1
        h = np.array([[t[1] ** 2, r + t[0] * t[1], 0], [r + t[0] * t[1], t[0] ** 2, 0], [0, 0, 2]])
        return h @ v

    return loss, gradient, hvp


def test_newton_reaches_the_degenerate_valley_superlinearly():
    loss, gradient, hvp = valley()
    start = np.array([2.0, 2.0, 0.7])
    theta, info = newton_minimum(start, loss, gradient, hvp, gtol=1e-12, max_steps=50)
    assert info["converged"] and info["grad_norm"] < 1e-12
    assert theta[0] * theta[1] == pytest.approx(1.0, abs=1e-12) and abs(theta[2]) < 1e-12
    assert info["steps"] <= 15  # gradient descent needs hundreds on this valley
    assert np.array_equal(start, [2.0, 2.0, 0.7])  # the caller's vector is not changed
    losses = [row[1] for row in info["history"]]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))


def test_newton_on_a_quadratic_takes_a_few_steps():
    a = np.diag([1.0, 10.0, 100.0])
    theta, info = newton_minimum(
        np.ones(3), lambda t: 0.5 * t @ a @ t, lambda t: a @ t, lambda t, v: a @ v, gtol=1e-10, damping=1e-12
    )
    assert info["steps"] <= 4 and np.abs(theta).max() < 1e-9  # inexact (CG to rtol sqrt|g|) but superlinear


def test_newton_refuses_bad_settings_and_non_finite_losses():
    loss, gradient, hvp = valley()
    with pytest.raises(NewtonError, match="gtol"):
        newton_minimum(np.ones(3), loss, gradient, hvp, gtol=0)
    with pytest.raises(NewtonError, match="non-finite"):
        newton_minimum(np.ones(3), lambda t: float("nan"), gradient, hvp)


def tiny_net(linear=False):
    torch.manual_seed(0)
    model = (
        nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
        if linear
        else nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    )
    x = torch.randn(20, 1, 6)
    y = torch.randint(0, 3, (20,))
    return model, x, y


def test_flat_loss_matches_autograd_and_the_dense_hessian():
    model, x, y = tiny_net()
    before = [p.detach().clone() for p in model.parameters()]
    flat = FlatLoss(model, x, y, label_smoothing=0.1)
    theta = flat.theta0 + 0.1
    params = torch.tensor(theta, requires_grad=True)

    def f(t):
        out = torch.func.functional_call(flat.model, flat.params(t), (flat.x,))
        return nn.functional.cross_entropy(out, y, label_smoothing=0.1)

    value = f(params)
    (g,) = torch.autograd.grad(value, params)
    assert flat.loss(theta) == pytest.approx(float(value.detach()), rel=1e-14)
    np.testing.assert_allclose(flat.gradient(theta), g.numpy(), rtol=1e-12, atol=1e-15)
    dense = torch.autograd.functional.hessian(f, torch.tensor(theta)).numpy()
    v = np.random.default_rng(0).standard_normal(flat.n)
    np.testing.assert_allclose(flat.hvp(theta, v), dense @ v, rtol=1e-10, atol=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is not converted
    module = flat.module(theta)
    assert flat.loss(theta) == pytest.approx(
        float(nn.functional.cross_entropy(module(flat.x), y, label_smoothing=0.1))
    )


def test_gauss_newton_is_psd_and_equals_the_hessian_of_a_linear_model():
    model, x, y = tiny_net(linear=True)
    flat = FlatLoss(model, x, y, label_smoothing=0.1)
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(flat.n)
        np.testing.assert_allclose(
            flat.ggn_vp(flat.theta0, v), flat.hvp(flat.theta0, v), rtol=1e-10, atol=1e-13
        )
    model, x, y = tiny_net()
    flat = FlatLoss(model, x, y)
    g = np.column_stack([flat.ggn_vp(flat.theta0, e) for e in np.eye(flat.n)])
    np.testing.assert_allclose(g, g.T, atol=1e-12)
    assert np.linalg.eigvalsh((g + g.T) / 2).min() > -1e-12


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "min.pt"
    settings = {"n_train": 60, "width": 8}
    gd = small_net.minimum(settings, 3, tmp_path_factory.mktemp("gd") / "gd.pt", epochs=200, progress=False)
    meta = small_net.minimum(settings, 3, path, epochs=200, progress=False, refine_steps=30)
    return path, meta, gd


def test_gauss_newton_refinement_goes_below_gradient_descent(refined):
    path, meta, gd = refined
    assert meta["refine"]["method"] == "gauss-newton" and meta["refine"]["steps"] >= 1
    assert meta["excess_loss"] < 0.5 * gd["excess_loss"]
    model, saved = load_model(path)
    assert next(model.parameters()).dtype == torch.float64
    assert saved["train_loss"] == pytest.approx(meta["train_loss"])
    data = small_net.data_of(saved)
    assert FlatLoss(model, *data["train"], 0.1).loss(
        FlatLoss(model, *data["train"], 0.1).theta0
    ) == pytest.approx(meta["train_loss"], rel=1e-9)


def test_displacement_raises_the_loss_by_the_square_and_grows_negative_eigenvalues(refined):
    path, meta, _ = refined
    record = displacement(path, [0.0, 0.01, 0.1], seed=0)
    points = record["points"]
    assert points[0]["loss_rise"] == 0.0 and points[0]["excess_loss"] == pytest.approx(meta["excess_loss"])
    # delta^T H delta / 2 = 1: past the first-order term of a minimum reached only approximately,
    # the rise is eps^2, up to higher orders and the ReLU kinks the displacement crosses (about
    # 25 % at eps = 0.01 on this net, depending on the minimum reached): a square law over a
    # decade of eps, where a linear or cubic one would give a ratio of 10 or 1000
    quadratic = [p["loss_rise"] - p["linear_rise"] for p in points]
    assert quadratic[1] == pytest.approx(1e-4, rel=0.4)
    assert 50 < quadratic[2] / quadratic[1] < 200
    assert points[2]["negative_sum"] < points[0]["negative_sum"] <= 0
    assert 0 < record["n_nondegenerate"] < meta["n_params"]
    with pytest.raises(small_net.TrainingError, match="scales"):
        displacement(path, [float("nan")])


def test_noise_displace_and_project_commands_write_records(refined, tmp_path):
    path, _, _ = refined
    out = tmp_path / "d.json"
    assert cli.main(["noise-displace", str(path), "--scales", "0", "0.05", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["command"].startswith("hessian-powerlaw noise-displace") and len(record["points"]) == 2
    rec = tmp_path / "p.json"
    argv = ["noise-project", "--steps", "20", "--every", "10", "--n-train", "60", "--batch-size", "10"]
    argv += ["--max-steps", "5000", "--out", str(tmp_path / "p.tsv"), "--record", str(rec)]
    assert cli.main(argv) == 0
    record = json.loads(rec.read_text())
    assert record["n_points"] >= 3 and record["trace_fit"]["n_points"] == record["n_points"]
    assert record["command"].startswith("hessian-powerlaw noise-project")


def test_dnn_spectrum_of_a_model_file_takes_ggn_and_fisher_and_saves_named_vectors(refined, tmp_path, capsys):
    """The model-file path: --curvature ggn equals the dense GGN of the flat loss; --vectors
    .npz holds one (K, *shape) array per parameter, the same vectors as the flat .npy."""
    path, _, _ = refined
    argv = ["dnn-spectrum", str(path), "--solver", "dense", "--dtype", "float64", "--k", "10", "--quiet"]
    out, flat_file, named_file = tmp_path / "g.json", tmp_path / "v.npy", tmp_path / "v.npz"
    assert cli.main([*argv, "--curvature", "ggn", "--vectors", str(flat_file), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["operator"] == "ggn" and "Gauss-Newton" in rec["hessian"]
    model, meta = load_model(path)
    flat = FlatLoss(model, *small_net.data_of(meta)["train"], meta["label_smoothing"])
    dense = np.column_stack([flat.ggn_vp(flat.theta0, e) for e in np.eye(flat.n)])
    top = np.sort(np.linalg.eigvalsh((dense + dense.T) / 2))[::-1][:10]
    assert rec["lambda_max"] == pytest.approx(top[0], rel=1e-8)
    assert cli.main([*argv, "--curvature", "ggn", "--vectors", str(named_file), "--out", str(out)]) == 0
    vectors = np.load(flat_file, allow_pickle=False)
    with np.load(named_file, allow_pickle=False) as named:
        assert list(named.files) == [name for name, _ in model.named_parameters()]
        first = named[named.files[0]]
        assert first.shape == (10, *dict(model.named_parameters())[named.files[0]].shape)
        np.testing.assert_allclose(first.reshape(10, -1).T, vectors[: first[0].size], atol=1e-10)
    assert cli.main([*argv, "--curvature", "fisher", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["operator"] == "fisher"
    assert (
        cli.main([*argv, "--curvature", "ggn", "--operator", "gradient-covariance", "--out", "x.json"]) == 2
    )
    assert "disagree" in capsys.readouterr().err
