"""Curvature along training, summarised: the trace change rate of each run, its learning-rate
dependence, the negative eigenvalues against the loss (numpy only; the measurements themselves
are made by `network.probe`)."""

import math
from collections import defaultdict

from hessian_powerlaw.regression import linear_fit

# What identifies a group of runs that differ only in seed (and, for the lr fit, in lr).
GROUP_KEYS = (
    "model",
    "dataset",
    "optimizer",
    "schedule",
    "batch_size",
    "n_train",
    "width",
    "depth",
    "epochs",
)
RUN_COLUMNS = (
    "run",
    *GROUP_KEYS,
    "lr",
    "seed",
    "n_points",
    "first_epoch",
    "last_epoch",
    "trace_first",
    "trace_last",
    "trace_rate",
    "trace_rate_se",
    "lambda_max_last",
    "logdet_top_last",
    "neg_sum_last",
    "train_loss_last",
    "hvps",
)
FIT_COLUMNS = ("group", "x", "y", "n_points", "slope", "slope_se", "intercept", "intercept_se", "r2")


def points(metrics: dict, from_epoch: int = 0) -> list[dict]:
    """The measurements of one run from `from_epoch` on, each with its optimizer step."""
    steps_per_epoch = math.ceil(metrics["final"]["n_train_used"] / metrics["spec"]["batch_size"])
    return [
        {**m, "step": m["epoch"] * steps_per_epoch}
        for m in metrics.get("curvature", [])
        if m["epoch"] >= from_epoch
    ]


def run_row(name: str, metrics: dict, from_epoch: int = 0) -> dict:
    """One run's summary row.

    The trace change per optimizer step is the slope of a line through the trace measurements
    from `from_epoch` on.

    Parameters
    ----------
    name : str
        The run name (its settings are read from it).
    metrics : dict
        The run's metrics file (its 'curvature' measurements).
    from_epoch : int, default 0
        The first epoch of the fit (after the early phase).

    Returns
    -------
    dict
        The run's settings (GROUP_KEYS, lr, seed), the number of measurements and the trace
        rate per step with its fit.
    """
    spec, final = metrics["spec"], metrics["final"]
    pts = points(metrics, from_epoch)
    if not pts:
        raise ValueError(
            f"{name}: no curvature measurements from epoch {from_epoch} (set curvature every > 0)"
        )
    rate = linear_fit([p["step"] for p in pts], [p["trace"] for p in pts])
    last = pts[-1]
    return {
        "run": name,
        **{key: spec[key] for key in GROUP_KEYS if key != "n_train"},
        "n_train": final["n_train_used"],
        "lr": spec["lr"],
        "seed": spec["seed"],
        "n_points": len(pts),
        "first_epoch": pts[0]["epoch"],
        "last_epoch": last["epoch"],
        "trace_first": pts[0]["trace"],
        "trace_last": last["trace"],
        "trace_rate": rate["slope"],
        "trace_rate_se": rate["slope_se"],
        "lambda_max_last": last["lambda_max"],
        "logdet_top_last": last["logdet_top"],
        "neg_sum_last": last["neg_sum"],
        "train_loss_last": last["train_loss"],
        "hvps": sum(p["hvps"] for p in metrics["curvature"]),
    }


def group_name(row: dict) -> str:
    """The group label of a curvature row (its settings, key=value)."""
    return " ".join(f"{key}={row[key]}" for key in GROUP_KEYS)


def lr_fits(rows: list[dict]) -> list[dict]:
    """Per group of runs differing only in lr and seed (at least two lrs): trace rate = a + b lr^2.

    Parameters
    ----------
    rows : list of dict
        Rows of `run_row`.

    Returns
    -------
    list of dict
        One row per group: its name and the line's fit (`regression.linear_fit`).
    """
    groups = defaultdict(list)
    for row in rows:
        groups[group_name(row)].append(row)
    out = []
    for name, members in groups.items():
        if len({r["lr"] for r in members}) < 2:
            continue
        fit = linear_fit([r["lr"] ** 2 for r in members], [r["trace_rate"] for r in members])
        out.append({"group": name, "x": "lr^2", "y": "trace change per step", **fit})
    return out


def negative_fits(named_metrics: list[tuple[str, dict]]) -> list[dict]:
    """Per optimizer group (lr kept apart): sum of negative bottom-K eigenvalues = a + b train loss.

    Every measurement of every seed is a point.

    Parameters
    ----------
    named_metrics : list of (str, dict)
        (run name, metrics) of the curvature runs (`records.metrics_files`).

    Returns
    -------
    list of dict
        One row per group: its name and the line's fit (`regression.linear_fit`).
    """
    groups = defaultdict(list)
    for _, metrics in named_metrics:
        spec = {**metrics["spec"], "n_train": metrics["final"]["n_train_used"]}
        key = f"{group_name(spec)} lr={spec['lr']}"
        groups[key] += metrics.get("curvature", [])
    out = []
    for name, pts in groups.items():
        fit = linear_fit([p["train_loss"] for p in pts], [p["neg_sum"] for p in pts])
        out.append({"group": name, "x": "train loss", "y": "sum of negative bottom-K eigenvalues", **fit})
    return out
