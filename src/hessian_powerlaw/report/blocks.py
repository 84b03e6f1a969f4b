"""Per-block spectra (`dnn-spectrum --blocks`): the fitted exponent of every parameter group,
the Hessian analogue of WeightWatcher's per-layer alpha (numpy and matplotlib only)."""

import math
from typing import TYPE_CHECKING

from hessian_powerlaw.report.figures import plt

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def blocks_figure(rows: list[dict], title: str = "Per-block Hessian spectra") -> "Figure":
    """beta ± sigma per block and each block's lambda_max, in the table's order.

    Blue: a power law by the KS test; red: not; grey: no fit.

    Parameters
    ----------
    rows : list of dict
        The per-block table of ``dnn-spectrum --blocks`` (block, beta, beta_sigma, verdict,
        lambda_max, ...).
    title : str
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(rows) + 2), 6), sharex=True)
    x = list(range(len(rows)))
    for i, row in enumerate(rows):
        beta = row.get("beta")
        if beta is None or not math.isfinite(beta):
            top.scatter([i], [0], marker="x", color="0.5")
            continue
        color = "tab:blue" if row.get("power_law") else "tab:red"
        top.errorbar([i], [beta], yerr=[row.get("beta_sigma") or 0], fmt="o", color=color)
    top.axhline(2.0, color="0.6", lw=0.8, ls=":")
    top.set_ylabel("β (fit of the block's top K)")
    top.set_title(title + " (blue: power law by KS, red: not; dotted: β = 2)", fontsize=9)
    bottom.bar(x, [row.get("lambda_max") or 0 for row in rows], color="0.5")
    bottom.set_yscale("log")
    bottom.set_ylabel("λ_max of the block")
    bottom.set_xticks(x)
    bottom.set_xticklabels([str(row["block"]) for row in rows], rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    return fig
