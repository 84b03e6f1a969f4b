"""The power-law study's rows beside ours: one row per table row or figure panel of the study
(`data/study/powerlaw_study.tsv`), from the records of its reproduction experiment: network
records (one per seed; `run` = EXPERIMENT_sSEED), or for protein rows the rows of the
experiment's protein table (the entry, or the 3N size bin, named in the row's `subset`)."""

import math
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np

from hessian_powerlaw.io import read_tsv

COLUMNS = (
    "id",
    "source",
    "setting",
    "experiment",
    "fit",
    "subset",
    "k",
    "study_d_ks",
    "study_d_c",
    "study_power_law",
    "study_beta",
    "study_beta_sigma",
    "study_s",
    "n_seeds",
    "d_ks",
    "d_c",
    "power_law_fraction",
    "beta_mean",
    "beta_sd",
    "beta_sigma",
    "s",
    "test_acc",
    "lambda_max",
    "trace",
    "verdict_agrees",
    "beta_within_2sigma",
    "note",
)
RUN = re.compile(r"^(?P<experiment>[a-z0-9-]+)_s(?P<seed>\d+)$")
FITS = {"eigenvalues": "", "gaps": "gap_", "protein": ""}
SIZE_BIN = re.compile(r"^3N (?:(?P<low>\d+)-(?P<high>\d+)|all)$")


def study_rows(path: str | Path | None = None) -> list[dict]:
    """The study's published rows.

    Parameters
    ----------
    path : str or Path, optional
        A TSV of the same columns; default the values bundled with the package.

    Returns
    -------
    list of dict
        One row per published value (table, dataset, model, setting, K, d_ks, verdict, beta, ...).
    """
    if path is None:
        path = resources.files("hessian_powerlaw") / "data" / "study" / "powerlaw_study.tsv"
    rows = read_tsv(path)
    for row in rows:
        if row.get("fit") not in FITS:
            raise ValueError(
                f"{path}: row {row.get('id')}: fit must be eigenvalues or gaps, got {row.get('fit')!r}"
            )
    return rows


NUMBERS = ("k", "beta", "beta_sigma", "s", "d_ks", "d_c")


def by_experiment(records: Iterable[dict]) -> dict[str, list[dict]]:
    """{experiment: [records]} of the records whose `run` is EXPERIMENT_sSEED; ValueError for
    a run given twice (it would count as two seeds) or a fitted record whose numbers are not."""
    out, seen = {}, set()
    for record in records:
        run = str(record.get("run") or "")
        match = RUN.match(run)
        if not match:
            raise ValueError(f"record run {record.get('run')!r} is not EXPERIMENT_sSEED")
        if run in seen:
            raise ValueError(f"run {run} is given twice; each seed counts once")
        seen.add(run)
        if record.get("status") == "ok":
            for prefix in ("", "gap_") if "gap_beta" in record else ("",):
                for key in NUMBERS:
                    value = record.get(prefix + key)
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                        raise ValueError(f"run {run}: {prefix + key} is {value!r}, not a number")
        out.setdefault(match["experiment"], []).append(record)
    return out


def protein_members(rows: list[dict], subset: str) -> list[dict]:
    """The rows of a protein table in a study row's subset: a PDB id, or '3N LOW-HIGH' / '3N all'."""
    match = SIZE_BIN.match(subset or "")
    if match is None:
        return [r for r in rows if str(r.get("pdb_id") or "").upper() == str(subset).upper()]
    if match["low"] is None:
        return list(rows)
    low, high = int(match["low"]), int(match["high"])
    return [r for r in rows if r.get("n_residues") and low <= 3 * r["n_residues"] < high]


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _yes_no(flag):
    return None if flag is None else ("yes" if flag else "no")


