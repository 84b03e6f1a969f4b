"""Per-entry protein analysis: structure -> ANM eigenvalues -> inverted spectrum -> fit."""

import functools
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from hessian_powerlaw.config import defaults
from hessian_powerlaw.fit import FitError, power_law_fit, resolve_k
from hessian_powerlaw.io import load_npy, save_npy, validate_name, write_json
from hessian_powerlaw.options import PROTEIN_SETTINGS, values
from hessian_powerlaw.protein import anm
from hessian_powerlaw.protein.anm import RIGID_BODY_MODES, inverted_spectrum
from hessian_powerlaw.protein.lapack import two_stage_eigenvalues
from hessian_powerlaw.protein.structure import StructureError, entry_id, read_calpha
from hessian_powerlaw.records import PROTEIN_KEYS

SETTINGS = PROTEIN_SETTINGS
TWO_STAGE_MIN_SIZE = 2000  # matrix order from which LAPACK's two-stage reduction beats dsyevd here
TORCH_MIN_SIZE = 2400  # matrix order (800 residues) from which torch (MKL) beats scipy's dsyevd here
# Importing torch and its first eigvalsh cost about 2.5 s here; torch saves about a third of
# dsyevd's time from TORCH_MIN_SIZE on. Where the two-stage routine is missing, 'auto' therefore
# keeps scipy until the large entries of this process have cost enough that torch would have
# paid for its import (or torch is loaded).
TORCH_IMPORT_SECONDS = 2.5
TORCH_SAVING = 0.35
_scipy_seconds = [0.0]  # scipy time spent on matrices of at least TORCH_MIN_SIZE, this process
TORCH_THREADS = None  # torch's CPU threads when set (1 in the worker processes of protein.batch)


def eigenvalues(hessian, backend="auto"):
    """All eigenvalues, ascending, of a symmetric (M, M) Hessian (overwritten when it is
    float64 and C-contiguous).

    backend: 'scipy' (LAPACK divide and conquer, dsyevd), 'torch' (MKL, on the CPU), 'cuda'
    (torch float64 on the GPU) or 'auto': dsyevd below order TWO_STAGE_MIN_SIZE, LAPACK's
    two-stage reduction from there (`protein.lapack`); where that routine is missing, torch for
    large matrices once its import pays (see TORCH_IMPORT_SECONDS) or it is already loaded.
    """
    if backend == "cuda":
        return _torch_eigenvalues(hessian, "cuda")
    if backend == "auto" and len(hessian) >= TWO_STAGE_MIN_SIZE:
        values = two_stage_eigenvalues(np.ascontiguousarray(hessian, dtype=np.float64))
        if values is not None:
            return values
    large = len(hessian) >= TORCH_MIN_SIZE
    if backend == "torch" or (backend == "auto" and large and _torch_pays()):
        try:
            return _torch_eigenvalues(hessian, "cpu")
        except ImportError:
            if backend == "torch":
                raise
    start = time.perf_counter()
    values = anm.eigenvalues(hessian)
    if large:
        _scipy_seconds[0] += time.perf_counter() - start
    return values


def _torch_pays():
    return "torch" in sys.modules or TORCH_SAVING * _scipy_seconds[0] > TORCH_IMPORT_SECONDS


def _torch_eigenvalues(hessian, device):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("eigen_backend cuda, but CUDA is not available here")
    if TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)
    matrix = torch.from_numpy(hessian).to(device)
    return torch.linalg.eigvalsh(matrix).cpu().numpy()


def new_record(path, source="local"):
    record = dict.fromkeys(PROTEIN_KEYS)
    record.update(file=str(path), source=source, status="failed")
    return record


@functools.cache
def _default_settings():
    return values(defaults(), SETTINGS)


def default_settings():
    """The SETTINGS' schema defaults (validated once per process)."""
    return dict(_default_settings())


def analyse(path, cfg=None, source="local"):
    """Analyse one structure file; returns (record, sigma spectrum or None). Never raises
    for a bad input: the record's status ('ok', 'skipped', 'failed') and reason say why.
    `cfg` holds the SETTINGS; missing ones take the config schema's defaults."""
    cfg = {**default_settings(), **(cfg or {})}
    record = new_record(path, source)
    start = time.perf_counter()
    sigma = None
    try:
        sigma = _analyse(path, cfg, record)
        record["status"] = "ok"
    except _Skip as skip:
        record.update(status="skipped", reason=str(skip))
    except (StructureError, FitError) as err:
        record.update(status="failed" if isinstance(err, StructureError) else "skipped")
        record["reason"] = err.args[0]
    except MemoryError:
        record["reason"] = "out of memory building the Hessian"
    except np.linalg.LinAlgError as err:
        record["reason"] = f"eigenvalue solver failed ({err})"
    except Exception as err:  # one entry's defect must not lose the batch: it gets a reason
        record["reason"] = f"analysis failed ({type(err).__name__}: {err})"
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record, sigma


