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
    """The rows of an entries file (the output of `select`), optionally one batch of them.

    Parameters
    ----------
    path : str or os.PathLike
        A TSV with the columns pdb_id and path.
    batch : int, optional
        The batch to return (0-based); all rows when None.
    batch_size : int, optional
        Rows per batch (with `batch`).

    Returns
    -------
    list of dict
        {pdb_id, path} as text (empty cells "").

    Raises
    ------
    ConfigError
        When the file lacks the pdb_id or path column.
    """
    rows = read_tsv(path)
    if rows and not {"pdb_id", "path"} <= set(rows[0]):
        raise ConfigError(f"{path}: an entries file needs the columns pdb_id and path")
    if batch is not None:
        rows = rows[batch * batch_size : (batch + 1) * batch_size]
    return [{"pdb_id": r["pdb_id"] or "", "path": r["path"] or ""} for r in rows]


def local_entries(pattern: str | os.PathLike) -> list[dict]:
    """Structure files of a directory or glob, with their entry ids.

    Parameters
    ----------
    pattern : str or os.PathLike
        A directory (its PDB and mmCIF files, gzipped or not) or a glob pattern.

    Returns
    -------
    list of dict
        {pdb_id, path} sorted by id; the first file of an id is kept.
    """
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
