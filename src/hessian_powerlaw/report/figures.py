"""Figures: rank-size plots with the fitted law, protein/network overlay, size-bin histograms,
sweep plots and eigengaps. Each legend states K, the fit and the KS verdict."""

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hessian_powerlaw.io import atomic_path  # noqa: E402
from hessian_powerlaw.report.tables import SIZE_BINS  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SWEEP_DIMS = ("model", "optimizer", "batch_size", "n_train", "width", "depth")


def fit_label(rec: dict, prefix: str = "") -> str:
    """A legend label with the fit's beta, d_ks and verdict (keys with `prefix`)."""
    get = lambda key: rec.get(prefix + key)  # noqa: E731
    if get("beta") is None:
        return "no fit"
    verdict = "power law" if get("power_law") else "not a power law"
    return (
        f"fit K={get('k')}: β={get('beta'):.3f}±{get('beta_sigma'):.3f}, s={get('s'):.3f}\n"
        f"d_ks={get('d_ks'):.4f} {'<' if get('power_law') else '≥'} d_c={get('d_c'):.4f}: {verdict}"
    )


def fitted_rank_size(rec: dict, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(rank, value) of the fitted law through xmin: x_k = xmin (K/k)^s, k = 1..K."""
    k = rec[prefix + "k"]
    ranks = np.arange(1, k + 1)
    return ranks, rec[prefix + "xmin"] * (k / ranks) ** rec[prefix + "s"]


def rank_size(ax: "Axes", values: np.ndarray, rec: dict, title: str, prefix: str = "") -> None:
    """Draw a rank-size plot of the eigenvalues on ax, with the fitted power law."""
    values = np.sort(np.asarray(values, dtype=float))[::-1]
    values = values[values > 0]
    ax.loglog(np.arange(1, len(values) + 1), values, ".", ms=2.5, color="0.35", label="spectrum")
    if rec.get(prefix + "beta") is not None and rec.get(prefix + "xmin") is not None:
        ranks, line = fitted_rank_size(rec, prefix)
        color = "tab:blue" if rec.get(prefix + "power_law") else "tab:red"
        ax.loglog(ranks, line, "-", color=color, lw=1.5, label=fit_label(rec, prefix))
        ax.axvline(rec[prefix + "k"], color="0.7", lw=0.8, ls=":")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("rank k")
    ax.legend(fontsize=6.5, loc="upper right")


def save(fig: "Figure", out_dir: str | Path, name: str) -> list[Path]:
    """Write a figure as name.png and name.pdf, atomically, and close it. The files hold no
    date, so the same figure gives the same bytes (a rerun changes no committed file).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    out_dir : str or Path
        The directory.
    name : str
        The file name without extension.

    Returns
    -------
    list of Path
        The PNG and the PDF.
    """
    paths = []
    for ext in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            metadata = {"CreationDate": None} if ext == "pdf" else None
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _grid(n, width=4.2, height=3.3):
    cols = min(3, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat)


def spectra_figure(items: list[tuple[str, np.ndarray, dict]], ylabel: str, suptitle: str) -> "Figure":
    """One rank-size panel per spectrum, with its fitted power law (the study's Fig 1/9).

    Parameters
    ----------
    items : list of (str, numpy.ndarray, dict)
        (title, values (M,) descending, record with the fit).
    ylabel : str
        The value axis' label.
    suptitle : str
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _grid(len(items))
    if not items:
        axes[0].text(0.5, 0.5, "nothing fitted", ha="center", va="center")
    for ax, (title, values, rec) in zip(axes, items, strict=False):
        rank_size(ax, values, rec, title)
        ax.set_ylabel(ylabel)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return fig


def gaps_figure(items: list[tuple[str, np.ndarray, dict]]) -> "Figure":
    """Eigengaps delta_k = lambda_k - lambda_(k+1) of each network, with their fit (the study's Fig 2).

    Parameters
    ----------
    items : list of (str, numpy.ndarray, dict)
        (title, eigenvalues (K,) descending, record with the 'gap_' fit keys).

    Returns
    -------
    matplotlib.figure.Figure
        One rank-size panel per item.
    """
    fig, axes = _grid(len(items))
    for ax, (title, values, rec) in zip(axes, items, strict=False):
        gaps = -np.diff(np.sort(values)[::-1])
        rank_size(ax, gaps, rec, title, prefix="gap_")
        ax.set_ylabel("eigengap δ_k")
    fig.suptitle("Eigengaps of the loss Hessian (fit: same estimator)", fontsize=11)
    fig.tight_layout()
    return fig


def overlay_figure(
    protein_items: list[tuple[str, np.ndarray, dict]], dnn_items: list[tuple[str, np.ndarray, dict]]
) -> "Figure":
    """Every spectrum's top K, normalised (rank/K, value/xmin), proteins and networks together.

    Parameters
    ----------
    protein_items, dnn_items : list of (str, numpy.ndarray, dict)
        (name, spectrum (M,) descending, record with the fit) of each side.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(6.5, 5))
    groups = (
        (protein_items, "tab:green", "-", "proteins"),
        ([item for item in dnn_items if item[2].get("epochs")], "tab:purple", "-", "trained networks"),
        ([item for item in dnn_items if not item[2].get("epochs")], "tab:orange", "--", "networks at init."),
    )
    for items, color, style, side in groups:
        for i, (_title, values, rec) in enumerate(items):
            k = rec.get("k") or len(values)
            top = np.sort(values)[::-1][:k]
            label = f"{side} ({len(items)})" if i == 0 else None
            ax.loglog(
                np.arange(1, k + 1) / k, top / top[-1], style, color=color, alpha=0.6, lw=1.2, label=label
            )
    ranks = np.logspace(-3, 0, 50)
    ax.loglog(ranks, ranks**-1.0, "k--", lw=1, label="s = 1 (β = 2)")
    ax.set_xlabel("k / K")
    ax.set_ylabel("λ_k / λ_K (proteins: σ = 1/λ)")
    ax.set_title("Normalised rank-size spectra: proteins and networks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def size_bin_histograms(records: list[dict]) -> "Figure":
    """Histograms of s and d_ks/d_c per protein size bin (the study's Fig 10).

    Parameters
    ----------
    records : list of dict
        Protein records.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ok = [r for r in records if r.get("status") == "ok"]
    fig, axes = plt.subplots(2, len(SIZE_BINS), figsize=(4 * len(SIZE_BINS), 6), squeeze=False)
    for col, (name, low, high) in enumerate(SIZE_BINS):
        members = [r for r in ok if low <= 3 * r["n_residues"] < high]
        s = [r["s"] for r in members]
        ratio = [r["d_ks"] / r["d_c"] for r in members]
        axes[0][col].hist(s, bins=15, color="tab:green")
        axes[0][col].axvline(1.0, color="k", ls="--", lw=1)
        axes[0][col].set_title(f"3N {name}: {len(members)} entries" + (f", s̄={np.mean(s):.3f}" if s else ""))
        axes[0][col].set_xlabel("s")
        axes[1][col].hist(ratio, bins=15, color="tab:olive")
        axes[1][col].axvline(1.0, color="tab:red", ls="--", lw=1, label="d_ks = d_c")
        axes[1][col].set_xlabel("d_ks / d_c (power law if < 1)")
        axes[1][col].legend(fontsize=7)
    fig.tight_layout()
    return fig


def sweep_figure(records: list[dict]) -> "Figure":
    """s and d_ks/d_c against every swept dimension of the trained runs (the study's Fig 6/7).

    Parameters
    ----------
    records : list of dict
        Network records.

    Returns
    -------
    matplotlib.figure.Figure
        An empty note when no dimension was swept.
    """
    trained = [r for r in records if r.get("epochs") and r.get("beta") is not None]
    dims = [d for d in SWEEP_DIMS if len({r.get(d) for r in trained}) > 1]
    fig, axes = plt.subplots(2, max(len(dims), 1), figsize=(4.2 * max(len(dims), 1), 6), squeeze=False)
    if not dims:
        for ax in axes.flat:
            ax.axis("off")
        axes[0][0].text(0.5, 0.5, "no swept dimension in this configuration", ha="center", va="center")
        return fig
    for col, dim in enumerate(dims):
        values = sorted({r[dim] for r in trained}, key=lambda v: (isinstance(v, str), v))
        pos = {v: i for i, v in enumerate(values)}
        for row, (key, label) in enumerate((("s", "s"), (None, "d_ks / d_c"))):
            ax = axes[row][col]
            ys = [r["s"] if key else r["d_ks"] / r["d_c"] for r in trained]
            colors = ["tab:blue" if r["power_law"] else "tab:red" for r in trained]
            ax.scatter([pos[r[dim]] for r in trained], ys, c=colors, s=18)
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
            ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=45, fontsize=7)
            ax.set_xlabel(dim)
            ax.set_ylabel(label)
        axes[0][col].set_title(f"{dim} (blue: power law, red: not)", fontsize=9)
    fig.tight_layout()
    return fig


def palette(n: int) -> list[tuple[float, float, float, float]]:
    """n colours of the tab10 palette."""
    return [plt.get_cmap("tab10")(i % 10) for i in range(n)]


def fit_line(ax: "Axes", x: np.ndarray, fit: dict, color: object) -> None:
    """Draw the least-squares line of `fit` over [0, max(x)] on ax."""
    if fit["n_points"] < 3 or not np.isfinite(fit["slope"]):
        return
    xs = np.linspace(0, max(x), 50)
    ax.plot(
        xs,
        fit["intercept"] + fit["slope"] * xs,
        "--",
        color=color,
        lw=1,
        label=f"fit: slope {fit['slope']:.3g}, intercept {fit['intercept']:.3g} "
        f"± {fit['intercept_se']:.2g}, R² {fit['r2']:.3f}",
    )


def fidelity_figure(table: list[dict]) -> "Figure":
    """beta against K for every spectrum variant of the trained runs, the study's value marked.

    Filled: xmin at the K-th value; open: xmin by KS minimisation, drawn at its tail size.

    Parameters
    ----------
    table : list of dict
        Rows of `fidelity.rows`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from hessian_powerlaw.report.fidelity import STUDY

    fig, ax = plt.subplots(figsize=(7, 4.8))
    groups = {}
    for row in table:
        if row.get("beta") is not None:
            groups.setdefault((row["run"], row["variant"]), []).append(row)
    for color, ((run, variant), rows) in zip(palette(len(groups)), sorted(groups.items()), strict=True):
        fixed = sorted((r for r in rows if r["window"] != "xmin by KS"), key=lambda r: r["k"])
        label = f"{variant} ({run})" if len({g[0] for g in groups}) > 1 else variant
        ax.errorbar(
            [r["k"] for r in fixed],
            [r["beta"] for r in fixed],
            yerr=[r["beta_sigma"] for r in fixed],
            fmt="o-",
            color=color,
            ms=4,
            capsize=3,
            label=label,
        )
        for r in rows:
            if r["window"] == "xmin by KS":
                ax.plot(r["k"], r["beta"], "o", mfc="none", color=color, ms=8)
    ax.axhspan(STUDY["beta"] - 2 * STUDY["beta_sigma"], STUDY["beta"] + 2 * STUDY["beta_sigma"], color="0.85")
    ax.plot(
        STUDY["k"],
        STUDY["beta"],
        "k*",
        ms=12,
        label=f"study: {STUDY['beta']} ± {STUDY['beta_sigma']} (±2σ band)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("K (top eigenvalues fitted)")
    ax.set_ylabel("β")
    ax.set_title("Exponent against K per spectrum variant (open: xmin by KS)", fontsize=10)
    if not groups:
        ax.text(0.5, 0.5, "no fitted trained-network spectrum", transform=ax.transAxes, ha="center")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
