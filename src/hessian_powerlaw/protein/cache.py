"""Protein records on disk: an entry's record and spectrum are reused on a rerun when the same
settings made them from a file with the same content (SHA-256); otherwise the entry is analysed
again and its spectrum, then its record, written atomically."""

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hessian_powerlaw.io import load_npy, regular_input, save_npy, validate_name, write_json
from hessian_powerlaw.protein.analysis import SETTINGS, analyse_stream, default_settings, new_record
from hessian_powerlaw.protein.structure import entry_id


def settings_key(cfg: dict) -> dict:
    """The settings that determine a record, stored with it to decide reuse on resume."""
    return {key: cfg[key] for key in sorted(SETTINGS)}


def analyse_cached(
    path: str | os.PathLike,
    records_dir: str | os.PathLike,
    cfg: dict | None = None,
    source: str = "local",
    pdb_id: str | None = None,
) -> dict:
    """Like analyse(), but reuse `records_dir/{id}.json` when it was made with the same
    settings from a file with the same content (SHA-256) and, for a fitted entry, its spectrum
    `{id}.npy` is intact; otherwise analyse and write the spectrum, then the record, atomically.
    An id that cannot name a file gives a failed record and writes nothing."""
    return next(analyse_cached_stream([(path, pdb_id)], records_dir, cfg, source))[1]


def analyse_cached_stream(
    tasks: list[tuple],
    records_dir: str | os.PathLike,
    cfg: dict | None = None,
    source: str = "local",
    max_bytes: int | None = None,
) -> Iterator[tuple[int, dict]]:
    """`analyse_cached` for (path, pdb_id or None) tasks, yielding (index, record) as each
    finishes: saved records first, the others through `analyse_stream`."""
    cfg = {**default_settings(), **(cfg or {})}
    records_dir = Path(records_dir)
    todo = []
    for index, (path, pdb_id) in enumerate(tasks):
        pdb_id = entry_id(path) if pdb_id is None else pdb_id
        try:
            validate_name(pdb_id)
        except ValueError as err:
            record = new_record(path, source)
            record.update(pdb_id=str(pdb_id)[:64], reason=err.args[0])
            yield index, record
            continue
        digest = _sha256(path)
        key = {"settings": settings_key(cfg), "file": str(path), "sha256": digest}
        saved = _saved_record(*_record_paths(records_dir, pdb_id), key) if digest else None
        if saved is not None:
            yield index, saved
        else:
            todo.append((index, pdb_id, key))
    paths = [tasks[index][0] for index, _, _ in todo]
    for position, record, sigma in analyse_stream(paths, cfg, source, max_bytes):
        index, pdb_id, key = todo[position]
        record_path, spectrum_path = _record_paths(records_dir, pdb_id)
        if sigma is not None:
            save_npy(spectrum_path, sigma)
        else:
            spectrum_path.unlink(missing_ok=True)  # a stale spectrum must not sit beside a new record
        if key["sha256"]:
            write_json(record_path, {**key, "record": _jsonable(record)})
        yield index, record


def _record_paths(records_dir, pdb_id):
    return records_dir / f"{pdb_id}.json", records_dir / f"{pdb_id}.npy"


def _sha256(path):
    """Hex SHA-256 of a file's bytes, or None when it cannot be read (analyse() says why)."""
    digest = hashlib.sha256()
    if not Path(path).is_file():  # a FIFO would block the read forever
        return None
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _saved_record(record_path, spectrum_path, key):
    """The saved record when it was made from this content with these settings and, if fitted,
    its spectrum file loads with the recorded number of finite modes; else None."""
    try:
        saved = json.loads(regular_input(record_path).read_text())
        if any(saved.get(name) != value for name, value in key.items()):
            return None
        record = saved["record"]
        if record["status"] == "ok":
            sigma = load_npy(spectrum_path)
            if sigma.shape != (record["n_modes"],) or not np.all(np.isfinite(sigma)):
                return None
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, unreadable or old: recompute


def _jsonable(record):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
