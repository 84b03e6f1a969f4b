import math

import pytest
from synthetic import network_record, pareto

from hessian_powerlaw.io import read_tsv, write_tsv
from hessian_powerlaw.report import tables


def _protein(pdb_id, n_residues, s, ok=True):
    beta = 1 + 1 / s
    return {
        "pdb_id": pdb_id,
        "n_residues": n_residues,
        "status": "ok" if ok else "failed",
        "beta": beta,
        "s": s,
        "d_ks": 0.01,
        "d_c": 0.04,
        "power_law": True,
        "k": 0.1,
    }


def test_size_bins_count_only_fitted_entries_per_3n_bin():
    records = [_protein("1AAA", 150, 1.0), _protein("2BBB", 200, 1.2), _protein("3CCC", 500, 0.9)]
    records.append(_protein("4DDD", 150, 5.0, ok=False))
    rows = {r["bin_3n"]: r for r in tables.size_bin_rows(records)}
    assert rows["300-1000"]["count"] == 2 and rows["1000-3000"]["count"] == 1
    assert rows["300-1000"]["s_mean"] == pytest.approx(1.1)
    assert rows["300-1000"]["s_std"] == pytest.approx(math.sqrt(0.02))  # sample std
    assert rows["all"]["count"] == 3 and rows["all"]["skipped"] == 1
    assert rows["3000-6000"]["count"] == 0 and rows["3000-6000"]["beta_mean"] is None
    text = tables.size_bins_markdown(tables.size_bin_rows(records), "10%")
    assert "| 300-1000 | 2 |" in text and "1.050 ± 0.175" in text  # the study's column


def test_tsv_round_trip(tmp_path):
    rows = [{"pdb_id": "1E10", "n": 3, "x": 0.25, "ok": True, "reason": "a\tb"}, {"pdb_id": "2E50"}]
    write_tsv(tmp_path / "t.tsv", rows, ("pdb_id", "n", "x", "ok", "reason"))
    back = read_tsv(tmp_path / "t.tsv")
    assert back[0] == {"pdb_id": "1E10", "n": 3, "x": 0.25, "ok": True, "reason": "a b"}
    assert back[1] == {"pdb_id": "2E50", "n": None, "x": None, "ok": None, "reason": None}


def test_comparison_puts_both_sides_in_one_table():
    proteins = [_protein("1AAA", 150, 1.0), _protein("2BBB", 400, 1.1)]
    trained = network_record("net_e50", pareto(900, 2.0)[:300], 300)
    init = network_record("net_e0", pareto(900, 3.0)[:300], 300, epochs=0)
    rows = tables.comparison_rows(tables.size_bin_rows(proteins), [trained, init])
    sides = [(r["side"], r["name"]) for r in rows]
    assert ("network", "net_e50") in sides and ("protein", "3N all") in sides
    summaries = tables.side_summaries(proteins, [trained, init])
    text = tables.comparison_markdown(rows, summaries)
    assert "Trained networks: mean s" in text and "over 1" in text  # the initialisation is not a trained net
    assert "<table>" in tables.comparison_html(text)
