"""How the network exponent depends on the procedure: beta(K) of every spectrum variant
(solver, Hessian data, weight-decay term, training run) at several K, with xmin at the K-th
value and with xmin chosen by KS minimisation."""

from collections.abc import Iterable

import numpy as np

from hessian_powerlaw.fit import FitError, ks_xmin_fit, power_law_fit

STUDY = {"beta": 2.001, "beta_sigma": 0.032, "k": 1000, "source": "study Table 6 (LeNet, MNIST 6000, SGD)"}
FIT_COLUMNS = ("k", "window", "beta", "beta_sigma", "s", "d_ks", "d_c", "power_law", "vs_study_sigma")
COLUMNS = (
    "run",
    "variant",
    "solver",
    "n_eval",
    "weight_decay_term",
    "n_train",
    "epochs",
    "train_loss",
    "n_modes",
    "hvp_count",
    "max_residual",
    "k",
    "window",
    "beta",
    "beta_sigma",
    "s",
    "d_ks",
    "d_c",
    "power_law",
    "vs_study_sigma",
    "reason",
)


def rows(items: Iterable[tuple[str, dict, np.ndarray]], ks: Iterable[int]) -> list[dict]:
    """The estimator's fidelity rows: beta at several K, and with a KS-chosen xmin.

    Parameters
    ----------
    items : iterable of (str, dict, numpy.ndarray)
        (variant, record, eigenvalues (M,) descending) of each spectrum.
    ks : iterable of int
        Tail sizes K; those the spectrum holds get a row with xmin at the K-th value.

    Returns
    -------
    list of dict
        Per variant, one row per K, then one with the KS-chosen xmin within the largest K.
    """
    out = []
    for variant, rec, values in items:
        base = {key: rec.get(key) for key in COLUMNS if key not in FIT_COLUMNS}
        base["variant"] = variant
        usable = [k for k in ks if k <= len(values)]
        fits = []
        for k in usable:
            fits.append(("xmin = K-th value", _fit(power_law_fit, values, k)))
        if usable:
            fits.append(("xmin by KS", _fit(ks_xmin_fit, values, max(usable))))
        for window, fit in fits:
            row = {**dict.fromkeys(FIT_COLUMNS), **base, "window": window, **fit}
            if fit.get("beta") is not None and row["k"] is not None:
                error = (fit["beta_sigma"] ** 2 + STUDY["beta_sigma"] ** 2) ** 0.5
                row["vs_study_sigma"] = (fit["beta"] - STUDY["beta"]) / error
            out.append(row)
    return out


def _fit(function, values, k):
    try:
        fit = function(values, k)
    except FitError as err:
        return {"k": k, "reason": str(err)}
    keys = ("k", "beta", "beta_sigma", "s", "d_ks", "d_c", "power_law")
    return {key: fit[key] for key in keys}


def markdown(table: list[dict]) -> str:
    """The fidelity table as markdown, with the study's values.

    Parameters
    ----------
    table : list of dict
        Rows of `rows`.

    Returns
    -------
    str
        The markdown text.
    """
    lines = [
        f"Study: beta {STUDY['beta']} ± {STUDY['beta_sigma']} at K = {STUDY['k']} ({STUDY['source']}).",
        "",
        "| run | variant | solver | n_eval | +wd | K | window | beta | s | d_ks | d_c | power law "
        "| (beta - study)/σ | HVPs |",
        "|---|---|---|---:|---|---:|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in table:
        if r.get("beta") is None:
            lines.append(
                f"| {r['run']} | {r['variant']} | {r['solver']} | {r['n_eval']} | | {r['k']} "
                f"| {r['window']} | no fit: {r.get('reason')} | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['run']} | {r['variant']} | {r['solver']} | {r['n_eval']} "
            f"| {'yes' if r['weight_decay_term'] else 'no'} | {r['k']} | {r['window']} "
            f"| {r['beta']:.3f} ± {r['beta_sigma']:.3f} | {r['s']:.3f} | {r['d_ks']:.4f} | {r['d_c']:.4f} "
            f"| {'yes' if r['power_law'] else 'no'} | {r['vs_study_sigma']:+.1f} | {r['hvp_count']} |"
        )
    return "\n".join(lines) + "\n"
