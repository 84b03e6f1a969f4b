"""One power-law estimator for every spectrum (proteins and networks).

Clauset, Shalizi & Newman (2009) continuous MLE with xmin fixed at the K-th
largest value, the Kolmogorov-Smirnov distance in the convention of the
`powerlaw` package, and log-likelihood-ratio tests against a lognormal and
an exponential tail from `powerlaw.Fit.distribution_compare`, and optionally the
semi-parametric bootstrap p-value of the KS distance (Clauset et al. 2009, section 4.1).
"""

import math
import numbers
import warnings

import numpy as np
import numpy.typing as npt

KS_CONSTANT = 1.36  # critical-value constant at alpha = 0.05

FIT_KEYS = (
    "k",
    "xmin",
    "beta",
    "beta_sigma",
    "s",
    "d_ks",
    "d_c",
    "power_law",
    "lr_lognormal",
    "p_lognormal",
    "lr_exponential",
    "p_exponential",
    "p_bootstrap",
)
LR_KEYS = ("lr_lognormal", "p_lognormal", "lr_exponential", "p_exponential")


class FitError(ValueError):
    """A spectrum that cannot be fitted (too few positive values, degenerate tail)."""


def resolve_k(k: float, n_values: int) -> int:
    """Turn K given as a fraction (< 1) or a count (>= 1) into a count for `n_values`.

    Parameters
    ----------
    k : float
        A fraction of the values in (0, 1), or a count >= 1.
    n_values : int
        How many values there are.

    Returns
    -------
    int
        The count, between 2 and `n_values`.

    Raises
    ------
    FitError
        K not positive, keeping fewer than 2 values, or more than there are.
    """
    if k <= 0:
        raise FitError(f"K must be positive, got {k}")
    count = math.floor(k * n_values) if k < 1 else int(k)
    if count < 2:
        raise FitError(f"K={k} keeps {count} of {n_values} values; need at least 2")
    if count > n_values:
        raise FitError(f"K={count} is larger than the {n_values} available values")
    return count


FLAT_TAIL = 1e-6  # top-K values within this relative spread have no tail to fit


