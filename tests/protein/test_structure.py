"""The gemmi parser against an independent Biopython reading of the same files."""

import gzip
import io
import warnings

import numpy as np
import pytest

from conftest import BUNDLED, EDGE, manifest
from hessian_powerlaw.protein.analysis import analyse
from hessian_powerlaw.protein.structure import read_calpha

# Entries where the two readings differ on purpose: gemmi's residue table knows D-arginine.
EXTRA_IN_GEMMI = {"1a4w": 1}
FILES = sorted(BUNDLED.glob("*.pdb.gz")) + sorted(p for p in EDGE.iterdir() if p.name != "MANIFEST.tsv")


def _biopython_calpha(path):
    """C-alpha coordinates by Biopython: first model, amino acids (modified ones included),
    highest-occupancy altloc, a carbon named CA."""
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.Polypeptide import is_aa

    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("latin-1")
    parser = MMCIFParser(QUIET=True) if ".cif" in path.name else PDBParser(QUIET=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = next(parser.get_structure("x", io.StringIO(text)).get_models())
    return np.array(
        [
            r["CA"].coord
            for chain in model
            for r in chain
            if "CA" in r and (r["CA"].element or "C") == "C" and is_aa(r, standard=False)
        ],
        dtype=float,
    )


def _same_points(a, b, tol=1e-3):
    """Every point of a within tol of a point of b and back (Biopython keeps float32)."""
    from scipy.spatial import cKDTree

    return bool(np.all(cKDTree(b).query(a)[0] < tol) and np.all(cKDTree(a).query(b)[0] < tol))


@pytest.mark.parametrize("path", [p for p in FILES if not p.name.startswith("2yex")], ids=lambda p: p.name)
def test_gemmi_and_biopython_read_the_same_calpha_atoms(path):
    ours = read_calpha(path)["coords"]
    reference = _biopython_calpha(path)
    extra = EXTRA_IN_GEMMI.get(path.name.split(".")[0], 0)
    assert len(ours) == len(reference) + extra
    if not extra:
        assert _same_points(ours, reference)


def test_2yex_with_a_shifted_anisou_record_is_read_and_fits_like_the_reference():
    """Biopython stops on 2YEX's shifted ANISOU record; gemmi reads it, and the fit equals the
    independent ProDy + powerlaw reference of the MANIFEST (K = 10%)."""
    from Bio.PDB.PDBExceptions import PDBConstructionException

    path = EDGE / "2yex.pdb.gz"
    with pytest.raises((ValueError, PDBConstructionException)):
        _biopython_calpha(path)
    record, _ = analyse(path, {"compare": False})
    assert record["status"] == "ok" and record["n_residues"] == 269
    reference = manifest(EDGE / "MANIFEST.tsv")["2YEX"]
    assert "1.9605" in reference["edge_case"]
    assert round(record["beta"], 4) == 1.9605 and round(record["d_ks"], 4) == 0.0418
