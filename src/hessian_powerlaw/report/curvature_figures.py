"""Figures of the curvature measured along training (the noise study's Fig. 2 on the
project's own runs): trace, top eigenvalue and loss over epochs, the trace rate against lr^2,
the negative-eigenvalue sum against the loss, and SGD against isotropic noise."""

from typing import TYPE_CHECKING

import numpy as np

from hessian_powerlaw.report.figures import fit_line, palette, plt

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _curvature_groups(runs):
    """label -> list of metrics, runs that differ only in seed grouped together."""
    groups = {}
    for _, metrics in sorted(runs, key=lambda item: item[0]):
        spec = metrics["spec"]
        label = (
            f"{spec['model']} {spec['optimizer']} lr={spec['lr']:g} {spec['schedule']} "
            f"b={spec['batch_size']} n={metrics['final']['n_train_used']}"
        )
        groups.setdefault(label, []).append(metrics)
    return groups


def _mean_std(members, key):
    """(epochs, mean, std) over seeds of a curvature quantity, at the epochs all seeds share."""
    series = [
        {m["epoch"]: m[key] for m in metrics.get("curvature", []) if m.get(key) is not None}
        for metrics in members
    ]
    epochs = sorted(set.intersection(*(set(s) for s in series))) if series else []
    values = np.array([[s[e] for e in epochs] for s in series], dtype=float).reshape(len(series), len(epochs))
    return np.array(epochs), values.mean(0), values.std(0)


def _band(ax, members, key, label, color):
    epochs, mean, std = _mean_std(members, key)
    if not len(epochs):
        return
    ax.plot(epochs, mean, "o-", ms=3, color=color, label=f"{label} ({len(members)} seeds)")
    ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)


def trace_figure(runs: list[tuple[str, dict]]) -> "Figure":
    """Hessian trace, top eigenvalue and training loss against epoch, mean ± std over seeds.

    Parameters
    ----------
    runs : list of (str, dict)
        (run name, metrics) of the curvature runs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _curvature_groups(runs)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (
        ("trace", "Hessian trace (Hutch++/Hutchinson)"),
        ("lambda_max", "top eigenvalue λ_max"),
        ("train_loss", "training loss"),
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        for color, (label, members) in zip(palette(len(groups)), groups.items(), strict=True):
            _band(ax, members, key, label, color)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=6.5)
    fig.suptitle("Curvature along training (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def lr_figure(runs: list[tuple[str, dict]], from_epoch: int = 0) -> "Figure":
    """Trace change per optimizer step against lr², with a linear fit per group (the study's Fig 2b).

    Parameters
    ----------
    runs : list of (str, dict)
        (run name, metrics) of the curvature runs.
    from_epoch : int, default 0
        The first epoch of each run's trace fit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from hessian_powerlaw.report.curvature import linear_fit, run_row

    rows = [run_row(name, metrics, from_epoch) for name, metrics in runs]
    groups = {}
    for row in rows:
        key = f"{row['model']} {row['optimizer']} {row['schedule']} b={row['batch_size']} n={row['n_train']}"
        groups.setdefault(key, []).append(row)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    swept = {k: v for k, v in groups.items() if len({r["lr"] for r in v}) > 1}
    if not swept:
        ax.axis("off")
        ax.text(0.5, 0.5, "no learning-rate sweep in this configuration", ha="center", va="center")
        return fig
    for color, (label, members) in zip(palette(len(swept)), swept.items(), strict=True):
        x = [r["lr"] ** 2 for r in members]
        y = [r["trace_rate"] for r in members]
        ax.scatter(x, y, color=color, s=18, label=label)
        fit_line(ax, x, linear_fit(x, y), color)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("learning rate² η²")
    ax.set_ylabel("trace change per step")
    ax.set_title(f"Trace change rate against η² (from epoch {from_epoch})", fontsize=10)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def negative_figure(runs: list[tuple[str, dict]]) -> "Figure":
    """Sum of the negative bottom-K eigenvalues against training loss, every measurement.

    With a linear fit per group (the study's Fig 2a: the intercept is near zero).

    Parameters
    ----------
    runs : list of (str, dict)
        (run name, metrics) of the curvature runs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from hessian_powerlaw.report.curvature import linear_fit

    groups = _curvature_groups(runs)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for color, (label, members) in zip(palette(len(groups)), groups.items(), strict=True):
        pts = [m for metrics in members for m in metrics.get("curvature", [])]
        x = [p["train_loss"] for p in pts]
        y = [p["neg_sum"] for p in pts]
        ax.scatter(x, y, color=color, s=14, label=label)
        fit_line(ax, x, linear_fit(x, y), color)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel("training loss (Hessian's evaluation set)")
    ax.set_ylabel("sum of negative bottom-K eigenvalues")
    ax.set_title("Negative curvature against loss", fontsize=10)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def noise_figure(runs: list[tuple[str, dict]]) -> "Figure":
    """Trace and log-determinant of the top-K block over training, per optimizer.

    SGD against full-batch GD with isotropic noise of matched magnitude (the study's Fig 2c-d):
    the runs at the learning rates of the GD runs, or all runs when there is none.

    Parameters
    ----------
    runs : list of (str, dict)
        (run name, metrics) of the curvature runs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    full_batch = {m["spec"]["lr"] for _, m in runs if m["spec"]["optimizer"] in ("gd", "gd-noise")}
    groups = _curvature_groups([(n, m) for n, m in runs if not full_batch or m["spec"]["lr"] in full_batch])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for color, (label, members) in zip(palette(len(groups)), groups.items(), strict=True):
        _band(axes[0], members, "trace", label, color)
        _band(axes[1], members, "logdet_top", label, color)
    optimizers = {m["spec"]["optimizer"] for _, m in runs}
    note = "" if {"sgd", "gd-noise"} <= optimizers else " (no SGD / GD+noise pair in this configuration)"
    axes[0].set_title("Hessian trace" + note, fontsize=9)
    axes[1].set_title("log det of the top-K block", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=6.5)
    fig.tight_layout()
    return fig
