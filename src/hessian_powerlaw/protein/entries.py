"""Entry lists: the structure files of a directory or glob, and entries TSVs (one batch of them)."""

import glob
import os
from pathlib import Path

from hessian_powerlaw.config import ConfigError
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.protein.structure import entry_id

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")


def read_entries(
    path: str | os.PathLike, batch: int | None = None, batch_size: int | None = None
) -> list[dict]:
    """Rows {pdb_id, path} (text; empty cells "") of an entries file, optionally one batch."""
    rows = read_tsv(path)
    if rows and not {"pdb_id", "path"} <= set(rows[0]):
        raise ConfigError(f"{path}: an entries file needs the columns pdb_id and path")
    if batch is not None:
        rows = rows[batch * batch_size : (batch + 1) * batch_size]
    return [{"pdb_id": r["pdb_id"] or "", "path": r["path"] or ""} for r in rows]


def local_entries(pattern: str | os.PathLike) -> list[dict]:
    """Structure files of a directory or glob, with their entry ids, sorted by id (the first
    file of an id is kept)."""
    path = Path(pattern)
    if path.is_dir():
        files = [p for p in path.iterdir() if is_structure(p.name)]
    else:
        files = [Path(p) for p in glob.glob(pattern) if is_structure(Path(p).name)]
    rows = {}
    for file in sorted(files):
        rows.setdefault(entry_id(file), str(file))
    return [{"pdb_id": k, "path": v} for k, v in sorted(rows.items())]


def is_structure(name: str) -> bool:
    """Whether a file name is a PDB or mmCIF file (optionally gzipped)."""
    return name.lower().removesuffix(".gz").endswith(STRUCTURE_SUFFIXES)
