"""Many entries at once: worker processes give the records of the in-process path, in input
order, survive a worker that dies, and run their BLAS on one thread."""

import os
import shutil

import numpy as np
import pytest

from conftest import BUNDLED, EDGE
from hessian_powerlaw import cli
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.protein import analysis, anm, batch

FILES = [BUNDLED / "1aki.pdb.gz", BUNDLED / "4hhb.pdb.gz", EDGE / "1a8o.pdb.gz", BUNDLED / "3ptb.pdb.gz"]
VARYING = {"seconds"}


def _without_time(record):
    return {k: v for k, v in record.items() if k not in VARYING}


def test_workers_give_the_in_process_records(tmp_path):
    tasks = [(str(f), None) for f in FILES]
    cfg = {"compare": False}
    serial = dict(batch.analyse_many(tasks, cfg, jobs=1))
    parallel = dict(batch.analyse_many(tasks, cfg, jobs=2, records_dir=tmp_path))
    assert sorted(parallel) == list(range(len(FILES)))
    for index in range(len(FILES)):
        a, b = serial[index], parallel[index]
        assert a["file"] == b["file"] == str(FILES[index])
        assert a["status"] == b["status"] and a["n_modes"] == b["n_modes"]
        if a["status"] == "ok":
            assert abs(a["beta"] - b["beta"]) < 1e-9 and abs(a["d_ks"] - b["d_ks"]) < 1e-9
        else:
            assert _without_time(a) == _without_time(b)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "1A8O.json",
        "1AKI.json",
        "3PTB.json",
        "4HHB.json",
    ]


def _dies_on_4hhb(paths, cfg, source="local", max_bytes=None):
    if any("4hhb" in str(path) for path in paths):
        os._exit(3)  # a worker killed mid-entry (as by the out-of-memory killer)
    return ORIGINAL_STREAM(paths, cfg, source, max_bytes)


ORIGINAL_STREAM = analysis.analyse_stream


def test_a_dying_worker_costs_only_its_entry(monkeypatch):
    monkeypatch.setattr(analysis, "analyse_stream", _dies_on_4hhb)
    monkeypatch.setattr(batch, "_start_method", lambda: "fork")  # workers inherit the patch
    tasks = [(str(f), None) for f in FILES]
    records = dict(batch.analyse_many(tasks, {"compare": False}, jobs=2))
    assert sorted(records) == list(range(len(FILES)))
    killed = records[1]
    assert killed["status"] == "failed" and "process died" in killed["reason"]
    assert killed["pdb_id"] == "4hhb.pdb.gz"
    assert records[0]["status"] == records[3]["status"] == "ok"


def _blas_threads():
    from threadpoolctl import threadpool_info

    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return blas, analysis.TORCH_THREADS


def test_workers_run_one_blas_thread():
    with batch._pool(1) as pool:
        threads, torch_threads = pool.submit(_blas_threads).result()
    assert threads and set(threads) == {1} and torch_threads == 1


def test_protein_command_jobs_keeps_input_order(tmp_path):
    table = tmp_path / "t.tsv"
    files = [str(f) for f in FILES]
    assert cli.main(["protein", "--no-compare", "--jobs", "2", "--out", str(table), *files]) == 0
    rows = read_tsv(table)
    assert [r["file"] for r in rows] == files
    assert [r["pdb_id"] for r in rows] == ["1AKI", "4HHB", "1A8O", "3PTB"]
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "ok"]


def _spy_eigvalsh(monkeypatch):
    """Record the batch shape of every torch eigvalsh call."""
    import torch

    calls, original = [], torch.linalg.eigvalsh

    def spy(matrices):
        calls.append(tuple(matrices.shape))
        return original(matrices)

    monkeypatch.setattr(torch.linalg, "eigvalsh", spy)
    return calls


