"""Files: atomic output (a temporary file beside the target, then a rename), TSV tables of
records, JSON and NPY (never pickled)."""

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


class InputError(ValueError):
    """An input or output path that is not a regular file, or an input given twice."""


def regular_input(path: str | os.PathLike) -> Path:
    """`path` as a Path, if it is a regular file (or a link to one); InputError for a FIFO, a
    device, a socket or a directory, before anything opens it (a FIFO would block forever)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a FIFO, device or socket?)"
        raise InputError(f"{path}: {kind}; inputs must be regular files")
    return path


def distinct(paths: Iterable[str | os.PathLike]) -> list:
    """`paths` as given, if no file appears twice (by its resolved path).

    An aggregator must not count one input as two samples.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Input files.

    Returns
    -------
    list
        The paths, in the order given.

    Raises
    ------
    InputError
        Naming the first file given twice.
    """
    seen = {}
    for path in paths:
        key = Path(path).resolve()
        if key in seen:
            raise InputError(f"{path} is given twice (also as {seen[key]}); each input counts once")
        seen[key] = path
    return list(paths)


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in a regular file.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON file holding an object.

    Returns
    -------
    dict
        The object.

    Raises
    ------
    InputError
        One line naming the file if it is missing, not a regular file, not JSON or not an object.
    """
    path = regular_input(path)
    try:
        value = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a JSON text file") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: holds a JSON {type(value).__name__}, not a record (an object)")
    return value


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto `path` on success.
    Outputs go only to regular files or new paths (InputError otherwise: replacing a FIFO or a
    device node with a file would be wrong, whoever runs it)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file; outputs go only to regular files or new paths")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically (a temporary file renamed over it)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to `path` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (replaced only once completely written).
    text : str
        The content.
    """
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write a JSON object to `path` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (replaced only once completely written).
    obj : dict
        A JSON-serialisable object; NaN and infinity are refused.
    """
    write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n")


def save_npy(path: str | os.PathLike, array: npt.ArrayLike) -> None:
    """Write an array to a .npy file atomically (no pickles).

    Parameters
    ----------
    path : str or os.PathLike
        The .npy file (replaced only once completely written).
    array : array_like
        Any numeric array; object arrays are refused by numpy's ``allow_pickle=False``.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a .npy file (regular files only, no pickles)."""
    return np.load(regular_input(path), allow_pickle=False)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


def to_tsv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """Rows (dicts) as TSV text with the given columns, in that order.

    Parameters
    ----------
    rows : iterable of dict
        The rows; a missing key, None or NaN is an empty cell, a float has 6 significant digits.
    columns : sequence of str
        The header, in order.

    Returns
    -------
    str
        The TSV text, header first, one line per row.
    """
    out = io.StringIO()
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
    return out.getvalue()


def write_tsv(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write rows as a TSV file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (replaced only once completely written).
    rows : iterable of dict
        The rows, as for `to_tsv`.
    columns : sequence of str
        The header, in order.
    """
    write_text(path, to_tsv(rows, columns))


# Columns that hold names, never numbers: a PDB id such as 1E10 must not become 1e+10.
TEXT_COLUMNS = frozenset(
    (
        "pdb_id",
        "path",
        "file",
        "run",
        "status",
        "reason",
        "source",
        "method",
        "variant",
        "bin_3n",
        "block",
        "noise",
    )
)


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """Rows of a TSV written by `write_tsv`, with numbers and booleans converted back.

    Columns in TEXT_COLUMNS stay text; empty cells are None.

    Parameters
    ----------
    path : str or os.PathLike
        A TSV file with a header line.

    Returns
    -------
    list of dict
        One {column: value} per data line.
    """
    with open(regular_input(path), newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return [
        {k: (v or None) if k in TEXT_COLUMNS else _parse(v) for k, v in row.items()}
        for row in csv.DictReader(lines, delimiter="\t")
    ]


def _parse(text):
    if text in ("", None):
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def validate_name(name: str) -> str:
    """Return `name` if it can safely become a file name (records, spectra), else raise
    ValueError: 1-64 letters, digits, '_', '.', '+', '-', no leading dot, no '..'."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "..."
        raise ValueError(
            f"invalid entry id {shown!r} (1-64 letters, digits, '_', '.', '+' or '-'; it names files)"
        )
    return name
