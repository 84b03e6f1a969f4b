"""Summaries of records: the protein size bins, the network table, the comparison of both sides
(Markdown and HTML; the TSV reading and writing is in `hessian_powerlaw.io`)."""

import math

import numpy as np

# Bins by 3N (number of C-alpha degrees of freedom), as in the source study's Tables 12/13.
SIZE_BINS = (("300-1000", 300, 1000), ("1000-3000", 1000, 3000), ("3000-6000", 3000, 6000))
# The source study's values over 9166 entries (K = 10%): s mean +- std, beta mean +- std, d_ks/d_c.
STUDY_BINS = {
    "300-1000": {"s": "1.050 ± 0.175", "beta": "1.976 ± 0.143", "d_ratio": "0.304"},
    "1000-3000": {"s": "1.041 ± 0.119", "beta": "1.973 ± 0.103", "d_ratio": "0.292"},
    "3000-6000": {"s": "1.002 ± 0.084", "beta": "2.004 ± 0.080", "d_ratio": "0.317"},
    "all": {"s": "1.045 ± 0.155", "beta": "1.975 ± 0.128", "d_ratio": "0.300"},
}


def _mean_std(values):
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def size_bin_rows(records: list[dict]) -> list[dict]:
    """Per size bin (3N) and overall: count, mean and sample std of beta, s and d_ks/d_c.

    Also the fraction passing the KS test. Only records with status 'ok' count.

    Parameters
    ----------
    records : list of dict
        Protein records.

    Returns
    -------
    list of dict
        One row per size bin, then 'all'.
    """
    ok = [r for r in records if r.get("status") == "ok"]
    skipped = len(records) - len(ok)
    rows = []
    for name, low, high in (*SIZE_BINS, ("all", 0, math.inf)):
        members = [r for r in ok if low <= 3 * r["n_residues"] < high]
        beta, beta_sd = _mean_std([r["beta"] for r in members])
        s, s_sd = _mean_std([r["s"] for r in members])
        ratio, ratio_sd = _mean_std([r["d_ks"] / r["d_c"] for r in members])
        rows.append(
            {
                "bin_3n": name,
                "count": len(members),
                "beta_mean": beta,
                "beta_std": beta_sd,
                "s_mean": s,
                "s_std": s_sd,
                "dks_dc_mean": ratio,
                "dks_dc_std": ratio_sd,
                "frac_power_law": (
                    sum(bool(r["power_law"]) for r in members) / len(members) if members else None
                ),
                "skipped": skipped if name == "all" else None,
            }
        )
    return rows


SIZE_BIN_COLUMNS = (
    "bin_3n",
    "count",
    "beta_mean",
    "beta_std",
    "s_mean",
    "s_std",
    "dks_dc_mean",
    "dks_dc_std",
    "frac_power_law",
    "skipped",
)


def _pm(mean, std):
    return "–" if mean is None else f"{mean:.3f} ± {std:.3f}"


def size_bins_markdown(rows: list[dict], k_label: str | float) -> str:
    """The protein size-bin table as markdown, beside the study's values.

    Parameters
    ----------
    rows : list of dict
        Rows of `size_bin_rows`.
    k_label : str or float
        The K of the fits, as shown in the title.

    Returns
    -------
    str
        The markdown text.
    """
    lines = [
        f"Protein size bins (K = {k_label}; mean ± sample std; study = source study, 9166 entries)",
        "",
        "| 3N bin | count | beta | s | d_ks/d_c | power law | study beta | study s | study d_ks/d_c |",
        "|---|---:|---|---|---|---:|---|---|---|",
    ]
    for row in rows:
        study = STUDY_BINS[row["bin_3n"]]
        frac = "–" if row["frac_power_law"] is None else f"{100 * row['frac_power_law']:.0f}%"
        lines.append(
            f"| {row['bin_3n']} | {row['count']} | {_pm(row['beta_mean'], row['beta_std'])} "
            f"| {_pm(row['s_mean'], row['s_std'])} | {_pm(row['dks_dc_mean'], row['dks_dc_std'])} "
            f"| {frac} | {study['beta']} | {study['s']} | {study['d_ratio']} |"
        )
    skipped = rows[-1]["skipped"]
    if skipped:
        lines += ["", f"{skipped} entries skipped or failed; see failures.tsv."]
    return "\n".join(lines) + "\n"


