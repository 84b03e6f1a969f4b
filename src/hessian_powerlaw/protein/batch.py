"""Many structure files in one call: in this process, or in worker processes with one BLAS
thread each (two entries on two cores beat one entry on two LAPACK threads; see the README's
Benchmarks), the largest files first so that a long entry does not start last."""

import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from hessian_powerlaw.protein import analysis, cache

__all__ = ["analyse_entry", "analyse_many", "available_cpus", "resolve_jobs"]


BATCH_BYTES = 1 << 30  # Hessians held for one round of batched solves (about 23 of 800 residues)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a SLURM allocation, a taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs: int) -> int:
    """Entries analysed at once for a --jobs value.

    Parameters
    ----------
    jobs : int
        The flag's value; 0 means one per available CPU.

    Returns
    -------
    int
        At least 1.
    """
    return jobs or available_cpus()


def analyse_entry(
    path: str | os.PathLike,
    cfg: dict,
    source: str = "local",
    pdb_id: str | None = None,
    records_dir: str | os.PathLike | None = None,
) -> dict:
    """One entry's record: `analysis.analyse`, or `cache.analyse_cached` into `records_dir`; the
    record's pdb_id falls back to the given id, then to the file name."""
    return next(_analyse_here([(path, pdb_id)], cfg, source, records_dir))[1]


def _analyse_here(tasks, cfg, source, records_dir, max_bytes=0):
    """(index, record) for each task, in this process, through analysis's streams."""
    if records_dir is None:
        paths = [path for path, _ in tasks]
        stream = ((i, record) for i, record, _ in analysis.analyse_stream(paths, cfg, source, max_bytes))
    else:
        stream = cache.analyse_cached_stream(tasks, records_dir, cfg, source, max_bytes)
    for index, record in stream:
        path, pdb_id = tasks[index]
        record["pdb_id"] = record["pdb_id"] or pdb_id or Path(path).name
        yield index, record


def analyse_many(
    tasks: list[tuple],
    cfg: dict,
    source: str = "local",
    records_dir: str | os.PathLike | None = None,
    jobs: int = 1,
) -> Iterator[tuple[int, dict]]:
    """Yield (index, record) for each task of `tasks` as it finishes.

    jobs 1: here, in order; on the torch and cuda backends sorted by file size and solved in
    batches of equal order (`analysis.analyse_stream`, BATCH_BYTES of Hessians at a time).
    jobs > 1: that many worker processes (at most one per task), one BLAS thread each, the
    largest files submitted first. A worker that dies (killed, out of memory) breaks the pool:
    the unfinished entries are then rerun one process each, so only the entry that kills its
    process gets a failed record.

    Parameters
    ----------
    tasks : list of tuple
        (path, pdb_id) of each structure file; pdb_id may be empty.
    cfg : dict
        The protein SETTINGS (cutoff, K, eigen_backend, ...), as for `analysis.analyse`.
    source : str, default "local"
        Stored in every record ('local' or 'rcsb').
    records_dir : str or os.PathLike, optional
        Where finished records and spectra are kept: an entry whose record is there is not
        analysed again (`cache.analyse_cached`).
    jobs : int, default 1
        Worker processes.

    Yields
    ------
    index : int
        The task's position in `tasks`.
    record : dict
        Its PROTEIN_KEYS record (status 'ok', 'skipped' or 'failed' with the reason).
    """
    if jobs <= 1 or len(tasks) <= 1:
        order = list(range(len(tasks)))
        max_bytes = 0
        if (cfg or {}).get("eigen_backend") in analysis.BATCHED_BACKENDS:
            order.sort(key=lambda i: _size(tasks[i][0]))
            max_bytes = BATCH_BYTES
        for position, record in _analyse_here([tasks[i] for i in order], cfg, source, records_dir, max_bytes):
            yield order[position], record
        return
    order = sorted(range(len(tasks)), key=lambda i: -_size(tasks[i][0]))
    unfinished = set(order)
    with _pool(min(jobs, len(tasks))) as pool:
        futures = {
            pool.submit(analyse_entry, tasks[i][0], cfg, source, tasks[i][1], records_dir): i for i in order
        }
        try:
            for future in as_completed(futures):
                index = futures[future]
                record = future.result()
                unfinished.discard(index)
                yield index, record
        except BrokenProcessPool:
            pass
    for index in sorted(unfinished, key=order.index):
        path, pdb_id = tasks[index]
        with _pool(1) as pool:
            try:
                record = pool.submit(analyse_entry, path, cfg, source, pdb_id, records_dir).result()
            except BrokenProcessPool:
                record = analysis.new_record(path, source)
                record.update(
                    pdb_id=pdb_id or Path(path).name,
                    reason="the analysis process died (killed, or out of memory)",
                )
        yield index, record


def _pool(workers):
    context = multiprocessing.get_context(_start_method())
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread)


def _start_method():
    """fork starts a worker at no import cost; it is safe on Linux while torch is not loaded."""
    return "fork" if sys.platform == "linux" and "torch" not in sys.modules else "spawn"


def _one_thread():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    analysis.TORCH_THREADS = 1


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
