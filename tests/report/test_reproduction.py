"""The reproduction table: the study's rows beside fixture records with known exponents."""

import json
import subprocess

import numpy as np
import pytest

from hessian_powerlaw.fit import gap_fit, power_law_fit
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.records import GAP_FIT_KEYS
from hessian_powerlaw.report import reproduction

CONTRACT = (
    "source",
    "setting",
    "study_d_ks",
    "study_d_c",
    "study_power_law",
    "study_beta",
    "study_beta_sigma",
    "n_seeds",
    "d_ks",
    "power_law_fraction",
    "beta_mean",
    "beta_sd",
    "verdict_agrees",
    "beta_within_2sigma",
)


def record(run, values, k=1000, status="ok", epochs=50):
    """A dnn-spectrum-like record of a descending spectrum."""
    rec = {"run": run, "status": status, "epochs": epochs, "test_acc": 0.97, "lambda_max": float(values[0])}
    rec["trace"] = float(np.sum(values)) * 3
    if status == "ok":
        rec.update(power_law_fit(values, k, compare=False))
        gap = gap_fit(values[:k])
        rec.update({f"gap_{key}": gap[key] for key in GAP_FIT_KEYS})
    else:
        rec["reason"] = "did not converge"
    return rec


def power_law_spectrum(s, k=1000, seed=0):
    """lambda_k = k^-s with 1 % multiplicative noise, descending."""
    noise = 1 + 0.01 * np.random.default_rng(seed).standard_normal(k)
    return np.sort(np.arange(1, k + 1) ** -s * noise)[::-1]


@pytest.fixture
def records():
    out = [record(f"t1-lenet-mnist_s{seed}", power_law_spectrum(1 / 0.991, seed=seed)) for seed in range(3)]
    flat = np.sort(np.random.default_rng(5).exponential(1.0, 1000))[::-1]  # no power law
    out += [record(f"t1-lenet-mnist-init_s{seed}", flat) for seed in range(2)]
    out.append(record("t1-lenet-mnist-init_s2", flat, status="not_converged"))
    out.append(record("t6-n600_s0", power_law_spectrum(1.0)))  # the study says no power law here
    out.append(record("t6-n6000_s0", power_law_spectrum(1.0)))
    return out


def test_rows_against_the_study(records):
    table = {r["id"]: r for r in reproduction.rows(reproduction.study_rows(), records)}
    t1 = table["t1-lenet-mnist"]
    assert t1["n_seeds"] == 3 and t1["power_law_fraction"] == 1.0
    assert t1["verdict_agrees"] == "yes" and t1["beta_within_2sigma"] == "yes"
    assert t1["beta_mean"] == pytest.approx(1.991, abs=0.05) and t1["beta_sd"] > 0
    init = table["t1-lenet-mnist-init"]
    assert init["n_seeds"] == 2 and init["power_law_fraction"] == 0.0 and init["verdict_agrees"] == "yes"
    assert init["beta_within_2sigma"] is None  # the study gives no beta for it
    assert "t1-lenet-mnist-init_s2: not_converged" in init["note"]
    gaps = table["t2-gaps-mnist"]  # the same records' eigengap fits: 1 + 1/(s+1) = 1.50
    assert gaps["n_seeds"] == 3 and gaps["beta_mean"] == pytest.approx(1.5, abs=0.05)
    assert gaps["k"] == 499 and gaps["verdict_agrees"] == "yes"
    assert table["t6-n600"]["verdict_agrees"] == "no"
    assert table["t3-b512"]["n_seeds"] == 0 and table["t3-b512"]["note"].startswith("not run yet")
    assert table["t3-b512"]["verdict_agrees"] is None
    assert "GPU" in table["t7-cifar100-on-cifar10"]["note"]
    count = reproduction.summary(list(table.values()))
    assert (count["run"], count["verdicts"], count["verdicts_agree"], count["betas"]) == (5, 5, 4, 3)
    by_source = {c["source"]: c for c in reproduction.summary_by_source(list(table.values()))}
    assert sum(c["rows"] for c in by_source.values()) == count["rows"]
    assert (by_source["Table 6"]["run"], by_source["Table 6"]["verdicts_agree"]) == (2, 1)
    assert by_source["Tables 1, 3, 6"]["betas_within"] == 1 and by_source["Table 8"]["run"] == 0
    text = reproduction.markdown(list(table.values()))
    assert "| Table 6 | " in text and "| 1 of 2 |" in text


def test_beta_outside_two_sigma_is_said(records):
    steep = [record(f"t1-lenet-mnist_s{seed}", power_law_spectrum(0.7, seed=seed)) for seed in range(3)]
    (row,) = [r for r in reproduction.rows(reproduction.study_rows(), steep) if r["id"] == "t1-lenet-mnist"]
    assert row["beta_mean"] > 2.3 and row["beta_within_2sigma"] == "no" and row["verdict_agrees"] == "yes"