class _Skip(Exception):
    """A valid structure outside the study's selection."""


def _analyse(path, cfg, record):
    try:
        info = read_calpha(path)
    except StructureError as err:
        if len(err.args) > 1:
            record.update({k: v for k, v in err.args[1].items() if k in record})
        raise
    coords = info.pop("coords")
    record.update({k: v for k, v in info.items() if k in record})
    notes = []
    if info["duplicate_atoms"]:
        notes.append(f"{info['duplicate_atoms']} duplicated atom records ignored (first kept)")
    if info["shared_chain_ids"]:
        notes.append(f"{info['shared_chain_ids']} chain(s) written with another chain's ID, kept apart")
    record["reason"] = "; ".join(notes) or None
    n = len(coords)
    if n < cfg["min_residues"]:
        raise _Skip(f"{n} residues, fewer than the minimum {cfg['min_residues']}")
    if n > cfg["max_residues"]:
        raise _Skip(f"{n} residues, more than the maximum {cfg['max_residues']}")
    hessian = anm.anm_hessian(coords, cfg["cutoff"], cfg["gamma"])
    ev = eigenvalues(hessian, cfg["eigen_backend"])
    n_zero, sigma = inverted_spectrum(ev, cfg["zero_mode_tol"])
    record.update(n_zero_modes=n_zero, n_modes=len(sigma))
    if n_zero < RIGID_BODY_MODES:
        raise StructureError(f"only {n_zero} zero modes (expected 6): coordinates degenerate?")
    if n_zero > RIGID_BODY_MODES:
        message = f"disconnected network: {n_zero} zero modes (expected 6) at cutoff {cfg['cutoff']}"
        if cfg["disconnected"] == "exclude":
            raise _Skip(message)
        record["reason"] = "; ".join(
            filter(None, (record["reason"], message + "; fitted on the non-zero modes"))
        )
    k = resolve_k(cfg["k"], len(sigma))
    record.update(
        power_law_fit(
            sigma, k, compare=cfg["compare"], bootstrap=cfg["bootstrap"], seed=cfg["bootstrap_seed"]
        )
    )
    return sigma


def settings_key(cfg):
    """The settings that determine a record, stored with it to decide reuse on resume."""
    return {key: cfg[key] for key in sorted(SETTINGS)}


def analyse_cached(path, records_dir, cfg=None, source="local", pdb_id=None):
    """Like analyse(), but reuse `records_dir/{id}.json` when it was made with the same
    settings from a file with the same content (SHA-256) and, for a fitted entry, its spectrum
    `{id}.npy` is intact; otherwise analyse and write the spectrum, then the record, atomically.
    An id that cannot name a file gives a failed record and writes nothing."""
    cfg = {**default_settings(), **(cfg or {})}
    pdb_id = entry_id(path) if pdb_id is None else pdb_id
    try:
        validate_name(pdb_id)
    except ValueError as err:
        record = new_record(path, source)
        record.update(pdb_id=str(pdb_id)[:64], reason=err.args[0])
        return record
    records_dir = Path(records_dir)
    record_path, spectrum_path = records_dir / f"{pdb_id}.json", records_dir / f"{pdb_id}.npy"
    digest = _sha256(path)
    key = {"settings": settings_key(cfg), "file": str(path), "sha256": digest}
    saved = _saved_record(record_path, spectrum_path, key) if digest else None
    if saved is not None:
        return saved
    record, sigma = analyse(path, cfg, source)
    if sigma is not None:
        save_npy(spectrum_path, sigma)
    else:
        spectrum_path.unlink(missing_ok=True)  # a stale spectrum must not sit beside a new record
    if digest:
        write_json(record_path, {**key, "record": _jsonable(record)})
    return record


def _sha256(path):
    """Hex SHA-256 of a file's bytes, or None when it cannot be read (analyse() says why)."""
    digest = hashlib.sha256()
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
        saved = json.loads(record_path.read_text())
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
