"""Per-entry protein analysis: structure -> ANM eigenvalues -> inverted spectrum -> fit."""

import functools
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from hessian_powerlaw.config import defaults
from hessian_powerlaw.fit import FitError, power_law_fit, resolve_k
from hessian_powerlaw.options import PROTEIN_SETTINGS, values
from hessian_powerlaw.protein import anm
from hessian_powerlaw.protein.anm import RIGID_BODY_MODES, inverted_spectrum
from hessian_powerlaw.protein.lapack import two_stage_eigenvalues
from hessian_powerlaw.protein.structure import StructureError, read_calpha
from hessian_powerlaw.records import PROTEIN_KEYS

SETTINGS = PROTEIN_SETTINGS
# Matrix order from which LAPACK's two-stage reduction beats dsyevd here, by BLAS threads
# (`benchmarks/protein_speed.py --crossover`: about 800 on one thread, 1350 on two); dsyevd
# gains more from threads, so more than two keep 2000, an earlier two-thread measurement.
TWO_STAGE_MIN_SIZE = {1: 800, 2: 1400}
TWO_STAGE_MIN_SIZE_MANY_THREADS = 2000
TORCH_MIN_SIZE = 2400  # matrix order (800 residues) from which torch (MKL) beats scipy's dsyevd here
# Importing torch and its first eigvalsh cost about 2.5 s here; torch saves about a third of
# dsyevd's time from TORCH_MIN_SIZE on. Where the two-stage routine is missing, 'auto' therefore
# keeps scipy until the large entries of this process have cost enough that torch would have
# paid for its import (or torch is loaded).
TORCH_IMPORT_SECONDS = 2.5
TORCH_SAVING = 0.35
_scipy_seconds = [0.0]  # scipy time spent on matrices of at least TORCH_MIN_SIZE, this process
BATCHED_BACKENDS = ("torch", "cuda")  # backends that solve matrices of one order in one call
TORCH_THREADS = None  # torch's CPU threads when set (1 in the worker processes of protein.batch)


def eigenvalues(hessian: np.ndarray, backend: str = "auto") -> np.ndarray:
    """All eigenvalues of a symmetric Hessian.

    Parameters
    ----------
    hessian : numpy.ndarray
        Shape (M, M), symmetric; overwritten when it is float64 and C-contiguous.
    backend : {"auto", "scipy", "torch", "cuda"}, default "auto"
        'scipy' (LAPACK divide and conquer, dsyevd), 'torch' (MKL, on the CPU), 'cuda' (torch
        float64 on the GPU) or 'auto': dsyevd below `two_stage_min_size()`, LAPACK's two-stage
        reduction from there (`protein.lapack`); where that routine is missing, torch for large
        matrices once its import pays (see TORCH_IMPORT_SECONDS) or it is already loaded.

    Returns
    -------
    numpy.ndarray
        Shape (M,), float64, ascending.
    """
    if backend == "cuda":
        return _torch_eigenvalues(hessian, "cuda")
    if backend == "auto" and len(hessian) >= two_stage_min_size():
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


def two_stage_min_size() -> int:
    """The matrix order from which 'auto' takes the two-stage routine, for the BLAS threads in
    force now (threadpoolctl: OPENBLAS_NUM_THREADS, a threadpool_limits block, the one thread of
    protein.batch's workers)."""
    return TWO_STAGE_MIN_SIZE.get(blas_threads(), TWO_STAGE_MIN_SIZE_MANY_THREADS)