def _fmt(value, spec):
    return "–" if value is None else format(value, spec)


def dnn_markdown(records: list[dict]) -> str:
    """Networks in the layout of the source study's Table 1, with the eigengap fit beside.

    Parameters
    ----------
    records : list of dict
        Network records.

    Returns
    -------
    str
        The markdown text.
    """
    lines = [
        "| run | dataset | model | optimizer | batch | epochs | test acc | K | d_ks | d_c | power law "
        "| beta | s | gap beta | gap s | HVPs | status |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(records, key=lambda r: r["run"]):
        verdict = "–" if r["power_law"] is None else ("yes" if r["power_law"] else "no")
        beta = "–" if r["beta"] is None else f"{r['beta']:.3f} ± {r['beta_sigma']:.3f}"
        lines.append(
            f"| {r['run']} | {r['dataset']} | {r['model']} | {r['optimizer']} | {r['batch_size']} "
            f"| {r['epochs']} | {_fmt(r['test_acc'], '.4f')} | {r['n_modes']} | {_fmt(r['d_ks'], '.4f')} "
            f"| {_fmt(r['d_c'], '.4f')} | {verdict} | {beta} | {_fmt(r['s'], '.3f')} "
            f"| {_fmt(r['gap_beta'], '.3f')} | {_fmt(r['gap_s'], '.3f')} | {r['hvp_count']} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


COMPARISON_COLUMNS = ("side", "name", "count", "k", "beta", "beta_err", "s", "s_err", "dks_dc", "power_law")


def comparison_rows(bin_rows: list[dict], dnn_records: list[dict]) -> list[dict]:
    """Protein size bins (mean ± std over entries) beside networks (estimate ± sigma).

    Parameters
    ----------
    bin_rows : list of dict
        Rows of `size_bin_rows`.
    dnn_records : list of dict
        Network records.

    Returns
    -------
    list of dict
        One row per size bin, then one per network.
    """
    rows = []
    for b in bin_rows:
        rows.append(
            {
                "side": "protein",
                "name": f"3N {b['bin_3n']}",
                "count": b["count"],
                "k": "10%" if b["count"] else None,
                "beta": b["beta_mean"],
                "beta_err": b["beta_std"],
                "s": b["s_mean"],
                "s_err": b["s_std"],
                "dks_dc": b["dks_dc_mean"],
                "power_law": b["frac_power_law"],
            }
        )
    for r in sorted(dnn_records, key=lambda r: r["run"]):
        fitted = r.get("beta") is not None
        rows.append(
            {
                "side": "network",
                "name": r["run"],
                "count": 1,
                "k": r.get("k"),
                "beta": r.get("beta"),
                "beta_err": r.get("beta_sigma"),
                "s": r.get("s"),
                "s_err": r["beta_sigma"] / (r["beta"] - 1) ** 2 if fitted else None,
                "dks_dc": r["d_ks"] / r["d_c"] if fitted else None,
                "power_law": (1.0 if r["power_law"] else 0.0) if fitted else None,
            }
        )
    return rows


def side_summaries(protein_records: list[dict], dnn_records: list[dict]) -> list[str]:
    """One line per side: mean s over fitted entries (trained networks only) and its distance from 1.

    Parameters
    ----------
    protein_records, dnn_records : list of dict
        The records of each side.

    Returns
    -------
    list of str
        The lines.
    """
    lines = []
    proteins = [r["s"] for r in protein_records if r.get("status") == "ok"]
    trained = [r["s"] for r in dnn_records if r.get("epochs") and r.get("s") is not None]
    for side, values in (("Proteins", proteins), ("Trained networks", trained)):
        if values:
            mean = float(np.mean(values))
            lines.append(f"{side}: mean s = {mean:.3f} over {len(values)}, |s - 1| = {abs(mean - 1):.3f}")
        else:
            lines.append(f"{side}: none fitted")
    return lines


def comparison_markdown(rows: list[dict], summaries: list[str]) -> str:
    """The protein/network comparison table as markdown.

    Parameters
    ----------
    rows : list of dict
        Rows of `comparison_rows`.
    summaries : list of str
        Lines of `side_summaries`.

    Returns
    -------
    str
        The markdown text.
    """
    lines = [
        "| side | group | n | K | beta | s | d_ks/d_c | power law |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    for r in rows:
        if r["side"] == "protein":
            law = "–" if r["power_law"] is None else f"{100 * r['power_law']:.0f}%"
        else:
            law = "–" if r["power_law"] is None else ("yes" if r["power_law"] else "no")
        lines.append(
            f"| {r['side']} | {r['name']} | {r['count']} | {r['k'] or '–'} | {_pm(r['beta'], r['beta_err'])} "
            f"| {_pm(r['s'], r['s_err'])} | {_fmt(r['dks_dc'], '.2f')} | {law} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summaries) + "\n"


def comparison_html(markdown: str) -> str:
    """A self-contained HTML page of the comparison Markdown (table and summary lines).

    Parameters
    ----------
    markdown : str
        The output of `comparison_markdown`.

    Returns
    -------
    str
        The HTML text.
    """
    import html

    table, _, notes = markdown.partition("\n\n")
    lines = [line.strip("|").split("|") for line in table.splitlines()]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line) + "</tr>" for line in lines[2:]
    )
    items = "".join(f"<li>{html.escape(n[2:])}</li>" for n in notes.splitlines() if n.startswith("- "))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Proteins and networks</title>"
        "<style>table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}</style>"
        f"</head><body><table><tr>{head}</tr>{body}</table><ul>{items}</ul></body></html>\n"
    )


def curvature_markdown(rows: list[dict], lr_fits: list[dict], negative_fits: list[dict]) -> str:
    """Per-run trace change rates, then the learning-rate and negative-eigenvalue fits.

    Parameters
    ----------
    rows : list of dict
        Rows of `curvature.run_row`.
    lr_fits, negative_fits : list of dict
        Rows of `curvature.lr_fits` and `curvature.negative_fits`.

    Returns
    -------
    str
        The markdown text.
    """
    lines = [
        "| run | optimizer | lr | seed | epochs measured | trace first | trace last | trace change / step "
        "| λ_max last | neg. sum last | loss last | HVPs |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["run"]):
        lines.append(
            f"| {r['run']} | {r['optimizer']} | {r['lr']:g} | {r['seed']} "
            f"| {r['first_epoch']}–{r['last_epoch']} "
            f"| {r['trace_first']:.4g} | {r['trace_last']:.4g} "
            f"| {_fmt(r['trace_rate'], '.3g')} ± {_fmt(r['trace_rate_se'], '.2g')} "
            f"| {r['lambda_max_last']:.4g} | {r['neg_sum_last']:.3g} | {r['train_loss_last']:.4g} "
            f"| {r['hvps']} |"
        )
    for title, fits in (
        ("Trace change rate against lr²", lr_fits),
        ("Negative eigenvalues against loss", negative_fits),
    ):
        lines += ["", f"**{title}**", ""]
        if not fits:
            lines.append("(no group with two or more learning rates)")
            continue
        lines += ["| group | y | x | points | slope | intercept | R² |", "|---|---|---|---:|---:|---:|---:|"]
        for f in fits:
            lines.append(
                f"| {f['group']} | {f['y']} | {f['x']} | {f['n_points']} "
                f"| {f['slope']:.4g} ± {f['slope_se']:.2g} "
                f"| {f['intercept']:.4g} ± {f['intercept_se']:.2g} | {f['r2']:.3f} |"
            )
    return "\n".join(lines) + "\n"
