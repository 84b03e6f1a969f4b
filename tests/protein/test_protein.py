import gzip
from pathlib import Path

import numpy as np
import prody
import pytest

from conftest import BUNDLED, EDGE, bundled_files, pdb_text
from hessian_powerlaw.protein.analysis import analyse
from hessian_powerlaw.protein.cache import analyse_cached
from hessian_powerlaw.protein.entries import read_entries
from hessian_powerlaw.protein.structure import StructureError, read_calpha
from hessian_powerlaw.report.records import protein_items

prody.confProDy(verbosity="none")


def test_4hhb_k1000_reproduces_study_table_11():
    record, sigma = analyse(BUNDLED / "4hhb.pdb.gz", {"k": 1000})
    assert record["status"] == "ok"
    assert record["n_residues"] == 574 and record["n_zero_modes"] == 6 and record["n_modes"] == 1716
    assert round(record["beta"], 3) == 2.008
    assert round(record["beta_sigma"], 3) == 0.032
    assert round(record["s"], 3) == 0.992
    assert round(record["d_ks"], 4) == 0.0145
    assert round(record["d_c"], 4) == 0.0430
    assert record["power_law"] is True
    assert len(sigma) == 1716 and np.all(np.diff(sigma) <= 0)


@pytest.mark.parametrize("path", bundled_files(), ids=lambda p: p.name.split(".")[0])
def test_bundled_entries_match_manifest_reference_fits(path, bundled_manifest):
    """MANIFEST.tsv holds fits made independently with ProDy ('name CA and protein', altloc A)
    and powerlaw, K = 10%. Two documented differences: we keep the highest-occupancy altloc
    (ProDy keeps A), and 1A4W's sulfotyrosine TYS and D-arginine DAR (modified or D amino acids,
    which we keep)."""
    record, _ = analyse(path, {"compare": False})
    ref = bundled_manifest[record["pdb_id"]]
    if record["pdb_id"] == "1A4W":
        assert record["n_residues"] == int(ref["n_ca"]) + 2  # + TYS I 363, DAR H 350
        return
    assert record["n_residues"] == int(ref["n_ca"])
    assert record["n_modes"] == int(ref["n_modes"])
    assert record["k"] == int(ref["k_10pct"])
    tol = 1e-3 if ref["has_altloc"] == "yes" else 1e-4
    assert record["beta"] == pytest.approx(float(ref["beta"]), abs=tol)
    assert record["d_ks"] == pytest.approx(float(ref["d_ks"]), abs=tol)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _lines(name, keep):
    return "".join(line + "\n" for line in pdb_text(name).splitlines() if keep(line)) + "END\n"