def test_equal_sizes_are_solved_in_one_batched_call(tmp_path, monkeypatch):
    """The device path (cuda) run on the CPU through the torch backend: two entries of equal
    order share one eigvalsh call, and every record and spectrum equals scipy's per entry."""
    pytest.importorskip("torch")
    twin = tmp_path / "twin.pdb.gz"
    shutil.copy(BUNDLED / "1aki.pdb.gz", twin)
    bad = tmp_path / "bad.pdb"
    bad.write_text("ATOM  garbage\n")
    files = [BUNDLED / "1aki.pdb.gz", BUNDLED / "4hhb.pdb.gz", bad, twin]
    tasks = [(str(f), None) for f in files]
    calls = _spy_eigvalsh(monkeypatch)
    batched = dict(batch.analyse_many(tasks, {"compare": False, "eigen_backend": "torch"}, jobs=1))
    order = 3 * 129  # 1AKI: 129 residues
    assert sorted(calls) == sorted([(2, order, order), (1, 3 * 574, 3 * 574)])
    reference = dict(batch.analyse_many(tasks, {"compare": False, "eigen_backend": "scipy"}, jobs=1))
    assert sorted(batched) == list(range(len(files)))
    for index in range(len(files)):
        a, b = batched[index], reference[index]
        assert a["file"] == str(files[index]) and a["status"] == b["status"]
        if a["status"] == "ok":
            for key in ("beta", "d_ks", "s", "xmin"):
                assert abs(a[key] - b[key]) <= 1e-10 * abs(b[key])
            assert a["n_zero_modes"] == b["n_zero_modes"] == 6
    assert batched[2]["status"] == "failed" and batched[2]["reason"]
    one, _ = analysis.analyse_group([files[0]], {"compare": False, "eigen_backend": "scipy"})[0]
    twins = analysis.analyse_group([files[0], twin], {"compare": False, "eigen_backend": "torch"})
    np.testing.assert_allclose(twins[0][1], _, rtol=1e-10)
    # two copies of one matrix in one batched call agree to rounding, not bitwise: LAPACK's
    # batched routines may block the two differently (4.8e-12 seen on a clean clone)
    np.testing.assert_allclose(twins[0][1], twins[1][1], rtol=1e-10)


def test_a_failing_batch_is_solved_one_matrix_at_a_time(monkeypatch):
    """A batched call that fails costs nothing but time; a matrix that fails alone fails only
    its entry, with the solver's message."""
    calls = []

    def flaky(hessians, backend):
        calls.append(len(hessians))
        if len(hessians) > 1:
            raise RuntimeError("device out of memory")
        return [np.linalg.eigvalsh(hessians[0])]

    monkeypatch.setattr(analysis, "batched_eigenvalues", flaky)
    paths = [BUNDLED / "1aki.pdb.gz"] * 3
    results = analysis.analyse_group(paths, {"compare": False, "eigen_backend": "cuda"})
    assert calls == [3, 1, 1, 1] and all(record["status"] == "ok" for record, _ in results)

    def broken(hessian, backend="auto"):
        raise np.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(analysis, "eigenvalues", broken)
    record, sigma = analysis.analyse_group(paths[:2], {"compare": False, "eigen_backend": "cuda"})[1]
    assert sigma is None and record["status"] == "failed"
    assert record["reason"] == "eigenvalue solver failed (did not converge)"


def test_one_failing_matrix_leaves_the_others_of_its_order_exact(monkeypatch):
    """Held matrices of one order on a LAPACK backend (which overwrites its input) are solved
    one by one: a failure in the middle leaves the others' spectra exact."""
    path = BUNDLED / "1aki.pdb.gz"
    reference = analysis.analyse(path, {"compare": False})[1]
    original, calls = anm.eigenvalues, []

    def second_fails(hessian):
        calls.append(len(hessian))
        if len(calls) == 2:
            raise np.linalg.LinAlgError("did not converge")
        return original(hessian)

    monkeypatch.setattr(anm, "eigenvalues", second_fails)
    results = analysis.analyse_group([path] * 3, {"compare": False, "eigen_backend": "scipy"})
    assert [record["status"] for record, _ in results] == ["ok", "failed", "ok"] and len(calls) == 3
    np.testing.assert_array_equal(results[0][1], reference)
    np.testing.assert_array_equal(results[2][1], reference)


def test_held_hessians_stay_within_the_byte_bound(monkeypatch):
    """max_bytes bounds the Hessians held for one round: 0 solves each as it is built."""
    sizes = []
    original = analysis._solve_held

    def spy(held, cfg):
        sizes.append(sum(hessian.nbytes for _, hessian in held.values()))
        return original(held, cfg)

    monkeypatch.setattr(analysis, "_solve_held", spy)
    paths = [BUNDLED / "1aki.pdb.gz"] * 3
    one = (3 * 129) ** 2 * 8
    list(analysis.analyse_stream(paths, {"compare": False}, max_bytes=0))
    assert sizes == [one, one, one, 0]
    sizes.clear()
    list(analysis.analyse_stream(paths, {"compare": False}, max_bytes=2 * one))
    assert sizes == [2 * one, one]
