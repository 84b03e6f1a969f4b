"""Structure files (PDB or mmCIF, plain or gzipped) to C-alpha coordinates."""

import io
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.Polypeptide import is_aa
from scipy.spatial import cKDTree

PDB_ID = re.compile(r"^[0-9][A-Za-z0-9]{3}$")
NUCLEIC = {"A", "C", "G", "U", "T", "I", "DA", "DC", "DG", "DT", "DU", "DI", "N", "DN"}
END_RECORD = re.compile(r"^END\s*$", re.MULTILINE)
CHAIN_BREAK = 4.5  # Angstrom between consecutive C-alpha atoms of one chain
COINCIDENT = 0.01  # Angstrom: two C-alpha atoms closer than this are one position written twice
MAX_TEXT_BYTES = 256 * 2**20  # decompressed text: ~3 million atoms, far past what a dense ANM can take


class StructureError(ValueError):
    """A structure file that cannot give usable C-alpha coordinates."""


def entry_id(path):
    """Entry id from a file name: '4hhb.pdb.gz' -> '4HHB', 'pdb3hsy.ent' -> '3HSY'."""
    stem = Path(path).name.split(".")[0]
    if stem.lower().startswith("pdb") and PDB_ID.match(stem[3:]):
        stem = stem[3:]
    return stem.upper() if PDB_ID.match(stem) else stem


def _read_text(path, limit=MAX_TEXT_BYTES):
    try:
        raw = Path(path).read_bytes() if Path(path).stat().st_size <= limit else None
    except OSError as err:
        raise StructureError(f"cannot read the file ({err.strerror or err})") from None
    if raw is None:
        raise StructureError(f"larger than {limit // 2**20} MiB, not a structure file")
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, limit)
    if not raw.strip():
        raise StructureError("empty file")
    if b"\x00" in raw[:4096]:
        raise StructureError("binary data, not a PDB or mmCIF file")
    return raw.decode("latin-1")


def gunzip(raw, limit):
    """Decompress at most `limit` bytes (a gzip bomb is refused without inflating it)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as err:
        raise StructureError(f"corrupt gzip ({err})") from None
    if len(out) > limit:
        raise StructureError(f"decompresses to more than {limit // 2**20} MiB (a gzip bomb?)")
    if not inflater.eof:
        raise StructureError("corrupt gzip (truncated: the compressed stream ends early)")
    return out


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
    table = getattr(parser, "_mmcif_dict", None) if mmcif else None
    return structure, duplicates, table


def _pdb_chain_clash(text):
    """A chain ID whose C-alpha residue numbers recur in a later, separate run of records of the
    first model (two chains written with one ID), else None."""
    first, segment, previous = {}, 0, None
    for line in text.splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM  ", "HETATM")) or len(line) < 27:
            continue
        chain = line[21]
        if chain != previous:
            segment, previous = segment + 1, chain
        if line[12:16].strip() == "CA" and is_aa(line[17:20].strip(), standard=False):
            key = (chain, line[22:27].strip())
            if first.setdefault(key, segment) != segment:
                return chain, key[1]
    return None


def _mmcif_chain_clash(table):
    """The same for mmCIF: one (auth_asym_id, auth_seq_id, insertion code) in two label_asym_id chains."""
    try:
        names, auth, label, seq = (
            table[f"_atom_site.{k}"]
            for k in ("label_atom_id", "auth_asym_id", "label_asym_id", "auth_seq_id")
        )
    except (KeyError, TypeError):
        return None
    models = table.get("_atom_site.pdbx_PDB_model_num") or ["1"] * len(names)
    codes = table.get("_atom_site.pdbx_PDB_ins_code") or ["?"] * len(names)
    owner = {}
    for i, name in enumerate(names):
        if models[i] != models[0]:
            break
        if name == "CA" and owner.setdefault((auth[i], seq[i], codes[i]), label[i]) != label[i]:
            return auth[i], seq[i]
    return None


def _coordinates(table):
    """atom -> float64 coordinates as written in the file. Biopython keeps float32, which
    rounds mmCIF coordinates past 1e4 Angstrom; PDB's 8.3f fields survive float32 to 1e-3."""
    try:
        ids, xs, ys, zs = (table[f"_atom_site.{k}"] for k in ("id", "Cartn_x", "Cartn_y", "Cartn_z"))
    except (KeyError, TypeError):
        return lambda atom: np.round(atom.coord.astype(np.float64), 3)
    rows = {}
    for i, serial in enumerate(ids):
        rows.setdefault(serial, i)

    def exact(atom):
        i = rows.get(str(atom.serial_number))
        try:
            return np.array([float(xs[i]), float(ys[i]), float(zs[i])])
        except (TypeError, ValueError):
            return atom.coord.astype(np.float64)

    return exact


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
    structure, duplicates, table = _parse(path, text)
    models = list(structure.get_models())
    if not models:
        raise StructureError("no atoms found (not a PDB or mmCIF file, or truncated)")
    clash = _mmcif_chain_clash(table) if table is not None else _pdb_chain_clash(text)
    if clash:
        raise StructureError(
            f"chain ID {clash[0]} is used by two chains with the same residue numbers (from {clash[1]}): "
            "one of them would be dropped; give the chains distinct IDs"
        )
    position = _coordinates(table)
    coords, labels, chains, breaks, n_nucleic = [], [], 0, 0, 0
    for chain in models[0]:
        chain_coords = []
        for residue in chain:
            atom = _calpha(residue)
            if atom is not None:
                chain_coords.append(position(atom))
                labels.append(f"{chain.id}:{residue.id[1]}{residue.id[2].strip()}")
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
    same = cKDTree(info["coords"]).query_pairs(COINCIDENT, output_type="ndarray")
    if len(same):
        i, j = same[0]
        raise StructureError(
            f"{len(same)} pair(s) of C-alpha atoms at the same position, e.g. {labels[i]} and {labels[j]} "
            f"(closer than {COINCIDENT} A)",
            info,
        )
    return info


def _float_or_none(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
