import json

import numpy as np
import pytest

from hessian_powerlaw import cli
from hessian_powerlaw.fit import power_law_fit
from hessian_powerlaw.io import save_npy
from hessian_powerlaw.report import fidelity


def pareto(beta, n, seed):
    rng = np.random.default_rng(seed)
    return np.sort((1 - rng.random(n)) ** (-1 / (beta - 1)))[::-1]


def record(variant, **extra):
    return {
        "run": "lenet_x",
        "variant": variant,
        "solver": "lanczos",
        "n_eval": 1000,
        "weight_decay_term": False,
        "epochs": 50,
        "hvp_count": 3000,
        **extra,
    }


def test_rows_fit_each_k_and_the_ks_window():
    values = pareto(2.0, 1500, 1)
    table = fidelity.rows([("exact", record("exact"), values)], [100, 300, 1000, 5000])
    assert [(r["k"], r["window"]) for r in table][:3] == [
        (100, "xmin = K-th value"),
        (300, "xmin = K-th value"),
        (1000, "xmin = K-th value"),
    ]
    assert table[-1]["window"] == "xmin by KS" and 50 <= table[-1]["k"] <= 1000
    assert len(table) == 4  # K = 5000 is more than the spectrum holds
    assert table[2]["beta"] == pytest.approx(power_law_fit(values, 1000)["beta"])
    expected = (table[2]["beta"] - 2.001) / np.hypot(table[2]["beta_sigma"], 0.032)
    assert table[2]["vs_study_sigma"] == pytest.approx(expected)
    assert all(r["variant"] == "exact" and r["run"] == "lenet_x" for r in table)


def test_unfittable_spectrum_is_reported_not_raised():
    values = np.concatenate([np.linspace(1, 0.5, 50), -np.ones(60)])
    table = fidelity.rows([("power", record("power", solver="power"), values)], [100])
    assert table[0]["beta"] is None and "positive values" in table[0]["reason"]
    assert "no fit: K=100" in fidelity.markdown(table)


def test_cli_fidelity_joins_variants(tmp_path):
    paths = []
    for variant, beta in (("spectrum", 2.0), ("slq-m1000", 1.7)):
        stem = tmp_path / variant
        stem.with_suffix(".json").write_text(json.dumps(record(variant)))
        save_npy(stem.with_suffix(".npy"), np.stack([pareto(beta, 1200, 2), np.zeros(1200)]))
        paths.append(str(stem.with_suffix(".json")))
    out = tmp_path / "f.tsv"
    argv = ["fidelity", *paths, "--k", "100", "1000", "--out", str(out), "--markdown", str(tmp_path / "f.md")]
    assert cli.main([*argv, "--figure", str(tmp_path / "plots" / "fidelity.png")]) == 0
    text = (tmp_path / "f.md").read_text()
    assert "slq-m1000" in text and "xmin by KS" in text and "2.001 ± 0.032" in text
    assert (tmp_path / "plots" / "fidelity.pdf").stat().st_size > 1000