def bad_inputs(tmp_path):
    """(file, expected status, expected reason fragment) for the bad-input matrix."""
    raw = gzip.compress(pdb_text("1aki").encode())
    nan_text = "".join(
        (line[:30] + "     nan" + line[38:] + "\n")
        if line.startswith("ATOM") and " CA " in line[12:16] and line[22:26].strip() == "5"
        else line + "\n"
        for line in pdb_text("1aki").splitlines()
    )
    return [
        (_write(tmp_path, "empty.pdb", b""), "failed", "empty file"),
        (_write(tmp_path, "garbage.pdb", bytes(range(256)) * 20), "failed", "binary data"),
        (_write(tmp_path, "trunc.pdb", pdb_text("1aki")[:40000]), "failed", "truncated PDB"),
        (_write(tmp_path, "trunc.pdb.gz", raw[: len(raw) // 2]), "failed", "corrupt gzip"),
        (_write(tmp_path, "notgz.pdb.gz", b"\x1f\x8b" + b"garbage" * 50), "failed", "corrupt gzip"),
        (
            _write(tmp_path, "dna.pdb", _lines("5ugo", lambda s: s[:4] == "ATOM" and s[21] in "DPT")),
            "failed",
            "nucleic-acid only",
        ),
        (
            _write(tmp_path, "ligand.pdb", _lines("4hhb", lambda s: s.startswith("HETATM"))),
            "failed",
            "no protein C-alpha",
        ),
        (_write(tmp_path, "nan.pdb", nan_text), "failed", "NaN"),
        (_write(tmp_path, "html.cif", "<html><body>502 Bad Gateway</body></html>\n"), "failed", ""),
        (_write(tmp_path, "broken.cif", (EDGE / "4i39.cif").read_text()[:30000]), "failed", ""),
        (EDGE / "1a8o.pdb.gz", "skipped", "fewer than the minimum 100"),
        (EDGE / "3tah.pdb.gz", "skipped", "disconnected network: 12 zero modes"),
        (EDGE / "6r79.pdb.gz", "skipped", "disconnected network: 8 zero modes"),
        (tmp_path / "missing.pdb", "failed", "file not found"),
        (tmp_path, "failed", "a directory, not a structure file"),
    ]


def test_bad_inputs_give_reasons_and_never_raise(tmp_path):
    for path, status, fragment in bad_inputs(tmp_path):
        record, sigma = analyse(path, {"compare": False})
        assert record["status"] == status, (path.name, record["reason"])
        assert fragment in record["reason"], (path.name, record["reason"])
        assert "\n" not in record["reason"]
        assert sigma is None


def _drop_cif_column(text, column):
    """mmCIF text without one _atom_site column (header line and the field in every row)."""
    lines = text.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("_atom_site.")]
    drop = [lines[i].strip() for i in header].index(column)
    out = []
    for i, line in enumerate(lines):
        if i == header[drop]:
            continue
        if line.startswith(("ATOM", "HETATM")):
            fields = line.split()
            line = " ".join(fields[:drop] + fields[drop + 1 :])
        out.append(line)
    return "\n".join(out) + "\n"


def test_more_bad_inputs(tmp_path):
    text = pdb_text("1aki")
    inf = text.replace(text[text.index("ATOM      2  CA ") :][30:38], "     inf", 1)
    lines = text.splitlines()
    first_ca = next(i for i, line in enumerate(lines) if line.startswith("ATOM") and line[12:16] == " CA ")
    duplicated = "\n".join(lines[: first_ca + 1] + lines[first_ca : first_ca + 1] + lines[first_ca + 1 :])
    single = "".join(line + "\n" for line in lines if line.startswith("ATOM") and line[22:26] == "   1")
    cif = _drop_cif_column((EDGE / "4i39.cif").read_text(), "_atom_site.Cartn_z")
    cases = [
        (_write(tmp_path, "inf.pdb", inf), {}, "failed", "NaN or infinite"),
        (
            _write(tmp_path, "single.pdb", single + "END\n"),
            {},
            "skipped",
            "1 residues, fewer than the minimum",
        ),
        (tmp_path / "single.pdb", {"min_residues": 1}, "failed", "only 3 zero modes"),
        (_write(tmp_path, "nocol.cif", cif), {}, "failed", "missing column _atom_site.Cartn_z"),
        (_write(tmp_path, "dup.pdb", duplicated), {}, "ok", "1 duplicated atom records ignored"),
    ]
    for path, cfg, status, fragment in cases:
        record, _ = analyse(path, {"compare": False, **cfg})
        assert record["status"] == status and fragment in record["reason"], (path.name, record["reason"])
    record, _ = analyse(tmp_path / "dup.pdb", {"compare": False})
    reference, _ = analyse(BUNDLED / "1aki.pdb.gz", {"compare": False})
    assert record["beta"] == reference["beta"]


def test_more_than_max_residues_is_skipped():
    record, _ = analyse(BUNDLED / "4f7i.pdb.gz", {"max_residues": 1000})
    assert record["status"] == "skipped" and "more than the maximum 1000" in record["reason"]


def test_disconnected_flag_policy_fits_nonzero_modes():
    record, sigma = analyse(EDGE / "3tah.pdb.gz", {"disconnected": "flag", "compare": False})
    assert record["status"] == "ok" and record["n_zero_modes"] == 12
    assert "disconnected" in record["reason"]
    assert record["n_modes"] == 3 * 524 - 12 and np.all(np.isfinite(sigma))


def test_soft_seventh_mode_of_1brs_is_kept():
    """1BRS has a genuine soft mode at ~1.4e-9 of the largest eigenvalue: not a zero mode."""
    record, _ = analyse(BUNDLED / "1brs.pdb.gz", {"compare": False})
    assert record["status"] == "ok" and record["n_zero_modes"] == 6


def test_nmr_uses_first_model():
    info = read_calpha(EDGE / "1gya.pdb.gz")
    first = prody.parsePDB(str(EDGE / "1gya.pdb.gz"), model=1).select("name CA and protein")
    assert info["n_models"] == 18
    np.testing.assert_allclose(info["coords"], first.getCoords(), atol=1e-3)
    record, _ = analyse(EDGE / "1gya.pdb.gz")
    assert "18 models in the file; the first one written is used" in record["reason"]


def test_contents_decide_the_format_when_the_suffix_is_wrong(tmp_path):
    """PDB text in a .cif file (and mmCIF text in a .pdb file) is read by its content."""
    pdb = tmp_path / "1aki.cif"
    pdb.write_text(pdb_text("1aki"))
    mmcif = tmp_path / "4i39.pdb"
    mmcif.write_text((EDGE / "4i39.cif").read_text())
    assert read_calpha(pdb)["n_residues"] == read_calpha(BUNDLED / "1aki.pdb.gz")["n_residues"]
    assert read_calpha(mmcif)["n_residues"] == read_calpha(EDGE / "4i39.cif")["n_residues"]


def test_mse_residues_are_kept():
    info = read_calpha(EDGE / "1a8o.pdb.gz")
    n_mse = sum(
        1
        for s in pdb_text("1a8o").splitlines()
        if s.startswith("HETATM") and s[17:20] == "MSE" and s[12:16] == " CA "
    )
    assert n_mse == 4 and info["n_residues"] == 70


def test_altloc_keeps_highest_occupancy(tmp_path):
    """Rewrite one altloc pair so that B has the higher occupancy: B must be chosen."""
    lines = pdb_text("2pvb").splitlines()
    idx = [i for i, s in enumerate(lines) if s.startswith("ATOM") and s[12:16] == " CA " and s[16] in "AB"]
    a, b = idx[0], idx[1]
    assert lines[a][16] == "A" and lines[b][16] == "B"
    lines[a] = lines[a][:54] + "  0.30" + lines[a][60:]
    lines[b] = lines[b][:54] + "  0.70" + lines[b][60:]
    path = _write(tmp_path, "alt.pdb", "\n".join(lines) + "\n")
    info = read_calpha(path)
    residue = int(lines[b][22:26])
    first = int(next(s for s in lines if s.startswith("ATOM"))[22:26])
    chosen = info["coords"][residue - first]
    expected = [float(lines[b][30:38]), float(lines[b][38:46]), float(lines[b][46:54])]
    np.testing.assert_allclose(chosen, expected, atol=1e-3)
    assert info["n_residues"] == 107


def test_mmcif_altloc_rows_give_one_calpha_per_residue():
    info = read_calpha(EDGE / "4i39.cif")
    assert info["n_residues"] == 125 and info["resolution"] == 1.6


def test_reads_chain_breaks_and_metadata():
    info = read_calpha(BUNDLED / "4hhb.pdb.gz")
    assert info["pdb_id"] == "4HHB" and info["n_chains"] == 4 and info["chain_breaks"] == 0
    assert info["method"] == "X-RAY DIFFRACTION" and info["resolution"] == 1.74


def test_structure_error_is_one_line():
    with pytest.raises(StructureError, match="not found"):
        read_calpha(Path("/nonexistent/x.pdb"))


def test_records_are_reused_on_resume(tmp_path):
    path = BUNDLED / "1aki.pdb.gz"
    first = analyse_cached(path, tmp_path, {"compare": False})
    record_file = tmp_path / "1AKI.json"
    stamp = record_file.stat().st_mtime_ns
    again = analyse_cached(path, tmp_path, {"compare": False})
    assert again == first and record_file.stat().st_mtime_ns == stamp
    changed = analyse_cached(path, tmp_path, {"compare": False, "cutoff": 10.0})
    assert changed["beta"] != first["beta"]
    assert (tmp_path / "1AKI.npy").exists()
    assert record_file.stat().st_mode & 0o044  # readable by others as with a plain open(), not 0600
    assert not list(tmp_path.glob(".*.tmp"))


def _edit_cif_column(text, column, edit):
    """mmCIF text with edit(field) applied to one _atom_site column in every atom row."""
    lines = text.splitlines()
    header = [line.strip() for line in lines if line.startswith("_atom_site.")]
    at = header.index(column)
    out = []
    for line in lines:
        if line.startswith(("ATOM", "HETATM")):
            fields = line.split()
            fields[at] = edit(fields[at])
            line = " ".join(fields)
        out.append(line)
    return "\n".join(out) + "\n"


def _pdb_with(name, edit):
    """A bundled entry's PDB text with edit(line) applied to every ATOM/HETATM line."""
    lines = pdb_text(name).splitlines()
    return "".join((edit(x) if x.startswith(("ATOM", "HETATM")) else x) + "\n" for x in lines)


def test_structures_that_used_to_crash_a_batch_get_reasons(tmp_path, monkeypatch):
    """Coincident C-alpha atoms, duplicate chain IDs, unreadable files and gzip bombs: a failed
    row with a reason each, and the other files of the same command still analysed."""
    from hessian_powerlaw import cli

    text = pdb_text("1aki")
    second = next(
        x for x in text.splitlines() if x.startswith("ATOM") and x[12:16] == " CA " and x[22:26] == "   2"
    )
    first = next(x for x in text.splitlines() if x.startswith("ATOM") and x[12:16] == " CA ")
    same = text.replace(second, second[:30] + first[30:54] + second[54:], 1)
    duplicate_chain = _pdb_with("4hhb", lambda x: x[:21] + "A" + x[22:] if x[21] == "C" else x)
    bomb = gzip.compress(b"HEADER" + b" " * (300 * 2**20))
    files = {
        "same.pdb": (same, "C-alpha atoms at the same position, e.g. A:1 and A:2"),
        "bomb.pdb.gz": (bomb, "decompresses to more than 256 MiB (a gzip bomb?)"),
        "locked.pdb": (text, "cannot read the file (Permission denied)"),
    }
    paths = [_write(tmp_path, name, content) for name, (content, _) in files.items()]
    paths.append(_write(tmp_path, "dupchain.pdb", duplicate_chain))
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.pdb":  # as chmod 000 would (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    table = tmp_path / "t.tsv"
    assert (
        cli.main(
            # --jobs 1: in this process, where the patched read_bytes applies
            ["protein", *map(str, paths), str(BUNDLED / "1aki.pdb.gz"), "--no-compare", "--jobs", "1"]
            + ["--out", str(table)]
        )
        == 0
    )
    from hessian_powerlaw.io import read_tsv

    rows = {Path(r["file"]).name: r for r in read_tsv(table)}
    for name, (_, reason) in files.items():
        assert rows[name]["status"] == "failed" and reason in rows[name]["reason"], rows[name]["reason"]
    assert rows["1aki.pdb.gz"]["status"] == "ok"
    shared = rows["dupchain.pdb"]  # 4HHB with chain C relabelled A: all 574 residues, noted
    assert shared["status"] == "ok" and shared["n_residues"] == 574
    assert "1 chain(s) written with another chain's ID, kept apart" in shared["reason"]


def test_coordinates_far_from_the_origin_keep_float64_precision(tmp_path):
    """The same mmCIF translated by 1e6 and 1e8 Angstrom gives the same fit: coordinates stay
    float64 from the file (float32 rounds them to 0.06 A at 1e6 and merges atoms at 1e8)."""
    text = (EDGE / "4i39.cif").read_text()
    reference, _ = analyse(EDGE / "4i39.cif", {"compare": False})
    assert reference["status"] == "ok"
    for shift in (1e6, 1e8):
        moved = text
        for axis in "xyz":
            moved = _edit_cif_column(
                moved, f"_atom_site.Cartn_{axis}", lambda v, s=shift: f"{float(v) + s:.3f}"
            )
        record, _ = analyse(_write(tmp_path, f"moved{shift:.0e}.cif", moved), {"compare": False})
        assert record["status"] == "ok", record["reason"]
        assert record["beta"] == pytest.approx(reference["beta"], rel=1e-7)


def test_entry_ids_that_are_not_file_names_are_refused(tmp_path):
    """Ids from an entries list name record files: traversal, empty and overlong ids give
    failed rows and write nothing outside (or inside) the records folder."""
    from hessian_powerlaw import cli

    good = BUNDLED / "1aki.pdb.gz"
    bad = ["../../etc/passwd", "", "x" * 300, "a/b"]
    entries = tmp_path / "entries.tsv"
    entries.write_text("pdb_id\tpath\n" + "".join(f"{i}\t{good}\n" for i in [*bad, "1AKI"]))
    records = tmp_path / "deep" / "records"
    table = tmp_path / "t.tsv"
    argv = [
        "protein",
        "--entries",
        str(entries),
        "--records",
        str(records),
        "--no-compare",
        "--out",
        str(table),
    ]
    assert cli.main(argv) == 0
    from hessian_powerlaw.io import read_tsv

    rows = read_tsv(table)
    assert [r["status"] for r in rows] == ["failed"] * 4 + ["ok"]
    assert all("invalid entry id" in r["reason"] for r in rows[:4])
    assert sorted(p.name for p in records.iterdir()) == ["1AKI.json", "1AKI.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "entries.tsv", "t.tsv"]


def test_ids_that_look_like_numbers_stay_text(tmp_path):
    from hessian_powerlaw.io import read_tsv, write_tsv

    entries = tmp_path / "e.tsv"
    write_tsv(entries, [{"pdb_id": "1E10", "path": "a"}, {"pdb_id": "2E50", "path": "b"}], ("pdb_id", "path"))
    assert [r["pdb_id"] for r in read_entries(entries)] == ["1E10", "2E50"]
    assert [r["pdb_id"] for r in read_tsv(entries)] == ["1E10", "2E50"]


def test_record_reuse_checks_content_and_spectrum(tmp_path):
    """A missing or truncated spectrum is rebuilt; new content at the same path is analysed
    anew, never given the old record."""
    path = _write(tmp_path, "entry.pdb.gz", (BUNDLED / "1aki.pdb.gz").read_bytes())
    records = tmp_path / "records"
    first = analyse_cached(path, records, {"compare": False}, pdb_id="ENTRY")
    spectrum = records / "ENTRY.npy"
    for damage in (lambda: spectrum.unlink(), lambda: spectrum.write_bytes(spectrum.read_bytes()[:200])):
        damage()
        again = analyse_cached(path, records, {"compare": False}, pdb_id="ENTRY")
        assert again["beta"] == first["beta"] and np.load(spectrum).shape == (first["n_modes"],)
    stamp = (records / "ENTRY.json").stat().st_mtime_ns
    assert analyse_cached(path, records, {"compare": False}, pdb_id="ENTRY") == again  # reused
    assert (records / "ENTRY.json").stat().st_mtime_ns == stamp
    path.write_bytes((BUNDLED / "3ptb.pdb.gz").read_bytes())
    other = analyse_cached(path, records, {"compare": False}, pdb_id="ENTRY")
    assert other["n_residues"] != first["n_residues"] and np.load(spectrum).shape == (other["n_modes"],)


def test_plots_leave_out_a_damaged_spectrum_with_a_warning(tmp_path, capsys):

    records = tmp_path / "records"
    rows = [
        analyse_cached(BUNDLED / f"{name}.pdb.gz", records, {"compare": False}) for name in ("1aki", "3ptb")
    ]
    spectrum = records / "1AKI.npy"
    spectrum.write_bytes(spectrum.read_bytes()[:150])
    shown, overlay = protein_items(rows, records, per_bin=2)
    assert [item[0] for item in overlay] == ["3PTB"]
    assert "1AKI.npy left out" in capsys.readouterr().err


def test_protein_bootstrap_p_value_is_recorded_and_seeded(tmp_path):
    from hessian_powerlaw import cli
    from hessian_powerlaw.io import read_tsv

    rows = []
    for run in ("a", "b"):
        argv = ["protein", str(BUNDLED / "1aki.pdb.gz"), "--bootstrap", "50", "--bootstrap-seed", "2"]
        assert cli.main([*argv, "--records", str(tmp_path / run), "--out", str(tmp_path / f"{run}.tsv")]) == 0
        rows.append(read_tsv(tmp_path / f"{run}.tsv")[0])
    assert 0 <= rows[0]["p_bootstrap"] <= 1 and rows[0]["p_bootstrap"] == rows[1]["p_bootstrap"]
    plain, _ = analyse(BUNDLED / "1aki.pdb.gz")
    assert plain["p_bootstrap"] is None
