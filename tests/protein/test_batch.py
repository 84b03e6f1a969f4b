"""Many entries at once: worker processes give the records of the in-process path, in input
order, survive a worker that dies, and run their BLAS on one thread."""

import os

from conftest import BUNDLED, EDGE
from hessian_powerlaw import cli
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.protein import analysis, batch

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


def _dies_on_4hhb(path, cfg, source="local"):
    if "4hhb" in str(path):
        os._exit(3)  # a worker killed mid-entry (as by the out-of-memory killer)
    return ORIGINAL_ANALYSE(path, cfg, source)


ORIGINAL_ANALYSE = analysis.analyse


def test_a_dying_worker_costs_only_its_entry(monkeypatch):
    monkeypatch.setattr(analysis, "analyse", _dies_on_4hhb)
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
