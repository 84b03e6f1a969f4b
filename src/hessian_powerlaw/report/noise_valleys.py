"""Tables and figures of the noise study's valley experiments: projected paths (its Figs. 1
and 3, from `noise-project`) and the negative-eigenvalue sum against the loss (its Fig. 2a,
from `noise-equilibrium` over a grid and `noise-displace`)."""

import math

import numpy as np

from hessian_powerlaw.regression import linear_fit
from hessian_powerlaw.report.noise import PAPER

__all__ = ["PATH_COLUMNS", "NEGATIVE_COLUMNS", "negative_fits", "path_summary", "write_figures"]

PATH_COLUMNS = ("run", "iteration", "loss", "val_loss", "trace", "trace_se", "connected_to_next", "steps")
NEGATIVE_COLUMNS = (
    "experiment",
    "n_points",
    "slope",
    "slope_se",
    "intercept",
    "intercept_se",
    "r2",
    "loss_min",
    "loss_max",
    "paper_slope",
    "paper_intercept",
)
TRACE_COLUMNS = ("run", "n_points", "n_connected", "slope", "slope_se", "intercept", "intercept_se", "r2")


def negative_points(records: list[dict]) -> list[tuple[str, float, float]]:
    """[(experiment, excess loss, negative-eigenvalue sum)] of equilibrium and displacement
    records (the displacement's points each)."""
    points = []
    for r in records:
        if r.get("experiment") == "equilibrium":
            points.append(("sgd-grid", r["excess_loss"], r["negative_sum"]))
        elif r.get("experiment") == "displacement":
            points += [("displacement", p["excess_loss"], p["negative_sum"]) for p in r["points"]]
    return points


def negative_fits(records: list[dict]) -> list[dict]:
    """One row (NEGATIVE_COLUMNS) per experiment: the least-squares line of the negative sum
    against the excess training loss, and the loss range it spans."""
    rows = []
    points = negative_points(records)
    for experiment in sorted({p[0] for p in points}, reverse=True):
        x = [p[1] for p in points if p[0] == experiment]
        y = [p[2] for p in points if p[0] == experiment]
        fit = linear_fit(x, y)
        rows.append(
            {
                "experiment": experiment,
                **{k: fit[k] for k in NEGATIVE_COLUMNS[1:7]},
                "loss_min": float(min(x)),
                "loss_max": float(max(x)),
                "paper_slope": PAPER["negative_slope"],
                "paper_intercept": PAPER["negative_intercept"],
            }
        )
    return rows


def path_summary(rows: list[dict]) -> list[dict]:
    """Per run of projected-path rows (PATH_COLUMNS), the trace's line along the path and the
    count of line-connected segments (TRACE_COLUMNS); then one row 'all runs' with the mean
    slope over runs and its standard error."""
    out = []
    for run in sorted({r["run"] for r in rows}):
        members = sorted((r for r in rows if r["run"] == run), key=lambda r: r["iteration"])
        fit = linear_fit([r["iteration"] for r in members], [r["trace"] for r in members])
        connected = sum(_true(r["connected_to_next"]) for r in members[:-1])
        out.append({"run": run, "n_connected": connected, **{k: fit[k] for k in TRACE_COLUMNS if k in fit}})
    slopes = np.array([r["slope"] for r in out], dtype=float)
    if len(slopes) > 1:
        se = float(slopes.std(ddof=1) / math.sqrt(len(slopes)))
        out.append(
            {
                "run": "all runs",
                "n_points": sum(r["n_points"] for r in out),
                "n_connected": sum(r["n_connected"] for r in out),
                "slope": float(slopes.mean()),
                "slope_se": se,
                **dict.fromkeys(("intercept", "intercept_se", "r2"), math.nan),
            }
        )
    return out


def _true(value):
    return value is True or str(value).lower() == "true"


def write_figures(rows: list[dict], records: list[dict], out_dir: str) -> list[str]:
    """noise_valley_paths.png (Fig. 1: training and validation loss along each projected path),
    noise_valley_trace.png (Fig. 3: the trace along the paths, mean and s.d. over runs at each
    saved iteration) and noise_valley_negative.png (Fig. 2a); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hessian_powerlaw.io import atomic_path

    def save(fig, name):
        path = f"{out_dir}/{name}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        return path

    written = []
    runs = sorted({r["run"] for r in rows})
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, run in enumerate(runs):
        members = sorted((r for r in rows if r["run"] == run), key=lambda r: r["iteration"])
        steps = [r["iteration"] for r in members]
        ax.plot(steps, [r["loss"] for r in members], color="C0", lw=0.8, label="training" if not i else None)
        ax.plot(
            steps, [r["val_loss"] for r in members], color="C1", lw=0.8, label="validation" if not i else None
        )
    ax.set(xlabel="SGD iteration of the projected state", ylabel="loss at the projected minimum")
    ax.legend()
    written.append(save(fig, "noise_valley_paths.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4))
    by_step = {}
    for r in rows:
        by_step.setdefault(r["iteration"], []).append(r["trace"])
    shared = sorted(s for s, values in by_step.items() if len(values) == len(runs))
    mean = np.array([np.mean(by_step[s]) for s in shared])
    sd = np.array([np.std(by_step[s], ddof=1) if len(runs) > 1 else 0.0 for s in shared])
    ax.plot(shared, mean, color="C2")
    ax.fill_between(shared, mean - sd, mean + sd, color="C2", alpha=0.3)
    ax.set(xlabel="SGD iteration", ylabel="Hessian trace at the projected minimum", title=f"{len(runs)} runs")
    written.append(save(fig, "noise_valley_trace.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4))
    points = negative_points(records)
    for colour, fit in zip(("C3", "C4"), negative_fits(records), strict=False):
        x = np.array([p[1] for p in points if p[0] == fit["experiment"]])
        y = np.array([p[2] for p in points if p[0] == fit["experiment"]])
        ax.plot(x, y, "o", color=colour, label=f"{fit['experiment']}: slope {fit['slope']:.1f}")
        line = np.linspace(0, x.max(), 50)
        ax.plot(line, fit["slope"] * line + fit["intercept"], color=colour, lw=0.8)
    ax.set(xlabel="excess training loss", ylabel="sum of negative eigenvalues")
    ax.legend()
    written.append(save(fig, "noise_valley_negative.png"))
    return written
