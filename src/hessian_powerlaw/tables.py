"""Tidy tables of records (TSV, Markdown) and the protein size-bin summary."""

import csv
import io
import math

import numpy as np

from .atomic import write_text

# Bins by 3N (number of C-alpha degrees of freedom), as in the source study's Tables 12/13.
SIZE_BINS = (("300-1000", 300, 1000), ("1000-3000", 1000, 3000), ("3000-6000", 3000, 6000))
# The source study's values over 9166 entries (K = 10%): s mean +- std, beta mean +- std, d_ks/d_c.
STUDY_BINS = {
    "300-1000": {"s": "1.050 ± 0.175", "beta": "1.976 ± 0.143", "d_ratio": "0.304"},
    "1000-3000": {"s": "1.041 ± 0.119", "beta": "1.973 ± 0.103", "d_ratio": "0.292"},
    "3000-6000": {"s": "1.002 ± 0.084", "beta": "2.004 ± 0.080", "d_ratio": "0.317"},
    "all": {"s": "1.045 ± 0.155", "beta": "1.975 ± 0.128", "d_ratio": "0.300"},
}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


def to_tsv(rows, columns):
    out = io.StringIO()
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
    return out.getvalue()


def write_tsv(path, rows, columns):
    write_text(path, to_tsv(rows, columns))


def read_tsv(path):
    """Rows of a TSV written by write_tsv, with numbers and booleans converted back."""
    with open(path, newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(lines, delimiter="\t")]


def _parse(text):
    if text in ("", None):
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _mean_std(values):
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def size_bin_rows(records):
    """Per size bin (3N) and overall: count, mean and sample std of beta, s and d_ks/d_c,
    and the fraction passing the KS test. Only records with status 'ok' count."""
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


def size_bins_markdown(rows, k_label):
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


def dnn_markdown(records):
    """Networks in the layout of the source study's Table 1, with the eigengap fit beside."""
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