def ours(records: list[dict], fit: str) -> dict:
    """Our side of a row from an experiment's records (one per seed) and the fit kind."""
    prefix = FITS[fit]
    ok = [r for r in records if r.get("status") == "ok" and r.get(f"{prefix}beta") is not None]
    failed = [
        f"{r.get('run') or r.get('pdb_id')}: {r.get('status')} ({r.get('reason')})"
        for r in records
        if r not in ok
    ]
    row = {"n_seeds": len(ok), "note": "; ".join(failed) or None}
    if not ok:
        return row
    betas = [r[f"{prefix}beta"] for r in ok]
    row.update(
        d_ks=_mean(r[f"{prefix}d_ks"] for r in ok),
        d_c=_mean(r[f"{prefix}d_c"] for r in ok),
        k=ok[0][f"{prefix}k"] if len({r[f"{prefix}k"] for r in ok}) == 1 else None,
        power_law_fraction=sum(bool(r[f"{prefix}power_law"]) for r in ok) / len(ok),
        beta_mean=float(np.mean(betas)),
        beta_sd=float(np.std(betas, ddof=1)) if len(betas) > 1 else 0.0,
        beta_sigma=_mean(r[f"{prefix}beta_sigma"] for r in ok),
        s=_mean(r[f"{prefix}s"] for r in ok),
        test_acc=_mean(r.get("test_acc") for r in ok),
        lambda_max=_mean(r.get("lambda_max") for r in ok),
        trace=_mean(r.get("trace") for r in ok),
    )
    return row


def agreement(study: dict, row: dict) -> tuple[str | None, str | None]:
    """(verdict agrees, beta within 2 combined sigma): yes/no, or None where not applicable.

    Our verdict is the majority over seeds (a power law when at least half pass). Our sigma
    combines the fit's (beta-1)/sqrt(K) with the spread over seeds (`beta_uncertainty`), and
    beta agrees within 2 sqrt(sigma^2 + sigma_study^2). For a size bin of proteins the study's
    ± is the spread sd of beta over its proteins, so ours agrees when our mean over n proteins
    lies within 2 sd / sqrt(n) of the study's mean (our proteins a sample of the study's
    population, whose mean over thousands of entries is exact by comparison)."""
    if not row.get("n_seeds"):
        return None, None
    verdict = None
    if study.get("study_power_law") in ("yes", "no"):
        verdict = (row["power_law_fraction"] >= 0.5) == (study["study_power_law"] == "yes")
    within = None
    if study.get("study_beta") is not None and study.get("study_beta_sigma") is not None:
        if _is_size_bin(study):
            bound = 2 * study["study_beta_sigma"] / math.sqrt(row["n_seeds"])
        else:
            bound = 2 * math.hypot(beta_uncertainty(row), study["study_beta_sigma"])
        within = abs(row["beta_mean"] - study["study_beta"]) <= bound
    return _yes_no(verdict), _yes_no(within)


def _is_size_bin(study: dict) -> bool:
    """Whether a study row is a size bin of proteins (its ± a spread over entries, not a σ)."""
    return study.get("fit") == "protein" and SIZE_BIN.match(study.get("subset") or "") is not None


def beta_uncertainty(row: dict) -> float:
    """Our β's σ on a row: the fit's (beta-1)/sqrt(K) combined with the spread over its n
    seeds, sqrt(sigma^2 + sd^2 / n) (the fit's alone for one seed)."""
    return math.hypot(row["beta_sigma"], row["beta_sd"] / math.sqrt(row["n_seeds"]))