def blas_threads() -> int:
    """The most threads any loaded BLAS library would use now (1 when none is loaded)."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)


def _torch_pays():
    return "torch" in sys.modules or TORCH_SAVING * _scipy_seconds[0] > TORCH_IMPORT_SECONDS


def _torch_eigenvalues(hessian, device):
    return batched_eigenvalues([hessian], "cuda" if device == "cuda" else "torch")[0]


def batched_eigenvalues(hessians: list[np.ndarray], backend: str) -> list[np.ndarray]:
    """Eigenvalues of equally sized symmetric matrices in one batched torch call.

    Parameters
    ----------
    hessians : list of numpy.ndarray
        Each of shape (M, M), symmetric; left intact.
    backend : {"torch", "cuda"}
        One float64 `eigvalsh` call on the CPU ('torch') or the GPU ('cuda').

    Returns
    -------
    list of numpy.ndarray
        One (M,) float64 array per matrix, ascending.

    Raises
    ------
    ValueError, RuntimeError, numpy.linalg.LinAlgError
        Another backend; 'cuda' without CUDA; non-finite eigenvalues.
    """
    if backend not in BATCHED_BACKENDS:
        raise ValueError(f"no batched eigenvalues on backend {backend!r}")
    import torch

    if backend == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("eigen_backend cuda, but CUDA is not available here")
    if TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)
    device = "cuda" if backend == "cuda" else "cpu"
    stack = torch.from_numpy(np.stack(hessians) if len(hessians) > 1 else hessians[0][None])
    values = torch.linalg.eigvalsh(stack.to(device=device, dtype=torch.float64)).cpu().numpy()
    if not np.all(np.isfinite(values)):
        raise np.linalg.LinAlgError("non-finite eigenvalues")
    return list(values)


def new_record(path: str | os.PathLike, source: str = "local") -> dict:
    """An empty protein record for `path`: status 'failed' until the analysis fills it.

    Parameters
    ----------
    path : str or os.PathLike
        The structure file.
    source : str, default "local"
        Where the file came from ('local' or 'rcsb').

    Returns
    -------
    dict
        Every PROTEIN_KEYS key, None where not yet known.
    """
    record = dict.fromkeys(PROTEIN_KEYS)
    record.update(file=str(path), source=source, status="failed")
    return record


@functools.cache
def _default_settings():
    return values(defaults(), SETTINGS)


def default_settings() -> dict:
    """The SETTINGS' schema defaults (validated once per process)."""
    return dict(_default_settings())


def analyse(
    path: str | os.PathLike, cfg: dict | None = None, source: str = "local"
) -> tuple[dict, np.ndarray | None]:
    """Analyse one structure file: ANM Hessian, eigenvalues, inverted spectrum, power-law fit.

    Never raises for a bad input: the record's status ('ok', 'skipped', 'failed') and reason
    say why.

    Parameters
    ----------
    path : str or os.PathLike
        A PDB or mmCIF file, optionally gzipped.
    cfg : dict, optional
        The SETTINGS (cutoff, chain selection, K, ...); missing ones take the config schema's
        defaults.
    source : str, default "local"
        Where the file came from, stored in the record ('local' or 'rcsb').

    Returns
    -------
    record : dict
        The PROTEIN_KEYS record (fit, sizes, timings, status, reason).
    sigma : numpy.ndarray or None
        The inverted spectrum, shape (3N - n_zero,), descending; None unless fitted.
    """
    return analyse_group([path], cfg, source)[0]


def analyse_group(
    paths: list, cfg: dict | None = None, source: str = "local", max_bytes: int | None = None
) -> list[tuple[dict, np.ndarray | None]]:
    """Analyse several structure files as `analyse` does; a list of (record, sigma) in order."""
    results = [None] * len(paths)
    for index, record, sigma in analyse_stream(paths, cfg, source, max_bytes):
        results[index] = (record, sigma)
    return results


