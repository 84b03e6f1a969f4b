"""Many structure files in one call: in this process, or in worker processes with one BLAS
thread each (two entries on two cores beat one entry on two LAPACK threads; see the README's
Benchmarks), the largest files first so that a long entry does not start last."""

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from hessian_powerlaw.protein import analysis

__all__ = ["analyse_entry", "analyse_many", "available_cpus", "resolve_jobs"]


def available_cpus():
    """CPUs this process may run on (its affinity mask: a SLURM allocation, a taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs):
    """Entries at once for a --jobs value (0: one per available CPU)."""
    return jobs or available_cpus()


def analyse_entry(path, cfg, source="local", pdb_id=None, records_dir=None):
    """One entry's record: `analysis.analyse`, or `analyse_cached` into `records_dir`; the
    record's pdb_id falls back to the given id, then to the file name."""
    if records_dir is None:
        record = analysis.analyse(path, cfg, source)[0]
    else:
        record = analysis.analyse_cached(path, records_dir, cfg, source, pdb_id)
    record["pdb_id"] = record["pdb_id"] or pdb_id or Path(path).name
    return record


def analyse_many(tasks, cfg, source="local", records_dir=None, jobs=1):
    """Yield (index, record) for each task (path, pdb_id) of the list `tasks` as it finishes.

    jobs 1: here, in order. jobs > 1: that many worker processes (at most one per task), one
    BLAS thread each, the largest files submitted first. A worker that dies (killed, out of
    memory) breaks the pool: the unfinished entries are then rerun one process each, so only
    the entry that kills its process gets a failed record.
    """
    if jobs <= 1 or len(tasks) <= 1:
        for index, (path, pdb_id) in enumerate(tasks):
            yield index, analyse_entry(path, cfg, source, pdb_id, records_dir)
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