def rows(
    study: list[dict],
    records: Iterable[dict],
    only_run: bool = False,
    proteins: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """The reproduction table: every study row beside ours.

    Parameters
    ----------
    study : list of dict
        The study's rows (`study_rows`).
    records : iterable of dict
        Network records of the reproduction experiments (run EXPERIMENT_sSEED).
    only_run : bool, default False
        Keep only the rows with records.
    proteins : dict of str to list of dict, optional
        {experiment: rows of its protein table}.

    Returns
    -------
    list of dict
        The study's columns, ours, and whether the verdicts and betas agree.
    """
    grouped = by_experiment(records)
    proteins = proteins or {}
    table = []
    for entry in study:
        if entry["fit"] == "protein":
            found = protein_members(proteins.get(entry.get("experiment") or "", []), entry.get("subset"))
        else:
            found = grouped.get(entry.get("experiment") or "", [])
        if only_run and not found:
            continue
        row = {key: entry.get(key) for key in COLUMNS if key in entry}
        ours_row = ours(found, entry["fit"]) if found else {"n_seeds": 0}
        notes = [entry.get("note"), ours_row.pop("note", None)]
        if not entry.get("experiment"):
            notes = [entry.get("note") or "not runnable here"]
        elif not found:
            notes.insert(0, "not run yet")
        row.update(ours_row)
        row["verdict_agrees"], row["beta_within_2sigma"] = agreement(entry, row)
        row["note"] = "; ".join(n for n in notes if n) or None
        table.append(row)
    return table


def summary(table: list[dict]) -> dict:
    """Agreement counts of a reproduction table.

    Parameters
    ----------
    table : list of dict
        Rows of `rows`.

    Returns
    -------
    dict
        rows, run, verdicts (compared), verdicts agreeing, betas (compared), betas within 2 sigma.
    """
    run = [r for r in table if r.get("n_seeds")]
    verdicts = [r for r in run if r.get("verdict_agrees")]
    betas = [r for r in run if r.get("beta_within_2sigma")]
    return {
        "rows": len(table),
        "run": len(run),
        "verdicts": len(verdicts),
        "verdicts_agree": sum(r["verdict_agrees"] == "yes" for r in verdicts),
        "betas": len(betas),
        "betas_within": sum(r["beta_within_2sigma"] == "yes" for r in betas),
    }


def summary_by_source(table: list[dict]) -> list[dict]:
    """The agreement counts of `summary` for each source (table or figure) of the study.

    Parameters
    ----------
    table : list of dict
        Rows of `rows`.

    Returns
    -------
    list of dict
        One per source, in the order the sources first appear: source and the keys of `summary`.
    """
    groups: dict[str, list[dict]] = {}
    for row in table:
        groups.setdefault(row.get("source") or "", []).append(row)
    return [{"source": source, **summary(group)} for source, group in groups.items()]


def _by_source_lines(table: list[dict]) -> list[str]:
    lines = [
        "| source | rows | run | verdicts agree | beta within 2σ |",
        "|---|---:|---:|---:|---:|",
    ]
    for count in summary_by_source(table):
        verdicts = f"{count['verdicts_agree']} of {count['verdicts']}" if count["verdicts"] else ""
        betas = f"{count['betas_within']} of {count['betas']}" if count["betas"] else ""
        lines.append(f"| {count['source']} | {count['rows']} | {count['run']} | {verdicts} | {betas} |")
    return lines


def _fmt(value, digits=3):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(table: list[dict]) -> str:
    """The reproduction table as Markdown, with the agreement counts on top.

    Parameters
    ----------
    table : list of dict
        Rows of `rows`.

    Returns
    -------
    str
        The markdown text.
    """
    count = summary(table)
    lines = [
        f"{count['run']} of {count['rows']} rows run; verdicts agree in {count['verdicts_agree']} of "
        f"{count['verdicts']} compared; beta within 2 combined sigma in {count['betas_within']} of "
        f"{count['betas']} compared.",
        "",
        "By source (the rows not run yet are counted in rows, not in run):",
        "",
        *_by_source_lines(table),
        "",
        "n: seeds of a network row, proteins of a protein row; d_ks, d_c, s: means over them. beta:"
        " the mean ± its σ (the fit's, combined with the spread over seeds), or for a size bin of"
        " proteins ± the spread over its entries, as the study's.",
        "",
        "| source | setting | K | study d_ks | study d_c | study power law | study beta | n | d_ks | d_c "
        "| power law (of n) | beta | s | verdict agrees | beta within 2σ | note |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---|---:|---|---|---|",
    ]
    for r in table:
        study_beta = (
            f"{_fmt(r.get('study_beta'))} ± {_fmt(r.get('study_beta_sigma'))}" if r.get("study_beta") else ""
        )
        beta = ""
        if r.get("n_seeds"):
            spread = r["beta_sd"] if _is_size_bin(r) else beta_uncertainty(r)
            beta = f"{_fmt(r.get('beta_mean'))} ± {_fmt(spread)}"
        fraction = f"{r['power_law_fraction']:.0%}" if r.get("n_seeds") else ""
        cells = [
            r.get("source"),
            r.get("setting") + (" (gaps)" if r.get("fit") == "gaps" else ""),
            _fmt(r.get("k")),
            _fmt(r.get("study_d_ks"), 4),
            _fmt(r.get("study_d_c"), 4),
            r.get("study_power_law") or "",
            study_beta,
            _fmt(r.get("n_seeds")),
            _fmt(r.get("d_ks"), 4),
            _fmt(r.get("d_c"), 4),
            fraction,
            beta,
            _fmt(r.get("s")),
            r.get("verdict_agrees") or "",
            r.get("beta_within_2sigma") or "",
            r.get("note") or "",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
