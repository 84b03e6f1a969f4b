"""Toy valleys of the noise study: closed-form curvature against autograd, the noise models'
covariances, the drift formula against simulation, determinism and the claims' signs."""

import json

import numpy as np
import pytest
import torch

from hessian_powerlaw import cli
from hessian_powerlaw.network.noise import valleys


def torch_loss(model, theta):
    p, p0, q, q0, _ = valleys.VALLEYS[model]
    phi = theta[2:]
    u = torch.abs(phi @ torch.tensor(p, dtype=theta.dtype) + p0)
    v = torch.abs(phi @ torch.tensor(q, dtype=theta.dtype) + q0)
    return u * theta[0] ** 2 + v * theta[1] ** 2


@pytest.mark.parametrize("model", sorted(valleys.VALLEYS))
def test_closed_form_loss_gradient_and_hessian_match_autograd(model):
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = valleys.start(model) + 0.05 * rng.standard_normal(4)
        t = torch.tensor(theta, requires_grad=True)
        assert valleys.loss(model, theta) == pytest.approx(float(torch_loss(model, t).detach()), rel=1e-12)
        grad = torch.autograd.grad(torch_loss(model, t), t)[0].numpy()
        np.testing.assert_allclose(valleys.gradient(model, theta[None])[0], grad, rtol=1e-12, atol=1e-14)
        hess = torch.autograd.functional.hessian(lambda x: torch_loss(model, x), torch.tensor(theta)).numpy()
        np.testing.assert_allclose(valleys.hessian(model, theta), hess, rtol=1e-12, atol=1e-14)
        assert valleys.trace(model, theta) == pytest.approx(np.trace(hess), rel=1e-12)
        on_valley = theta.copy()
        on_valley[:2] = 0
        block = valleys.hessian(model, on_valley)[:2, :2]
        assert valleys.logdet(model, theta) == pytest.approx(np.log(np.linalg.det(block)), rel=1e-12)


def test_the_valley_is_a_set_of_minima():
    theta = valleys.start("trace").copy()
    theta[:2] = 0
    assert valleys.loss("trace", theta) == 0
    assert not valleys.gradient("trace", theta[None]).any()
    assert np.all(np.linalg.eigvalsh(valleys.hessian("trace", theta)) >= 0)


@pytest.mark.parametrize("noise", ["sgd", "isotropic"])
def test_noise_models_have_the_stated_covariance(noise):
    model, n = "trace", 200_000
    c = valleys.noise_scale(50, 1000)
    assert c == pytest.approx((1 / 50) * (1 - 50 / 1000))
    sigma2 = valleys.isotropic_variance("trace", c)
    theta = np.tile(valleys.start(model), (n, 1))
    draws = valleys.noise_draws(model, noise, theta, c, sigma2, np.random.default_rng(1))
    expected = valleys.noise_covariance(model, noise, theta[0], c, sigma2)
    empirical = draws.T @ draws / n
    # s.e. of a Gaussian second moment: sqrt((C_ii C_jj + C_ij^2) / n)
    se = np.sqrt((np.outer(np.diag(expected), np.diag(expected)) + expected**2) / n)
    assert np.all(np.abs(empirical - expected) <= 3 * se + 1e-15)
    assert not draws[:, 2:].any()  # no noise along the degenerate directions
    if noise == "isotropic":  # the same total variance as the SGD noise at the start
        sgd = valleys.noise_covariance(model, "sgd", theta[0], c, sigma2)
        assert np.trace(expected) == pytest.approx(np.trace(sgd))
    assert not valleys.noise_draws(model, "none", theta[:5], c, sigma2, np.random.default_rng(0)).any()


def test_sgd_trace_rate_matches_the_drift_formula_and_falls_like_lr_squared():
    rates = {}
    for lr in (0.01, 0.02):
        rec = valleys.run("trace", "sgd", lr, repeats=300, seed=2)
        assert rec["left_region"] == 0
        assert abs(rec["trace_rate"] - rec["predicted_trace_rate"]) < 4 * rec["trace_rate_se"]
        assert rec["trace_rate"] < -5 * rec["trace_rate_se"]
        rates[lr] = rec["trace_rate"]
    assert rates[0.02] / rates[0.01] == pytest.approx(4, rel=0.15)


def test_gradient_descent_leaves_the_trace_unchanged():
    rec = valleys.run("trace", "none", 0.02, repeats=3)
    assert abs(rec["trace_change"]) < 1e-9 and abs(rec["logdet_change"]) < 1e-9


def test_anticorrelated_valley_separates_trace_and_determinant():
    sgd = valleys.run("anticorrelated", "sgd", 0.03, repeats=300, seed=0)
    iso = valleys.run("anticorrelated", "isotropic", 0.03, repeats=300, seed=0)
    assert sgd["trace_change"] < -3 * sgd["trace_change_se"]
    assert sgd["logdet_change"] > 3 * sgd["logdet_change_se"]
    assert iso["trace_change"] > 3 * iso["trace_change_se"]
    assert iso["logdet_change"] < -3 * iso["logdet_change_se"]
    # the drift formula predicts the same signs at the start
    assert sgd["predicted_trace_rate"] < 0 < sgd["predicted_logdet_rate"]
    assert iso["predicted_logdet_rate"] < 0 < iso["predicted_trace_rate"]


def test_a_short_run_is_deterministic_under_its_seed():
    settings = {"repeats": 5, "equilibrate_steps": 30, "measure_steps": 20}
    a = valleys.run("trace", "sgd", 0.02, seed=7, **settings)
    b = valleys.run("trace", "sgd", 0.02, seed=7, **settings)
    c = valleys.run("trace", "sgd", 0.02, seed=8, **settings)
    a.pop("seconds"), b.pop("seconds"), c.pop("seconds")
    assert a == b
    assert a["trace_change"] != c["trace_change"]


def test_impossible_settings_are_refused():
    with pytest.raises(valleys.ValleyError, match="largest curvature"):
        valleys.run("trace", "sgd", 0.5, repeats=3)
    with pytest.raises(valleys.ValleyError, match="unknown toy valley"):
        valleys.run("bowl", "sgd", 0.01)
    with pytest.raises(valleys.ValleyError, match="repeats"):
        valleys.run("trace", "sgd", 0.01, repeats=1)
    with pytest.raises(valleys.ValleyError, match="batch size"):
        valleys.noise_scale(2000, 1000)


def test_toy_valley_command_writes_its_record(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["toy-valley", "--model", "anticorrelated", "--noise", "isotropic", "--lr", "0.03"]
    argv += ["--repeats", "6", "--seed", "3", "--measure-steps", "40", "--out", str(out)]
    assert cli.main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["model"] == "anticorrelated" and rec["noise"] == "isotropic" and rec["repeats"] == 6
    assert rec["measure_steps"] == 40 and rec["seed"] == 3
    assert rec["command"].startswith("hessian-powerlaw toy-valley --model anticorrelated")
    assert cli.main(["toy-valley", "--model", "trace", "--noise", "sgd", "--lr", "1", "--out", str(out)]) == 2
    assert "largest curvature" in capsys.readouterr().err
