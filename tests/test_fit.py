import math

import numpy as np
import powerlaw
import pytest

from hessian_powerlaw.fit import FitError, bootstrap_p, ks_xmin_fit, power_law_fit, resolve_k, top_k


def pareto(beta, n, xmin=1.0, seed=0):
    """Continuous power-law sample with density ~ x^-beta above xmin (inverse CDF)."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (beta - 1.0))


@pytest.mark.parametrize("beta", [1.6, 2.0, 2.5, 3.5])
@pytest.mark.parametrize("seed", [1, 2])
def test_recovers_known_beta_within_three_sigma(beta, seed):
    fit = power_law_fit(pareto(beta, 1000, seed=seed), 1000, compare=False)
    assert abs(fit["beta"] - beta) < 3 * fit["beta_sigma"]
    assert fit["power_law"]
    assert fit["s"] == pytest.approx(1 / (beta - 1), rel=0.15)


@pytest.mark.parametrize("beta", [1.8, 2.0, 2.7])
def test_equals_powerlaw_package(beta):
    x = pareto(beta, 3000, xmin=0.5, seed=7)
    k = 1000
    fit = power_law_fit(x, k, compare=False)
    top = np.sort(x)[::-1][:k]
    ref = powerlaw.Fit(top, xmin=top[-1], discrete=False, verbose=False)
    assert fit["xmin"] == top[-1]
    assert fit["beta"] == pytest.approx(ref.power_law.alpha, rel=1e-12)
    assert fit["beta_sigma"] == pytest.approx(ref.power_law.standard_err, rel=1e-12)
    assert fit["d_ks"] == pytest.approx(ref.power_law.D, rel=1e-12)


def test_beta_above_three_is_not_capped():
    """powerlaw caps alpha at 3 by default; the closed form must not."""
    x = pareto(4.0, 1000, seed=3)
    fit = power_law_fit(x, 1000)
    closed = 1 + 1000 / np.sum(np.log(x / x.min()))
    assert fit["beta"] == pytest.approx(closed, rel=1e-12)
    assert fit["beta"] > 3.5
    capped = powerlaw.Fit(x, xmin=x.min(), discrete=False, verbose=False).power_law.alpha
    assert capped <= 3.0 + 1e-9  # the pitfall this guards against


@pytest.mark.parametrize(
    "sample",
    [
        lambda rng: rng.lognormal(0.0, 0.5, 1000),
        lambda rng: rng.exponential(1.0, 1000) + 1.0,
    ],
    ids=["lognormal", "exponential"],
)
def test_rejects_non_power_law(sample):
    fit = power_law_fit(sample(np.random.default_rng(11)), 1000)
    assert not fit["power_law"]
    assert fit["d_ks"] > fit["d_c"]
    assert fit["lr_exponential"] is not None


def test_likelihood_ratio_favours_power_law_for_pareto():
    fit = power_law_fit(pareto(2.0, 1000, seed=5), 1000)
    assert fit["lr_exponential"] > 0 and fit["p_exponential"] < 0.05


def test_critical_value():
    fit = power_law_fit(pareto(2.0, 1000), 1000, compare=False)
    assert fit["d_c"] == pytest.approx(0.0430, abs=5e-5)
    assert fit["d_c"] == pytest.approx(1.36 / math.sqrt(1000))


def test_resolve_k():
    assert resolve_k(0.1, 1716) == 171
    assert resolve_k(1000, 1716) == 1000
    with pytest.raises(FitError, match="larger than"):
        resolve_k(1000, 315)
    with pytest.raises(FitError):
        resolve_k(0.001, 100)


def test_fewer_positive_values_than_k():
    x = np.concatenate([pareto(2.0, 50), -np.ones(100), np.zeros(10)])
    with pytest.raises(FitError, match="only 50 positive"):
        power_law_fit(x, 100)


def test_nan_spectrum_is_an_error():
    with pytest.raises(FitError, match="NaN"):
        top_k(np.array([1.0, np.nan, 2.0]), 2)


def test_all_equal_values_have_no_tail():
    with pytest.raises(FitError, match="are equal to within 1e-06 relative"):
        power_law_fit(np.ones(100), 50)


def test_ties_at_xmin_keep_exactly_k():
    x = np.concatenate([pareto(2.0, 200, xmin=2.0, seed=4), np.full(20, 1.0)])
    fit = power_law_fit(x, 210, compare=False)
    assert fit["k"] == 210 and fit["xmin"] == 1.0
    ref = powerlaw.Fit(np.sort(x)[::-1][:210], xmin=1.0, discrete=False, verbose=False)
    assert fit["beta"] == pytest.approx(ref.power_law.alpha, rel=1e-12)


def test_ks_xmin_fit_finds_the_power_law_tail():
    """A Pareto tail above a flat body: the KS search keeps (about) the tail only, where
    xmin at the K-th value mixes both."""
    rng = np.random.default_rng(4)
    tail = (1 - rng.random(400)) ** (-1 / (2.0 - 1)) * 10.0  # beta = 2 above 10
    body = rng.uniform(1.0, 10.0, 600)
    values = np.concatenate([tail, body])
    ks = ks_xmin_fit(values, 1000)
    fixed = power_law_fit(values, 1000, compare=False)
    assert 300 <= ks["k"] <= 450 and abs(ks["beta"] - 2.0) < 3 * ks["beta_sigma"]
    assert abs(fixed["beta"] - 2.0) > 5 * fixed["beta_sigma"]
    with pytest.raises(FitError, match="needs K > 50"):
        ks_xmin_fit(values, 40)


def test_bootstrap_p_value_is_uniform_on_pareto_samples():
    import scipy.stats

    p = []
    for seed in range(150):
        x = (1 - np.random.default_rng(seed).random(100)) ** -1.0  # beta = 2
        p.append(power_law_fit(x, 100, compare=False, bootstrap=100, seed=seed)["p_bootstrap"])
    assert scipy.stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.35 < np.mean(p) < 0.65


def test_bootstrap_p_value_is_uniform_when_the_tail_sits_on_a_bulk():
    import scipy.stats

    p = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        x = np.concatenate([(1 - rng.random(100)) ** -1.0, rng.random(400)])  # K = 100 of M = 500
        p.append(power_law_fit(x, 100, compare=False, bootstrap=100, seed=seed)["p_bootstrap"])
    assert scipy.stats.kstest(p, "uniform").pvalue > 0.01


def test_bootstrap_p_value_is_small_on_exponential_tails():
    p = [
        power_law_fit(
            np.random.default_rng(s).exponential(size=5000), 1000, compare=False, bootstrap=100, seed=s
        )["p_bootstrap"]
        for s in range(5)
    ]
    assert max(p) < 0.05


def test_bootstrap_is_seeded_and_off_by_default():
    x = (1 - np.random.default_rng(3).random(200)) ** -1.0
    a = power_law_fit(x, 150, compare=False, bootstrap=50, seed=4)["p_bootstrap"]
    assert a == power_law_fit(x, 150, compare=False, bootstrap=50, seed=4)["p_bootstrap"]
    assert 0 <= a <= 1
    assert power_law_fit(x, 150, compare=False)["p_bootstrap"] is None
    with pytest.raises(FitError, match="positive number of samples"):
        bootstrap_p(x, 150, 0)
