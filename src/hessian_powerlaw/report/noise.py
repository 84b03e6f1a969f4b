"""The noise study's tables from its records (numpy only): toy-valley rates and their fit
against lr^2, the anticorrelated valley, the negative eigenvalues against the loss, the trace
along noisy descent from minima."""

import math
from collections import defaultdict

import numpy as np

from hessian_powerlaw.regression import linear_fit

PAPER = {"negative_slope": -40.07, "negative_intercept": -1.22e-5}
TOY_COLUMNS = ("noise", "lr", "trace_rate", "trace_rate_se", "predicted_trace_rate", "repeats", "left_region")
TOY_RATE_COLUMNS = (
    "noise",
    "slope",
    "slope_se",
    "intercept",
    "intercept_se",
    "r2",
    "n_lr",
    "predicted_slope",
    "left_region",
)
ANTI_COLUMNS = (
    "noise",
    "trace_change",
    "trace_change_se",
    "logdet_change",
    "logdet_change_se",
    "predicted_trace_change",
    "predicted_logdet_change",
    "lr",
    "repeats",
    "measure_steps",
    "left_region",
)
POINT_COLUMNS = (
    "batch_size",
    "lr",
    "excess_loss",
    "train_loss",
    "negative_sum",
    "n_negative",
    "lambda_min",
    "trace",
    "loss_drift",
    "equilibrated",
)
NEGATIVE_COLUMNS = (
    "slope",
    "slope_se",
    "intercept",
    "intercept_se",
    "r2",
    "n_points",
    "loss_min",
    "loss_max",
    "n_equilibrated",
    "paper_slope",
    "paper_intercept",
)
TRACE_COLUMNS = (
    "noise",
    "lr",
    "n_inits",
    "trace_start",
    "trace_change",
    "trace_rate",
    "trace_rate_se",
    "noise_rate",
    "noise_rate_se",
)
TRACE_FIT_COLUMNS = ("y", "slope", "slope_se", "intercept", "intercept_se", "r2", "n_lr")


def _of(records, experiment):
    return [r for r in records if r.get("experiment") == experiment]


def _mean_se(values):
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), se


def toy_rows(records: list[dict]) -> list[dict]:
    """One row per (noise, lr) of the trace valley, sorted.

    Parameters
    ----------
    records : list of dict
        The noise study's records (other experiments are skipped).

    Returns
    -------
    list of dict
        Sorted by noise model, then lr.
    """
    rows = [{key: r[key] for key in TOY_COLUMNS} for r in _of(records, "toy-valley") if r["model"] == "trace"]
    return sorted(rows, key=lambda row: (row["noise"], row["lr"]))


def toy_trace_rate(rows: list[dict]) -> list[dict]:
    """Per noise model: the trace change per step against lr^2 (least squares).

    Beside it, the slope of the predicted rates (the drift formula of `network.noise.valleys`).

    Parameters
    ----------
    rows : list of dict
        Rows of `toy_rows`.

    Returns
    -------
    list of dict
        One row per noise model.
    """
    out = []
    groups = defaultdict(list)
    for row in rows:
        groups[row["noise"]].append(row)
    for noise, members in sorted(groups.items()):
        x = [m["lr"] ** 2 for m in members]
        fit = linear_fit(x, [m["trace_rate"] for m in members])
        predicted = linear_fit(x, [m["predicted_trace_rate"] for m in members])
        out.append(
            {
                "noise": noise,
                **{k: fit[k] for k in ("slope", "slope_se", "intercept", "intercept_se", "r2")},
                "n_lr": len(members),
                "predicted_slope": predicted["slope"],
                "left_region": sum(m["left_region"] for m in members),
            }
        )
    return out


def toy_anticorrelated(records: list[dict]) -> list[dict]:
    """One row per noise model of the anticorrelated valley (changes over the measurement).

    Parameters
    ----------
    records : list of dict
        The noise study's records (other experiments are skipped).

    Returns
    -------
    list of dict
        Sorted by noise model.
    """
    rows = []
    for r in _of(records, "toy-valley"):
        if r["model"] != "anticorrelated":
            continue
        n = r["measure_steps"]
        rows.append(
            {
                **{key: r[key] for key in ANTI_COLUMNS if key in r},
                "predicted_trace_change": r["predicted_trace_rate"] * n,
                "predicted_logdet_change": r["predicted_logdet_rate"] * n,
            }
        )
    return sorted(rows, key=lambda row: row["noise"])


def negative_points(records: list[dict]) -> list[dict]:
    """The equilibrium records' Fig. 2a points (POINT_COLUMNS), by batch size and lr.

    Parameters
    ----------
    records : list of dict
        The noise study's records (other experiments are skipped).

    Returns
    -------
    list of dict
        One row per equilibrium record.
    """
    rows = [{key: r[key] for key in POINT_COLUMNS} for r in _of(records, "equilibrium")]
    return sorted(rows, key=lambda row: (row["batch_size"], row["lr"]))