def test_bad_run_names_and_study_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="EXPERIMENT_sSEED"):
        reproduction.by_experiment([{"run": "lenet"}])
    bad = tmp_path / "study.tsv"
    bad.write_text("id\tsource\tsetting\texperiment\tfit\nx\tTable 1\ts\tx\tslopes\n")
    with pytest.raises(ValueError, match="fit must be eigenvalues or gaps"):
        reproduction.study_rows(bad)


def test_command_writes_the_contract_columns(tmp_path, records):
    paths = []
    for rec in records:
        path = tmp_path / f"{rec['run']}.json"
        path.write_text(json.dumps(rec))
        paths.append(str(path))
    out = tmp_path / "reproduction.tsv"
    argv = [
        "hessian-powerlaw",
        "reproduction",
        *paths,
        "--out",
        str(out),
        "--markdown",
        str(tmp_path / "r.md"),
    ]
    proc = subprocess.run([*argv, "--figure", str(tmp_path / "slope.png")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header = out.read_text().splitlines()[0].split("\t")
    assert set(CONTRACT) <= set(header)
    rows = read_tsv(out)
    assert len(rows) == len(reproduction.study_rows())
    assert {r["verdict_agrees"] for r in rows} <= {"yes", "no", None}
    assert "verdicts agree in" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "slope.png").stat().st_size > 10_000 and (tmp_path / "slope.pdf").is_file()
    part = tmp_path / "part.tsv"
    subprocess.run([*argv[:-4], "--only-run", "--out", str(part)], check=True, capture_output=True)
    ran = {"t1-lenet-mnist", "t1-lenet-mnist-init", "t2-gaps-mnist", "t6-n6000", "t6-n600"}
    assert {r["id"] for r in read_tsv(part)} == ran


def test_protein_rows_read_entries_and_size_bins():
    def entry(pdb_id, n_residues, beta, passes=True):
        return {
            "pdb_id": pdb_id,
            "n_residues": n_residues,
            "status": "ok",
            "k": 100,
            "beta": beta,
            "beta_sigma": (beta - 1) / 10,
            "s": 1 / (beta - 1),
            "d_ks": 0.01,
            "d_c": 0.136,
            "power_law": passes,
        }

    t11 = [entry("4HHB", 574, 2.008)]
    bins = [entry("1AKI", 129, 2.0), entry("3PTB", 223, 1.9), entry("7TAA", 476, 2.1, passes=False)]
    bins.append({"pdb_id": "3TAH", "n_residues": 500, "status": "skipped", "reason": "12 zero modes"})
    proteins = {"t11-4hhb": t11, "bins-bundled": bins}
    table = {r["id"]: r for r in reproduction.rows(reproduction.study_rows(), [], proteins=proteins)}
    assert table["t11-4hhb"]["n_seeds"] == 1 and table["t11-4hhb"]["beta_within_2sigma"] == "yes"
    low = table["t12-bin-300-1000"]  # 3N 387, 669: 1AKI and 3PTB
    assert low["n_seeds"] == 2 and low["beta_mean"] == pytest.approx(1.95)
    assert (
        low["verdict_agrees"] == "yes" and low["beta_within_2sigma"] == "yes"
    )  # |1.95 - 1.976| < 2 * 0.143 / sqrt 2
    mid = table["t12-bin-1000-3000"]  # 7TAA alone, not a power law; 3TAH skipped
    assert mid["n_seeds"] == 1 and mid["verdict_agrees"] == "no" and "3TAH: skipped" in mid["note"]
    assert table["t12-bin-3000-6000"]["n_seeds"] == 0
    assert table["t12-bin-all"]["n_seeds"] == 3 and table["t12-bin-all"][
        "power_law_fraction"
    ] == pytest.approx(2 / 3)


def test_a_size_bin_agrees_by_the_standard_error_of_our_mean_not_by_the_study_spread():
    """Four entries at beta 2.15 against the bin's 1.976 ± 0.143 (a spread over the study's
    entries): 0.174 off is more than 2 * 0.143 / sqrt(4), although well within the spread."""
    sample = [
        {"pdb_id": f"X{i}", "n_residues": 200, "status": "ok", "k": 100, "beta": 2.15, "beta_sigma": 0.115}
        | {"s": 1 / 1.15, "d_ks": 0.01, "d_c": 0.136, "power_law": True}
        for i in range(4)
    ]
    table = {
        r["id"]: r
        for r in reproduction.rows(reproduction.study_rows(), [], proteins={"bins-bundled": sample})
    }
    assert table["t12-bin-300-1000"]["beta_within_2sigma"] == "no"
    assert table["t12-bin-300-1000"]["verdict_agrees"] == "yes"


def test_markdown_gives_each_beta_its_sigma(records):
    one = [record("t6-n6000_s0", power_law_spectrum(1.0))]
    text = reproduction.markdown(reproduction.rows(reproduction.study_rows(), one, only_run=True))
    (line,) = [line for line in text.splitlines() if line.startswith("| Table 6") and "N=6000" in line]
    sigma = one[0]["beta_sigma"]  # one seed: the fit's sigma, not a spread of 0
    assert f"{one[0]['beta']:.3f} ± {sigma:.3f}" in line and sigma > 0.02
