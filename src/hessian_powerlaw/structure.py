"""Structure files (PDB or mmCIF, plain or gzipped) to C-alpha coordinates."""

import gzip
import io
import re
import warnings
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.Polypeptide import is_aa

PDB_ID = re.compile(r"^[0-9][A-Za-z0-9]{3}$")
NUCLEIC = {"A", "C", "G", "U", "T", "I", "DA", "DC", "DG", "DT", "DU", "DI", "N", "DN"}
END_RECORD = re.compile(r"^END\s*$", re.MULTILINE)
CHAIN_BREAK = 4.5  # Angstrom between consecutive C-alpha atoms of one chain


class StructureError(ValueError):
    """A structure file that cannot give usable C-alpha coordinates."""


def entry_id(path):
    """Entry id from a file name: '4hhb.pdb.gz' -> '4HHB', 'pdb3hsy.ent' -> '3HSY'."""
    stem = Path(path).name.split(".")[0]
    if stem.lower().startswith("pdb") and PDB_ID.match(stem[3:]):
        stem = stem[3:]
    return stem.upper() if PDB_ID.match(stem) else stem


def _read_text(path):
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise StructureError(f"corrupt gzip ({err})") from None
    if not raw.strip():
        raise StructureError("empty file")
    if b"\x00" in raw[:4096]:
        raise StructureError("binary data, not a PDB or mmCIF file")
    return raw.decode("latin-1")


def _is_mmcif(path, text):
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".cif", ".mmcif"):
        return True
    if suffixes and suffixes[-1] in (".pdb", ".ent"):
        return False
    return text.lstrip().startswith("data_")


def _parse(path, text):
    mmcif = _is_mmcif(path, text)
    if not mmcif and not END_RECORD.search(text):
        raise StructureError("truncated PDB file (no END record)")
    parser = MMCIFParser(QUIET=False) if mmcif else PDBParser(QUIET=False)  # warnings are captured
    kind = "mmCIF" if mmcif else "PDB"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = parser.get_structure(entry_id(path), io.StringIO(text))
        except KeyError as err:
            raise StructureError(f"unreadable {kind} file: missing column {err.args[0]}") from None
        except Exception as err:  # Biopython raises many types on malformed input
            raise StructureError(f"unreadable {kind} file ({type(err).__name__}: {err})") from None
    duplicates = sum("defined twice" in str(w.message) for w in caught)
    return structure, duplicates


def _calpha(residue):
    """The residue's C-alpha atom when it is an amino acid (modified ones included), else None."""
    atom = residue["CA"] if "CA" in residue else None
    if atom is None or (atom.element or "C").upper() != "C":
        return None
    return atom if is_aa(residue, standard=False) else None


def read_calpha(path):
    """C-alpha coordinates and metadata of the first model of a structure file.

    Returns a dict: pdb_id, coords (N x 3 float array), n_chains, n_residues, chain_breaks,
    n_nucleic, duplicate_atoms (repeated atom records, ignored: the first is kept), resolution,
    method, n_models. Raises StructureError with a one-line reason.
    """
    path = Path(path)
    if not path.is_file():
        raise StructureError("file not found")
    text = _read_text(path)
    structure, duplicates = _parse(path, text)
    models = list(structure.get_models())
    if not models:
        raise StructureError("no atoms found (not a PDB or mmCIF file, or truncated)")
    coords, chains, breaks, n_nucleic = [], 0, 0, 0
    for chain in models[0]:
        chain_coords = []
        for residue in chain:
            atom = _calpha(residue)
            if atom is not None:
                chain_coords.append(atom.coord)
            elif residue.get_resname().strip() in NUCLEIC:
                n_nucleic += 1
        if chain_coords:
            chains += 1
            xyz = np.asarray(chain_coords, dtype=float)
            breaks += int(np.count_nonzero(np.linalg.norm(np.diff(xyz, axis=0), axis=1) > CHAIN_BREAK))
            coords.append(xyz)
    header = structure.header or {}
    info = {
        "pdb_id": (header.get("idcode") or "").upper() or entry_id(path),
        "n_models": len(models),
        "n_chains": chains,
        "n_residues": int(sum(len(c) for c in coords)),
        "chain_breaks": breaks,
        "n_nucleic": n_nucleic,
        "duplicate_atoms": duplicates,
        "resolution": _float_or_none(header.get("resolution")),
        "method": (header.get("structure_method") or "").upper() or None,
    }
    if not coords:
        what = "nucleic-acid only" if n_nucleic else "no protein C-alpha atoms (ligands/waters only?)"
        raise StructureError(what, info)
    info["coords"] = np.concatenate(coords)
    if not np.all(np.isfinite(info["coords"])):
        raise StructureError("NaN or infinite C-alpha coordinates", info)
    return info


def _float_or_none(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