def negative_vs_loss(points: list[dict]) -> dict:
    """The sum of the negative eigenvalues against the excess training loss: one line.

    Parameters
    ----------
    points : list of dict
        Rows of `negative_points`.

    Returns
    -------
    dict
        Slope, intercept, their standard errors, R^2 and the number of points.
    """
    fit = linear_fit([p["excess_loss"] for p in points], [p["negative_sum"] for p in points])
    losses = [p["excess_loss"] for p in points] or [math.nan]
    return {
        **{k: fit[k] for k in ("slope", "slope_se", "intercept", "intercept_se", "r2", "n_points")},
        "loss_min": float(min(losses)),
        "loss_max": float(max(losses)),
        "n_equilibrated": sum(bool(p["equilibrated"]) for p in points),
        "paper_slope": PAPER["negative_slope"],
        "paper_intercept": PAPER["negative_intercept"],
    }


def trace_rows(records: list[dict]) -> list[dict]:
    """Per (noise, lr): the trace rate's mean and standard error over initialisations.

    Beside it, the noise's own part: the rate minus that of GD from the same minimum at the same
    lr.

    Parameters
    ----------
    records : list of dict
        The noise study's records (other experiments are skipped).

    Returns
    -------
    list of dict
        One row per (noise, lr).
    """
    runs = _of(records, "trace-run")
    gd = {(r["init_seed"], r["lr"]): r["trace_rate"] for r in runs if r["noise"] == "gd"}
    groups = defaultdict(list)
    for r in runs:
        groups[(r["noise"], r["lr"])].append(r)
    rows = []
    for (noise, lr), members in sorted(groups.items()):
        rate, rate_se = _mean_se([m["trace_rate"] for m in members])
        paired = [m["trace_rate"] - gd[(m["init_seed"], lr)] for m in members if (m["init_seed"], lr) in gd]
        noise_rate, noise_se = _mean_se(paired) if noise != "gd" else (math.nan, math.nan)
        rows.append(
            {
                "noise": noise,
                "lr": lr,
                "n_inits": len(members),
                "trace_start": _mean_se([m["trace_start"] for m in members])[0],
                "trace_change": _mean_se([m["trace_end"] - m["trace_start"] for m in members])[0],
                "trace_rate": rate,
                "trace_rate_se": rate_se,
                "noise_rate": noise_rate,
                "noise_rate_se": noise_se,
            }
        )
    return rows


def trace_rate_fits(rows: list[dict]) -> list[dict]:
    """SGD's trace rate, and its noise part (SGD minus GD), against lr^2.

    Parameters
    ----------
    rows : list of dict
        Rows of `trace_rows`.

    Returns
    -------
    list of dict
        One row per quantity ('sgd trace_rate', 'sgd noise_rate'): its line's fit and the number
        of learning rates.
    """
    sgd = [r for r in rows if r["noise"] == "sgd"]
    out = []
    for y in ("trace_rate", "noise_rate"):
        members = [r for r in sgd if math.isfinite(r[y])]
        fit = linear_fit([r["lr"] ** 2 for r in members], [r[y] for r in members])
        out.append({"y": f"sgd {y}", **{k: fit[k] for k in TRACE_FIT_COLUMNS[1:-1]}, "n_lr": len(members)})
    return out


def _table(rows, columns, formats=None):
    formats = formats or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, float):
                cells.append("" if math.isnan(value) else format(value, formats.get(c, ".4g")))
            else:
                cells.append("" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(tables: dict[str, list[dict]]) -> str:
    """noise.md: every table that has rows, each with what the paper says beside it.

    Parameters
    ----------
    tables : dict of str to list of dict
        {table name: rows} of the other functions of this module.

    Returns
    -------
    str
        The markdown text.
    """
    parts = ["# The noise study, reproduced at its own scale", ""]
    sections = (
        (
            "toy_trace",
            "Trace valley: trace change per step (paper Fig. 2b: falls linear in lr^2)",
            TOY_COLUMNS,
        ),
        ("toy_trace_rate", "Trace valley: rate against lr^2", TOY_RATE_COLUMNS),
        (
            "toy_anticorrelated",
            "Anticorrelated valley (paper Fig. 2c-d: SGD lowers the trace, isotropic noise the determinant)",
            ANTI_COLUMNS,
        ),
        ("negative_points", "Network end states of SGD from the minimum (paper Fig. 2a)", POINT_COLUMNS),
        (
            "negative_vs_loss",
            "Sum of the negative eigenvalues against the excess training loss "
            f"(paper: slope {PAPER['negative_slope']}, intercept {PAPER['negative_intercept']})",
            NEGATIVE_COLUMNS,
        ),
        (
            "trace_runs",
            "Exact trace along descent from minima (paper Fig. 3: falls along SGD)",
            TRACE_COLUMNS,
        ),
        ("trace_rate_fits", "SGD trace rate against lr^2", TRACE_FIT_COLUMNS),
    )
    for key, title, columns in sections:
        rows = tables.get(key) or []
        if rows:
            parts += [f"## {title}", "", _table(rows, columns), ""]
    return "\n".join(parts)