def check_k(k: int) -> int:
    """K of a fit: an integer >= 2.

    Parameters
    ----------
    k : int
        The requested number of top values.

    Returns
    -------
    int
        `k` as a plain int.

    Raises
    ------
    FitError
        Naming the value when it is not an integer (bools included) or is below 2.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise FitError(f"k must be an integer number of top values, got {k!r}")
    if k < 2:
        raise FitError(f"k must be at least 2, got {k}")
    return int(k)


def top_k(values: npt.ArrayLike, k: int) -> np.ndarray:
    """The K largest of `values`.

    Parameters
    ----------
    values : array_like
        Any shape (flattened); all finite, at least K of them positive.
    k : int
        Number of values kept, at least 2.

    Returns
    -------
    numpy.ndarray
        Shape (K,), float64, descending.

    Raises
    ------
    FitError
        Non-numeric values, NaN or inf, or fewer than K positive values.
    """
    k = check_k(k)
    try:
        x = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise FitError(f"values must be an array of numbers ({err})") from None
    if not np.all(np.isfinite(x)):
        raise FitError("spectrum contains NaN or inf")
    x = np.sort(x)[::-1]
    n_pos = int(np.count_nonzero(x > 0))
    if k > n_pos:
        raise FitError(f"K={k} but the spectrum has only {n_pos} positive values")
    return x[:k]


def power_law_fit(
    values: "np.typing.ArrayLike", k: int, compare: bool = True, bootstrap: int = 0, seed: int = 0
) -> dict:
    """Fit a power law to the K largest of `values`: the estimator both wings use.

    xmin is the K-th largest value, ``beta = 1 + K / sum(ln(x_i / xmin))``,
    ``sigma = (beta - 1) / sqrt(K)``, ``s = 1 / (beta - 1)`` (the rank-size slope),
    ``d_ks = max |F_emp - F_fit|`` with ``F_emp = (0..K-1)/K`` (the `powerlaw` package's
    convention), ``d_c = 1.36 / sqrt(K)``, and the verdict ``power_law = d_ks < d_c``.

    Parameters
    ----------
    values : array_like
        Shape (M,) (any shape is flattened), any order, M >= K, at least K of them positive
        and all finite: eigenvalues of a network Hessian, or inverted protein eigenvalues.
    k : int
        Number of top values fitted, at least 2.
    compare : bool, default True
        Log-likelihood-ratio tests against lognormal and exponential tails (the `powerlaw`
        package); None in those keys otherwise.
    bootstrap : int, default 0
        With N > 0, ``p_bootstrap`` is Clauset et al.'s semi-parametric bootstrap p-value from
        N synthetic samples (`bootstrap_p`).
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    dict
        The record keys FIT_KEYS: k, xmin, beta, beta_sigma, s, d_ks, d_c, power_law,
        lr_lognormal, p_lognormal, lr_exponential, p_exponential, p_bootstrap.

    Raises
    ------
    FitError
        k not an integer >= 2, fewer than k positive values, NaN or inf, or a top-K so flat
        (within 1e-6 relative) that it has no tail.

    Examples
    --------
    >>> import numpy as np
    >>> from hessian_powerlaw import power_law_fit
    >>> ranks = np.arange(1, 1001)
    >>> fit = power_law_fit(1.0 / ranks, k=1000, compare=False)  # lambda_k = k^-1
    >>> round(fit["beta"], 2), fit["power_law"]
    (2.0, True)
    >>> round(fit["d_c"], 4)
    0.043
    """
    x = top_k(values, k)
    record = _fit(x)
    record.update(likelihood_ratio_tests(x, record["xmin"]) if compare else _no_lr())
    record["p_bootstrap"] = bootstrap_p(values, k, bootstrap, seed, record) if bootstrap else None
    return record


def _fit(x):
    """The fit of a descending top-K array x (K,)."""
    k = x.size
    xmin = float(x[-1])
    log_ratio = np.log(x / xmin)
    total = float(log_ratio.sum())
    if float(log_ratio[0]) <= FLAT_TAIL:
        raise FitError(
            f"the top {k} values are equal to within {FLAT_TAIL:g} relative (largest {x[0]:.17g}, "
            f"xmin {xmin:.17g}); no tail to fit"
        )
    beta = 1.0 + k / total
    asc = x[::-1]
    empirical = _empirical_cdf(asc)
    theoretical = 1.0 - (asc / xmin) ** (1.0 - beta)
    d_ks = float(np.max(np.abs(empirical - theoretical)))
    d_c = KS_CONSTANT / math.sqrt(k)
    return {
        "k": int(k),
        "xmin": xmin,
        "beta": beta,
        "beta_sigma": (beta - 1.0) / math.sqrt(k),
        "s": 1.0 / (beta - 1.0),
        "d_ks": d_ks,
        "d_c": d_c,
        "power_law": bool(d_ks < d_c),
    }


def bootstrap_p(values: npt.ArrayLike, k: int, n: int, seed: int = 0, fit: dict | None = None) -> float:
    """Clauset, Shalizi & Newman's semi-parametric bootstrap p-value of the fixed-window fit.

    Each of n synthetic samples has the size M of `values`: with probability K/M a value is
    drawn from the fitted power law above xmin, else resampled from the observed values below
    xmin (a sample of only the top K is wholly power law). Each is refitted the same way (xmin
    its own K-th largest) and p is the fraction with d_ks >= the observed one: near 1 or uniform
    when the law holds, small when it does not. Samples that cannot be fitted count as larger.

    Parameters
    ----------
    values : array_like
        Shape (M,), the whole spectrum the fit was made on.
    k : int
        The fit's K.
    n : int
        Number of synthetic samples, >= 1.
    seed : int, default 0
        Seed of the samples.
    fit : dict, optional
        The fit of `values` at K (from `power_law_fit`); computed when not given.

    Returns
    -------
    float
        The fraction of samples in [0, 1] whose d_ks is at least the observed one.
    """
    if not (isinstance(n, int) and n >= 1):
        raise FitError(f"the bootstrap needs a positive number of samples, got {n}")
    fit = fit or _fit(top_k(values, k))
    x = np.sort(np.asarray(values, dtype=float).ravel())[::-1]
    below, m = x[k:], x.size
    rng = np.random.default_rng(seed)
    exponent = -1.0 / (fit["beta"] - 1.0)
    larger = 0
    for _ in range(n):
        n_tail = int(rng.binomial(m, k / m)) if below.size else k
        tail = fit["xmin"] * (1.0 - rng.random(n_tail)) ** exponent
        sample = np.concatenate([tail, rng.choice(below, m - n_tail)]) if m > n_tail else tail
        try:
            larger += _fit(top_k(sample, k))["d_ks"] >= fit["d_ks"]
        except FitError:
            larger += 1
    return larger / n


def _empirical_cdf(asc):
    """Empirical CDF at sorted values, ties counted from the left (as `powerlaw` does)."""
    return np.searchsorted(asc, asc, side="left") / asc.size


def _no_lr():
    return dict.fromkeys(LR_KEYS)


def likelihood_ratio_tests(x: np.ndarray, xmin: float) -> dict:
    """Normalised log-likelihood ratio R and p-value, power law vs lognormal and exponential.

    Parameters
    ----------
    x : numpy.ndarray
        Shape (K,), the fitted tail (values >= xmin).
    xmin : float
        The tail's lower bound.

    Returns
    -------
    dict
        ``lr_lognormal, p_lognormal, lr_exponential, p_exponential``: floats (R > 0 favours
        the power law), None where the `powerlaw` package returns a non-finite value.
    """
    import powerlaw

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(
            x,
            xmin=xmin,
            discrete=False,
            verbose=False,
            parameter_ranges={"alpha": [1.0, None]},
        )
        out = {}
        for name in ("lognormal", "exponential"):
            r, p = fit.distribution_compare("power_law", name, normalized_ratio=True)
            out[f"lr_{name}"] = _finite_or_none(r)
            out[f"p_{name}"] = _finite_or_none(p)
    return out


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def ks_xmin_fit(values: npt.ArrayLike, k_max: int, k_min: int = 50) -> dict:
    """Clauset's xmin: the `powerlaw` package's search for the xmin that minimises the KS
    distance, over tails of k_min..k_max of the largest values; then this module's fit of that
    tail (its beta, d_ks, d_c), so the two windows are compared with one estimator.

    Parameters
    ----------
    values : array_like
        Any shape (flattened), at least `k_max` positive finite values.
    k_max, k_min : int
        The largest and smallest tail searched (k_max > k_min).

    Returns
    -------
    dict
        `power_law_fit`'s record (without likelihood-ratio tests) of the chosen tail; its
        ``k`` is the tail's size.
    """
    import powerlaw

    x = top_k(values, k_max)
    if k_max <= k_min:
        raise FitError(f"KS xmin search needs K > {k_min}, got {k_max}")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(
            x,
            xmin=(float(x[-1]), float(x[k_min - 1])),
            discrete=False,
            verbose=False,
            parameter_ranges={"alpha": [1.0, None]},
        )
    return power_law_fit(x, int(np.count_nonzero(x >= fit.xmin)), compare=False)


def gap_fit(values: npt.ArrayLike, gap_k: int = 0) -> dict:
    """The power-law fit (no likelihood-ratio tests) of the largest `gap_k` eigengaps
    lambda_i - lambda_{i+1} of a descending spectrum of shape (K,); gap_k 0 = half of the
    K - 1 gaps; returns `power_law_fit`'s record.

    Not all of them: among K nearly equal Ritz values at the end of the window, gaps go down to
    round-off (1e-7 against lambda_K ~ 2e-3 for LeNet), and spacings of close eigenvalues have
    a density at zero, not a power-law tail; fitting every gap (xmin = the smallest) fails the
    KS test on every trained network, while the top half passes. For lambda_k ~ k^-s the gaps
    fall as k^-(s+1), so the fit should give beta_gap = 1 + 1/(s+1) (`gap_beta_expected`)."""
    gaps = -np.diff(np.asarray(values, dtype=float))
    gap_k = gap_k or len(gaps) // 2
    if gap_k > len(gaps):
        raise FitError(f"gap_k={gap_k} but there are {len(gaps)} gaps")
    return power_law_fit(gaps, gap_k, compare=False)
