"""Figures of the reproduction (the study's Fig. 3 and 16): the fitted slope s of every trained
network's Hessian spectrum against its test accuracy, its largest eigenvalue and its trace, one
point per seed, one colour per part of the reproduction."""

from typing import TYPE_CHECKING

import numpy as np

from hessian_powerlaw.report.figures import palette, plt
from hessian_powerlaw.report.reproduction import RUN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AXES = (("test_acc", "test accuracy", "linear"), ("lambda_max", "λ_max", "log"), ("trace", "trace", "log"))


def _points(records):
    """{experiment: [records]} of the Hessian spectra of trained networks over training images
    that have a fit (the quantities the study sets against s)."""
    groups = {}
    for record in records:
        if (
            record.get("status") == "ok"
            and record.get("epochs")
            and record.get("operator", "hessian") == "hessian"
            and record.get("eval_split", "train") == "train"
        ):
            match = RUN.match(str(record.get("run") or ""))
            if match:
                groups.setdefault(match["experiment"], []).append(record)
    return groups


def slope_figure(records: list[dict]) -> "Figure":
    """s against test accuracy, lambda_max and trace, with the Pearson r of each over all points.

    Experiments with another K than the most common one are left out.

    Parameters
    ----------
    records : list of dict
        Network records of the reproduction.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels.
    """
    groups = _points(records)
    ks = [r["k"] for members in groups.values() for r in members]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), squeeze=False)
    if not ks:
        axes[0, 0].text(0.5, 0.5, "no fitted trained-network spectra", ha="center", va="center")
        return fig
    k = max(set(ks), key=ks.count)
    groups = {name: [r for r in members if r["k"] == k] for name, members in groups.items()}
    groups = {name: members for name, members in groups.items() if members}
    colors = palette(len(groups))
    for ax, (key, label, scale) in zip(axes[0], AXES, strict=True):
        xs, ys = [], []
        for color, (name, members) in zip(colors, sorted(groups.items()), strict=True):
            pts = [(r[key], r["s"]) for r in members if r.get(key) is not None and r[key] > 0]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, "o", ms=5, color=color, label=name)
                xs += x
                ys += y
        if len(xs) > 2:
            r = np.corrcoef(np.log(xs) if scale == "log" else xs, ys)[0, 1]
            ax.set_title(f"s against {label} (Pearson r = {r:.2f}, {len(xs)} networks)", fontsize=9)
        ax.set_xscale(scale)
        ax.set_xlabel(label)
        ax.set_ylabel(f"fitted s (K = {k})")
    axes[0, 0].legend(fontsize=6, loc="best")
    fig.suptitle("Trained networks: the power-law slope against generalisation and sharpness", fontsize=10)
    fig.tight_layout()
    return fig
