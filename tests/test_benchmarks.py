"""The benchmarks' machine-read outputs: `protein_speed.py --entries` ends with the ratio line, the
committed peer comparison holds one complete object per (tool, K), and `rerun_records.py` tells a
record that re-runs to the same result from one that does not, and `rerun_coverage.py` counts
each record by the check of it as it is now."""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BUNDLED, EDGE

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "measured" / "dnn_peers.json"
PEER_FIELDS = ("tool", "k", "hvp_count", "seconds", "peak_mb", "max_rel_error")


def test_protein_speed_ends_with_the_ratio_and_survives_a_bad_file(tmp_path):
    junk = tmp_path / "junk.pdb"
    junk.write_text("not a structure\n")
    small = str(EDGE / "1a8o.pdb.gz")  # 70 residues: skipped before its eigenvalues, so not given to ProDy
    files = [str(BUNDLED / "1aki.pdb.gz"), str(junk), small, str(BUNDLED / "3ptb.pdb.gz")]
    command = [sys.executable, str(ROOT / "benchmarks" / "protein_speed.py"), "--entries", *files]
    done = subprocess.run([*command, "--repeat", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "2 of 4 entries fitted" in lines[0]
    assert f"left out of ProDy's run (skipped by residue count here): ['{small}']" in done.stderr
    match = re.fullmatch(r"ratio_vs_prody=(\S+)", lines[-1])
    assert match and math.isfinite(float(match[1])) and float(match[1]) > 0
    rows = [line for line in lines if line.startswith("| 4 | 2 |")]
    assert len(rows) == 3 and all(float(row.split("|")[-2]) < 1e-10 for row in rows)  # eigenvalue diff


def test_peer_comparison_holds_one_complete_object_per_tool_and_k():
    rows = json.loads(PEERS.read_text())
    assert isinstance(rows, list) and rows
    keys = [(row["tool"], row["k"]) for row in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        assert all(field in row for field in PEER_FIELDS), row
        assert isinstance(row["k"], int) and row["hvp_count"] > 0
        assert row["seconds"] > 0 and row["peak_mb"] > 0
        assert row["max_rel_error"] is None or row["max_rel_error"] >= 0
    for k in {row["k"] for row in rows}:
        ours = [row for row in rows if row["k"] == k and row["tool"].startswith("hessian-powerlaw")]
        assert ours and all(row["max_rel_error"] < 1e-3 for row in ours)


def test_generic_peer_comparison_holds_one_complete_object_per_model_tool_and_k():
    saved = json.loads((PEERS.parent / "dnn_peers_generic.json").read_text())
    assert saved["command"].startswith("python benchmarks/dnn_peers_generic.py")
    rows = saved["rows"]
    keys = [(row["model"], row["tool"], row["k"]) for row in rows]
    assert rows and len(keys) == len(set(keys))
    for row in rows:
        assert all(
            field in row for field in ("model", "tool", "k", "hvp_count", "seconds", "max_rel_error")
        ), row
        assert row["hvp_count"] > 0 and row["seconds"] > 0 and row["max_rel_error"] >= 0
    ours = [row for row in rows if row["tool"].startswith("hessian-powerlaw")]
    assert {row["model"] for row in ours} == {"cnn", "transformer", "resnet18"}
    assert all(row["max_rel_error"] < 1e-3 for row in ours)
    # the ResNet18 rows are measured against a float64 reference that is known to have converged:
    # ARPACK's, whose explicit residuals the benchmark checks and states
    resnet = [row for row in rows if row["model"] == "resnet18"]
    assert resnet and all("explicit residuals <=" in row["reference"] for row in resnet)
    assert {row["k"] for row in resnet} == {50, 100}


def _fake_record(path, beta, power_law=True, made_on=None, rerun_on=None):
    """A committed record whose command writes a record with the given beta (no training); with
    `made_on`/`rerun_on`, the committed and the rerun record name those machines."""
    fresh = {"run": "r_s0", "status": "ok", "beta": beta, "power_law": power_law, "d_ks": 0.01}
    body = json.dumps({**fresh, **({"train_machine": rerun_on, "machine": rerun_on} if rerun_on else {})})
    writer = f"import sys, pathlib; p = pathlib.Path(sys.argv[2]); p.parent.mkdir(); p.write_text({body!r})"
    command = f"{sys.executable} -c {shlex.quote(writer)} --out out/r_s0.json"
    committed = {"run": "r_s0", "status": "ok", "beta": 2.0, "power_law": True, "command": command}
    if made_on:
        committed.update(train_machine=made_on, machine=made_on)
    path.write_text(json.dumps(committed))
    return path


def _rerun(*args, env=None):
    command = [sys.executable, str(ROOT / "benchmarks" / "rerun_records.py"), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_rerun_records_compares_beta_and_verdict_and_resumes(tmp_path):
    out = tmp_path / "reruns.json"
    same = _rerun(_fake_record(tmp_path / "same.json", 2.0 + 1e-8), "--out", out)
    assert same.returncode == 0, same.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["agrees"] and row["beta_diff"] == pytest.approx(1e-8, abs=1e-12)
    assert "1 of 1 records re-run" in out.with_suffix(".md").read_text()
    # a record already checked is not run again, even when its command would now disagree
    again = _rerun(_fake_record(tmp_path / "same.json", 3.0), "--out", out)
    assert again.returncode == 0 and len(json.loads(out.read_text())["rows"]) == 1
    moved = _rerun(_fake_record(tmp_path / "moved.json", 2.0 + 1e-5), "--out", tmp_path / "moved_out.json")
    assert moved.returncode == 1 and "DIFFERS" in moved.stdout
    flipped = _rerun(_fake_record(tmp_path / "flip.json", 2.0, power_law=False), "--out", tmp_path / "f.json")
    assert flipped.returncode == 1


def test_rerun_records_says_whether_the_rerun_ran_on_the_machine_that_made_the_record(tmp_path):
    zen4, intel = (
        "AVX512 CPU (AuthenticAMD family 25 model 17), t 2",
        "AVX512 CPU (GenuineIntel family 6 model 85), t 2",
    )
    cases = {
        "same": (zen4, zen4, True),
        "other model": (intel, zen4, False),
        "other set": ("AVX2 CPU, t 2", zen4, False),
        "no model": ("AVX512 CPU, t 2", zen4, None),  # an older label: same set, model unknown
        "old": (None, zen4, None),
    }
    for name, (made_on, rerun_on, same) in cases.items():
        record = _fake_record(tmp_path / f"{name}.json", 2.0, made_on=made_on, rerun_on=rerun_on)
        out = tmp_path / f"{name}_out.json"
        assert _rerun(record, "--out", out).returncode == 0
        (row,) = json.loads(out.read_text())["rows"]
        assert row["same_machine"] is same and row["agrees"]
        cell = {True: "yes", False: "no", None: ""}[same]
        assert f"| {cell} | " in out.with_suffix(".md").read_text().splitlines()[-1]


def test_rerun_records_reports_a_failing_command(tmp_path):
    record = tmp_path / "bad.json"
    record.write_text(json.dumps({"run": "bad_s0", "command": "echo 'no such input' >&2; exit 3"}))
    out = tmp_path / "out.json"
    done = _rerun(record, "--out", out)
    assert done.returncode == 1 and "no such input" in done.stdout
    # a failed command is not a comparison: a rerun of the check runs it again and replaces its row
    good = json.loads(_fake_record(tmp_path / "good.json", 2.0).read_text())
    record.write_text(json.dumps({**good, "run": "bad_s0"}))
    again = _rerun(record, "--out", out)
    assert again.returncode == 0, again.stdout
    (row,) = json.loads(out.read_text())["rows"]
    assert row["agrees"] and "error" not in row


def test_rerun_records_stops_at_once_without_the_cli_on_path(tmp_path):
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"run": "r_s0", "command": "hessian-powerlaw train --out m.pt"}))
    done = _rerun(record, "--out", tmp_path / "out.json", env={"PATH": str(tmp_path)})
    assert done.returncode == 2 and "hessian-powerlaw is not on PATH" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_sync_reproduction_copies_records_and_builds_the_table(tmp_path):
    """A run's records and spectra land in OUT beside the table; extra records given after OUT
    enter the table without being copied, and files that are not records are left alone."""
    measured = ROOT / "benchmarks" / "measured" / "reproduction_study"
    records = tmp_path / "results" / "reproduction" / "records"
    spectra = tmp_path / "results" / "reproduction" / "spectra"
    records.mkdir(parents=True)
    spectra.mkdir()
    for name in ("t8-fcn2-mnist-w50_s0", "t8-fcn2-mnist-w70_s0"):
        (records / f"{name}.json").write_bytes((measured / f"{name}.json").read_bytes())
        (spectra / f"{name}.npy").write_bytes((measured / f"{name}.npy").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "reruns.json").write_text("{}")
    extra = measured / "t8-fcn2-mnist-w30_s0.json"
    command = ["bash", str(ROOT / "benchmarks" / "sync_reproduction.sh"), str(tmp_path / "results"), str(out)]
    done = subprocess.run([*command, "--only-run", str(extra)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*_s0.*")) == [
        "t8-fcn2-mnist-w50_s0.json",
        "t8-fcn2-mnist-w50_s0.npy",
        "t8-fcn2-mnist-w70_s0.json",
        "t8-fcn2-mnist-w70_s0.npy",
    ]
    table = (out / "reproduction.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in table[1:]] == [
        "t8-fcn2-mnist-w30",
        "t8-fcn2-mnist-w50",
        "t8-fcn2-mnist-w70",
    ]
    assert (out / "reruns.json").read_text() == "{}"


def test_rerun_records_runs_each_stage_on_the_threads_it_was_made_with(tmp_path):
    """Each stage of the command sees OMP_NUM_THREADS = its record key (or --made-with entry);
    the fake spectrum stage writes the two stages' thread counts as beta = train + spectrum / 10."""
    train = "hessian-powerlaw train --fake"
    writer = (
        "import json, os, sys, pathlib; p = pathlib.Path(sys.argv[2]); p.parent.mkdir(); p.write_text("
        "json.dumps({'run': 'r_s0', 'status': 'ok', 'power_law': True,"
        " 'beta': float(open('t').read()) + int(os.environ['OMP_NUM_THREADS']) / 10}))"
    )
    spectrum = f"{sys.executable} -c {shlex.quote(writer)} --out out/r_s0.json"
    fake_train = tmp_path / "bin" / "hessian-powerlaw"  # the train stage: records its threads in ./t
    fake_train.parent.mkdir()
    fake_train.write_text('#!/bin/sh\necho "$OMP_NUM_THREADS" > t\n')
    fake_train.chmod(0o755)
    record = tmp_path / "r.json"
    made = {
        "run": "r_s0",
        "status": "ok",
        "power_law": True,
        "beta": 3.1,
        "command": f"{train} && {spectrum}",
    }
    env = {"PATH": f"{fake_train.parent}:{os.environ['PATH']}"}
    record.write_text(json.dumps({**made, "train_threads": 3, "threads": 1}))
    assert _rerun(record, "--out", tmp_path / "a.json", env=env).returncode == 0
    record.write_text(json.dumps(made))  # no thread keys: --made-with says
    made_with = tmp_path / "made.json"
    made_with.write_text(json.dumps({"r_s0": {"train": 3, "spectrum": 1}}))
    assert _rerun(record, "--out", tmp_path / "b.json", "--made-with", made_with, env=env).returncode == 0
    made_with.write_text(json.dumps({"r_s0": {"train": 1, "spectrum": 3}}))
    assert _rerun(record, "--out", tmp_path / "c.json", "--made-with", made_with, env=env).returncode == 1
    assert "| r_s0 | 1/3 |" in (tmp_path / "c.md").read_text()


SNAKEMAKE_LOG = """Provided cores: 2
localrule repro_train:
    output: results-study/reproduction/models/t1-a_s0.pt, results-study/reproduction/metrics/t1-a_s0.json
    jobid: 2
    wildcards: experiment=t1-a, seed=0
    threads: 2
localrule repro_spectrum:
    output: results-study/reproduction/records/t1-a_s0.json, results-study/reproduction/spectra/t1-a_s0.npy
    jobid: 1
    wildcards: experiment=t1-a, seed=0
localrule repro_spectrum:
    output: results-study/reproduction/records/t1-b_s0.json, results-study/reproduction/spectra/t1-b_s0.npy
    jobid: 3
    threads: 2
Finished jobid: 2 (Rule: repro_train)
Finished job 1.
"""


def test_snakemake_threads_reads_each_finished_stage(tmp_path):
    """Threads per stage from a job block (its threads line after the jobid; none = 1); an unfinished
    job (t1-b) is left out; a later log overrides an earlier one."""
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "2026-01-01T000000.snakemake.log").write_text(SNAKEMAKE_LOG)
    later = SNAKEMAKE_LOG.replace("    threads: 2\nlocalrule repro_spectrum", "localrule repro_spectrum", 1)
    command = [sys.executable, str(ROOT / "benchmarks" / "snakemake_threads.py"), str(logs), "--out"]
    done = subprocess.run([*command, str(tmp_path / "a.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "a.json").read_text()) == {"t1-a_s0": {"train": 2, "spectrum": 1}}
    (logs / "2026-01-02T000000.snakemake.log").write_text(later)
    subprocess.run([*command, str(tmp_path / "b.json")], check=True, capture_output=True, timeout=60)
    assert json.loads((tmp_path / "b.json").read_text()) == {"t1-a_s0": {"train": 1, "spectrum": 1}}


def test_local_slopes_are_equal_on_a_power_law_and_rise_on_a_cut_off_one():
    import importlib.util

    spec = importlib.util.spec_from_file_location("local_slopes", ROOT / "benchmarks" / "local_slopes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    k = np.arange(1, 301)
    assert module.local_slopes(3.0 * k**-1.3) == pytest.approx((1.3, 1.3, 1.3), abs=1e-9)
    top, middle, tail = module.local_slopes(k**-1.0 * np.exp(-k / 100))
    assert top < middle < tail and tail > 2
    with pytest.raises(ValueError, match="at least 20 positive"):
        module.local_slopes(np.ones(10))


def test_local_slopes_table_sets_rate_and_verdict_beside_the_slopes(tmp_path):
    k = np.arange(1.0, 101.0)
    record = {"run": "a_s0", "lr": 0.01, "operator": "hessian", "k": 100, "d_ks": 0.01234, "power_law": True}
    (tmp_path / "a_s0.json").write_text(json.dumps(record))
    np.save(tmp_path / "a_s0.npy", np.stack([2.0 * k**-1.1, k]))
    unfitted = {"run": "b_s0", "lr": 0.1, "operator": "hessian", "k": None, "noise_floor": 1e-3}
    (tmp_path / "b_s0.json").write_text(json.dumps(unfitted))
    np.save(tmp_path / "b_s0.npy", np.stack([np.r_[k**-1.0, np.zeros(5)], np.r_[k, np.zeros(5)]]))
    script = str(ROOT / "benchmarks" / "local_slopes.py")
    done = subprocess.run(
        [sys.executable, script, str(tmp_path / "a_s0.json"), str(tmp_path / "b_s0.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]
    assert rows == [
        "| a_s0 | 0.01 | hessian | 100 | 1.10 | 1.10 | 1.10 | 0.0123 | yes |",
        "| b_s0 | 0.1 | hessian | 100 | 1.00 | 1.00 | 1.00 |  |  |",
    ]
    out = tmp_path / "slopes.md"
    subprocess.run([sys.executable, script, str(tmp_path / "a_s0.json"), "--out", str(out)], check=True)
    assert out.read_text().splitlines()[2:] == rows[:1]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.json", '{"run": ', "broken.json: not valid JSON"),
        ("keyless.json", '{"run": "x_s0", "lr": 0.1}', "keyless.json: the record has no 'operator' key"),
        ("lonely.json", '{"run": "x_s0", "lr": 0.1, "operator": "hessian", "k": 30}', "lonely.npy: "),
    ],
)
def test_local_slopes_stops_with_one_line_naming_a_bad_record(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    out = tmp_path / "slopes.md"
    script = str(ROOT / "benchmarks" / "local_slopes.py")
    done = subprocess.run(
        [sys.executable, script, str(tmp_path / name), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not out.exists()


def test_reproduction_cost_counts_parts_and_prices_rows_left_by_their_done_peers(tmp_path):
    """Two FCN records of the study's config: their part counts them done, the other seeds of the
    same networks are priced at their spectra plus training per epoch, and rows of networks with
    no done peer (other widths, the Fig. 20 covariance operator) stay unpriced."""
    measured = ROOT / "benchmarks" / "measured" / "reproduction_study"
    records = {}
    for name in ("t8-fcn2-mnist_s0", "t8-fcn2-mnist-init_s0"):
        (tmp_path / f"{name}.json").write_bytes((measured / f"{name}.json").read_bytes())
        records[name] = json.loads((measured / f"{name}.json").read_text())
    out = tmp_path / "cost.md"
    config = ROOT / "workflow" / "configs" / "reproduce_study.yaml"
    script = ROOT / "benchmarks" / "reproduction_cost.py"
    done = subprocess.run(
        [sys.executable, str(script), str(config), str(tmp_path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    trained, init = records["t8-fcn2-mnist_s0"], records["t8-fcn2-mnist-init_s0"]
    spent = (
        trained["spectrum_seconds"] + trained["train_seconds"] + init["spectrum_seconds"]
    )  # init: 0 epochs
    left = 2 * (trained["spectrum_seconds"] + trained["train_seconds"]) + 2 * init["spectrum_seconds"]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.read_text().splitlines()}
    assert rows["fcn"][1:] == ["23", "2", f"{spent / 3600:.1f}", "21", f"{left / 3600:.1f}", "17 |"]
    assert rows["figures"][-1] == "5 |" and rows["all"][2] == "2"
    assert "| t8-fcn2-mnist_s0 |" in out.read_text()


def test_training_table_lists_finished_trainings_of_metrics_files_and_records(tmp_path):
    final = {"lr": 0.01, "epochs": 50, "train_loss": 2.17834, "train_acc": 0.22111, "test_acc": 0.7857}
    (tmp_path / "a_s0.json").write_text(json.dumps({"history": [], "final": final}))
    (tmp_path / "b_s0.json").write_text(json.dumps({"history": [{"epoch": 1}]}))  # still training
    record = {"run": "c_s0", "lr": 0.1, "epochs": 200, "train_loss": 2.3025856, "train_acc": 0.1}
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c_s0.json").write_text(json.dumps({**record, "test_acc": 0.1, "beta": 2.0}))
    out = tmp_path / "t.md"
    script = [sys.executable, str(ROOT / "benchmarks" / "training_table.py")]
    command = [*script, str(tmp_path), str(tmp_path / "elsewhere" / "c_s0.json"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = out.read_text().splitlines()[2:]
    assert rows == [
        "| a_s0 | 0.01 | 50 | 2.178 | 0.221 | 0.786 |",
        "| c_s0 | 0.1 | 200 | 2.303 | 0.100 | 0.100 |",
    ]
    missing = subprocess.run(
        [*script, str(tmp_path / "none"), "--out", str(out)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "none: no such file or folder" in missing.stderr
    (tmp_path / "b1024_s0.json").write_text(json.dumps({"final": final}))
    (tmp_path / "b640_s0.json").write_text(json.dumps({"final": final}))
    done = subprocess.run([*script, str(tmp_path), "--out", str(out)], capture_output=True, text=True)
    assert [line.split(" | ")[0] for line in out.read_text().splitlines()[2:]] == [
        "| a_s0",
        "| b640_s0",
        "| b1024_s0",
    ]  # numbers by value
    (tmp_path / "b640_s0.json").unlink()
    (tmp_path / "b1024_s0.json").unlink()
    subprocess.run(command, check=True, capture_output=True)
    (tmp_path / "elsewhere" / "d_s0.json").write_text('{"final": {"lr": 0.1}}')
    keyless = subprocess.run(
        [*script, str(tmp_path / "elsewhere"), "--out", str(out)], capture_output=True, text=True
    )
    assert (
        keyless.returncode == 2
        and "d_s0.json: the training's final metrics have no 'epochs'" in keyless.stderr
    )
    assert out.read_text().splitlines()[2:] == rows  # the table before stays


def test_saved_figures_hold_no_date_so_a_rerun_gives_the_same_bytes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hessian_powerlaw.report.figures import save

    contents = []
    for name in ("a", "b"):
        fig, ax = plt.subplots()
        ax.loglog([1, 2, 3], [3, 2, 1])
        contents.append([path.read_bytes() for path in save(fig, tmp_path, name)])
    assert contents[0] == contents[1] and contents[0][1].startswith(b"%PDF")
    assert b"CreationDate" not in contents[0][1]  # the same bytes in another second, too


def _coverage(root, out):
    command = [sys.executable, str(ROOT / "benchmarks" / "rerun_coverage.py"), str(root), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_rerun_coverage_counts_each_record_by_its_latest_check_and_prices_the_rest(tmp_path):
    root = tmp_path / "study"
    (root / "diagnostics").mkdir(parents=True)
    exact = _fake_record(root / "exact.json", 2.0, made_on="AVX2 CPU")
    moved = _fake_record(root / "moved.json", 2.0 + 1e-3, made_on="AVX2 CPU")
    for record, run in ((exact, "a_s0"), (moved, "b_s0")):
        body = json.loads(record.read_text())
        record.write_text(json.dumps({**body, "run": run}))
        assert _rerun(record, "--out", root / "reruns.json").returncode in (0, 1)
    # made again after its check: the old row compared another beta, so the record is not re-run
    remade = json.loads(exact.read_text())
    (root / "remade.json").write_text(json.dumps({**remade, "run": "b_s0", "beta": 1.5, "seconds": 5400}))
    moved.unlink()
    untimed = {"run": "c_s0", "command": "true", "power_law": False, "beta": None}
    (root / "diagnostics" / "untimed.json").write_text(json.dumps(untimed))
    (root / "made_with.json").write_text(json.dumps({"a_s0": {"train": 2}}))  # not a record
    done = _coverage(root, tmp_path / "coverage.md")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "coverage.md").read_text()
    assert text.startswith("1 of 3 committed records re-ran")
    assert "| AVX2 CPU | 2 | 1 | 0 | 0 | 1 | 1.5 |" in text
    assert "| unnamed machine | 1 | 0 | 0 | 0 | 1 | 0.0 (+1 untimed) |" in text
    assert "`remade`" in text and "`diagnostics/untimed`" in text and "`exact`" not in text


def test_rerun_coverage_reads_a_verdict_held_with_beta_moved_apart_from_a_failure(tmp_path):
    root = tmp_path / "study"
    root.mkdir()
    record = {"run": "a_s0", "command": "x", "power_law": True, "beta": 2.0}
    (root / "a.json").write_text(json.dumps(record))
    (root / "b.json").write_text(json.dumps({**record, "run": "b_s0"}))
    rows = [
        {"run": "a_s0", "beta": 2.0, "power_law": True, "rerun_power_law": True, "agrees": False},
        {"run": "b_s0", "beta": 2.0, "power_law": True, "error": "exit 1", "agrees": False},
    ]
    (root / "reruns_other.json").write_text(json.dumps({"rows": rows}))
    assert _coverage(root, tmp_path / "c.md").returncode == 0
    text = (tmp_path / "c.md").read_text()
    assert "| unnamed machine | 2 | 0 | 1 | 1 | 0 | 0.0 (+2 untimed) |" in text  # both still owed
    assert "Same verdict, beta moved, made on unnamed machine: `a`." in text
    assert "Differs or failed, made on unnamed machine: `b`." in text and "Not re-run" not in text
    (root / "bad.json").write_text("{")
    done = _coverage(root, tmp_path / "c.md")
    assert done.returncode != 0 and "bad.json: not a readable JSON file" in done.stderr
    (root / "bad.json").unlink()
    (root / "reruns_broken.json").write_text("[1, 2]")
    done = _coverage(root, tmp_path / "c.md")
    assert done.returncode != 0 and "reruns_broken.json: not a rerun_records.py output" in done.stderr