def analyse_stream(
    paths: list, cfg: dict | None = None, source: str = "local", max_bytes: int | None = None
) -> Iterator[tuple[int, dict, np.ndarray | None]]:
    """Analyse structure files, yielding (index, record, sigma) as each entry finishes.

    Hessians are built in the order given and held until they take `max_bytes` (0: solve each
    at once; None: hold all), then solved together: on the 'torch' and 'cuda' backends
    one batched call per matrix order (entries of one protein often share a size; give the
    paths sorted by size so that they meet), one by one otherwise. A batch that fails is solved
    again a matrix at a time, so only a matrix that fails alone fails its entry.
    """
    cfg = {**default_settings(), **(cfg or {})}
    held, held_bytes = {}, 0
    for index, path in enumerate(paths):
        entry = _Entry(path, source)
        hessian = entry.step(_hessian, path=path, cfg=cfg)
        if hessian is None:
            yield index, *entry.result()
            continue
        held[index] = (entry, hessian)
        held_bytes += hessian.nbytes
        if max_bytes is not None and held_bytes >= max_bytes:
            yield from _solve_held(held, cfg)
            held_bytes = 0
    yield from _solve_held(held, cfg)


def _solve_held(held, cfg):
    """Solve and fit the held (entry, hessian) pairs by order, emptying `held`; yields results."""
    groups = {}
    for index, (_, hessian) in held.items():
        groups.setdefault(len(hessian), []).append(index)
    backend = cfg["eigen_backend"]
    for members in groups.values():
        start = time.perf_counter()
        solved = [None] * len(members)
        if backend in BATCHED_BACKENDS and len(members) > 1:  # torch leaves its input intact
            try:
                solved = batched_eigenvalues([held[i][1] for i in members], backend)
            except Exception:  # noqa: BLE001 - each matrix again on its own, below
                pass
        share = (time.perf_counter() - start) / len(members)
        for index, ev in zip(members, solved, strict=True):
            entry, hessian = held.pop(index)
            entry.seconds += share
            if ev is None:
                ev = entry.step(_one_eigenvalues, hessian=hessian, backend=backend)
            if ev is not None:
                entry.sigma = entry.step(_fit, ev=ev, cfg=cfg)
            yield index, *entry.result()


class _Entry:
    """One entry's record, spectrum and time while `analyse_stream` works on it."""

    def __init__(self, path, source):
        self.record = new_record(path, source)
        self.sigma = None
        self.seconds = 0.0

    def result(self):
        """(record, sigma): status 'ok' once a spectrum is fitted, and the time spent."""
        if self.sigma is not None:
            self.record["status"] = "ok"
        self.record["seconds"] = round(self.seconds, 3)
        return self.record, self.sigma

    def step(self, function, **kwargs):
        """function(record=..., **kwargs) timed; a bad input's exception becomes the record's
        status and reason, and None is returned."""
        start = time.perf_counter()
        try:
            return function(record=self.record, **kwargs)
        except _Skip as skip:
            notes = self.record.get("reason")  # what reading the file found stays said
            self.record.update(status="skipped", reason="; ".join(filter(None, (str(skip), notes))))
        except (StructureError, FitError) as err:
            self.record["status"] = "failed" if isinstance(err, StructureError) else "skipped"
            self.record["reason"] = err.args[0]
        except MemoryError:
            self.record["reason"] = "out of memory building the Hessian"
        except np.linalg.LinAlgError as err:
            self.record["reason"] = f"eigenvalue solver failed ({err})"
        except Exception as err:  # one entry's defect must not lose the batch: it gets a reason
            self.record["reason"] = f"analysis failed ({type(err).__name__}: {err})"
        finally:
            self.seconds += time.perf_counter() - start
        return None


class _Skip(Exception):
    """A valid structure outside the study's selection."""


def _hessian(path, cfg, record):
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
    if info["n_models"] > 1:
        notes.append(f"{info['n_models']} models in the file; the first one written is used")
    record["reason"] = "; ".join(notes) or None
    n = len(coords)
    if n < cfg["min_residues"]:
        raise _Skip(f"{n} residues, fewer than the minimum {cfg['min_residues']}")
    if n > cfg["max_residues"]:
        raise _Skip(f"{n} residues, more than the maximum {cfg['max_residues']}")
    return anm.anm_hessian(coords, cfg["cutoff"], cfg["gamma"])


def _one_eigenvalues(hessian, backend, record):
    return eigenvalues(hessian, backend)


def _fit(ev, cfg, record):
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
