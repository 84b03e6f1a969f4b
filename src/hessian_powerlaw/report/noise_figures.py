"""The noise study's figures (paper Fig. 2a-d and 3) from its records; numpy and matplotlib."""

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hessian_powerlaw.regression import linear_fit
from hessian_powerlaw.report.figures import fit_line, palette, plt, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = ("noise_toy_trace", "noise_toy_rate", "noise_anticorrelated", "noise_negative", "noise_trace")
NOISE_COLORS = {
    "sgd": "tab:blue",
    "isotropic": "tab:orange",
    "none": "0.4",
    "gd": "0.4",
    "isotropic-topk": "tab:green",
}


def _of(records, experiment, **match):
    return [
        r
        for r in records
        if r.get("experiment") == experiment and all(r.get(k) == v for k, v in match.items())
    ]


def _empty(ax, text):
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")


def toy_trace_figure(records: list[dict]) -> "Figure":
    """Mean trace along the runs of the trace valley, every lr of the SGD sweep (Fig. 2b)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    runs = sorted(_of(records, "toy-valley", model="trace"), key=lambda r: (r["noise"], r["lr"]))
    if not runs:
        _empty(ax, "no trace-valley runs")
        return fig
    sgd = [r for r in runs if r["noise"] == "sgd"]
    for color, r in zip(palette(len(sgd)), sgd, strict=True):
        t = r["trajectory"]
        ax.plot(t["step"], t["trace"], color=color, lw=1.2, label=f"SGD noise, η={r['lr']:g}")
    for r in runs:
        if r["noise"] != "sgd" and r["lr"] == max(x["lr"] for x in runs):
            t = r["trajectory"]
            ax.plot(
                t["step"],
                t["trace"],
                "--",
                color=NOISE_COLORS[r["noise"]],
                label=f"{r['noise']}, η={r['lr']:g}",
            )
    ax.axvline(runs[0]["equilibrate_steps"], color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"tr H (mean of {runs[0]['repeats']} runs)")
    ax.set_title("Trace valley: the trace falls under noise, not under GD", fontsize=10)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    return fig


def toy_rate_figure(records: list[dict]) -> "Figure":
    """Trace change per step against lr^2 for each noise model, with the fit and the drift
    formula's prediction."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups = defaultdict(list)
    for r in _of(records, "toy-valley", model="trace"):
        groups[r["noise"]].append(r)
    if not groups:
        _empty(ax, "no trace-valley runs")
        return fig
    for noise, members in sorted(groups.items()):
        members.sort(key=lambda r: r["lr"])
        x = [r["lr"] ** 2 for r in members]
        color = NOISE_COLORS[noise]
        ax.errorbar(
            x,
            [r["trace_rate"] for r in members],
            yerr=[r["trace_rate_se"] for r in members],
            fmt="o",
            ms=4,
            color=color,
            label=noise,
        )
        fit_line(ax, x, linear_fit(x, [r["trace_rate"] for r in members]), color)
        ax.plot(
            x,
            [r["predicted_trace_rate"] for r in members],
            ":",
            color=color,
            lw=1,
            label=f"{noise}: predicted",
        )
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("learning rate² η²")
    ax.set_ylabel("trace change per step")
    ax.set_title("Trace valley: rate against η²", fontsize=10)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def anticorrelated_figure(records: list[dict]) -> "Figure":
    """Trace and log-determinant along the anticorrelated valley per noise model (Fig. 2c-d)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    runs = sorted(_of(records, "toy-valley", model="anticorrelated"), key=lambda r: r["noise"])
    if not runs:
        for ax in axes:
            _empty(ax, "no anticorrelated-valley runs")
        return fig
    for key, ax, label in (
        ("trace", axes[0], "tr H"),
        ("logdet", axes[1], "log det H (non-degenerate block)"),
    ):
        for r in runs:
            t = r["trajectory"]
            ax.plot(t["step"], t[key], color=NOISE_COLORS[r["noise"]], label=f"{r['noise']}, η={r['lr']:g}")
        ax.axvline(runs[0]["equilibrate_steps"], color="0.7", lw=0.8, ls=":")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{label} (mean of {runs[0]['repeats']} runs)")
        ax.legend(fontsize=7)
    fig.suptitle(
        "Anticorrelated valley: SGD noise lowers the trace, isotropic noise the determinant", fontsize=10
    )
    fig.tight_layout()
    return fig


def negative_figure(records: list[dict]) -> "Figure":
    """Sum of all negative eigenvalues against the excess loss at the SGD end states (Fig. 2a)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = _of(records, "equilibrium")
    if not points:
        _empty(ax, "no equilibrium runs")
        return fig
    sizes = sorted({p["batch_size"] for p in points})
    for color, size in zip(palette(len(sizes)), sizes, strict=True):
        for flat in (True, False):
            pts = [p for p in points if p["batch_size"] == size and bool(p["equilibrated"]) == flat]
            if pts:
                ax.scatter(
                    [p["excess_loss"] for p in pts],
                    [p["negative_sum"] for p in pts],
                    s=22,
                    color=color if flat else "none",
                    edgecolors=color,
                    label=f"S={size}" + ("" if flat else " (loss not flat)"),
                )
    x = [p["excess_loss"] for p in points]
    fit_line(ax, x, linear_fit(x, [p["negative_sum"] for p in points]), "k")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("training loss above the label-smoothing floor")
    ax.set_ylabel("sum of all negative eigenvalues")
    ax.set_title("Negative curvature against loss (exact spectra)", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def trace_figure(records: list[dict]) -> "Figure":
    """Mean trace change along descent from minima, per noise at the comparison lr, and the
    SGD and noise-part rates against lr^2 (Fig. 3)."""
    from hessian_powerlaw.report.noise import trace_rows

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = _of(records, "trace-run")
    if not runs:
        for ax in axes:
            _empty(ax, "no trace runs")
        return fig
    shared = [
        lr for lr in sorted({r["lr"] for r in runs}) if len({r["noise"] for r in runs if r["lr"] == lr}) > 2
    ]
    lr = shared[0] if shared else max(r["lr"] for r in runs)
    for noise in sorted({r["noise"] for r in runs}):
        members = [r for r in runs if r["noise"] == noise and r["lr"] == lr]
        if not members:
            continue
        steps = np.asarray(members[0]["history"]["step"])
        change = np.array([np.asarray(m["history"]["trace"]) - m["history"]["trace"][0] for m in members])
        mean = change.mean(0)
        se = change.std(0, ddof=1) / math.sqrt(len(members)) if len(members) > 1 else np.zeros_like(mean)
        color = NOISE_COLORS[noise]
        axes[0].plot(steps, mean, color=color, label=f"{noise} ({len(members)} minima)")
        axes[0].fill_between(steps, mean - se, mean + se, color=color, alpha=0.2)
    axes[0].axhline(0, color="0.6", lw=0.8)
    axes[0].set_xlabel("step from the minimum")
    axes[0].set_ylabel("tr H − tr H at the minimum (mean ± s.e.)")
    axes[0].set_title(f"Exact trace along descent, η={lr:g}", fontsize=10)
    axes[0].legend(fontsize=7)
    sgd = [row for row in trace_rows(records) if row["noise"] == "sgd"]
    for key, color, label in (("trace_rate", "tab:blue", "SGD"), ("noise_rate", "tab:purple", "SGD − GD")):
        members = [row for row in sgd if math.isfinite(row[key])]
        if members:
            x = [row["lr"] ** 2 for row in members]
            y = [row[key] for row in members]
            axes[1].errorbar(
                x, y, yerr=[row[key + "_se"] for row in members], fmt="o", color=color, label=label
            )
            fit_line(axes[1], x, linear_fit(x, y), color)
    axes[1].axhline(0, color="0.6", lw=0.8)
    axes[1].set_xlabel("learning rate² η²")
    axes[1].set_ylabel("trace change per step (mean ± s.e. over minima)")
    axes[1].set_title("Trace rate against η²", fontsize=10)
    axes[1].legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def write_all(records: list[dict], out_dir: str | Path) -> None:
    """Every figure of FIGURES as PNG and PDF in `out_dir`.

    Parameters
    ----------
    records : list of dict
        The noise study's records.
    out_dir : str or Path
        The directory.
    """
    makers = (toy_trace_figure, toy_rate_figure, anticorrelated_figure, negative_figure, trace_figure)
    for name, make in zip(FIGURES, makers, strict=True):
        save(make(records), out_dir, name)
