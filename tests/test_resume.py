"""Kill (SIGKILL) and resume: the workflow mid protein batch and mid training epoch, then rerun."""

import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import BUNDLED, ROOT
from hessian_powerlaw.io import read_tsv

pytestmark = pytest.mark.slow
# wall-clock times, peak memory and the work directory differ; nothing else may
VARYING = {"seconds", "train_seconds", "spectrum_seconds", "peak_mb", "file"}


def make_workdir(path):
    data = path / "pdb"
    data.mkdir(parents=True)
    for name in ("1aki", "1dix", "3ptb", "4dfr", "7taa", "4hhb", "2reg", "1u5u"):
        shutil.copy(BUNDLED / f"{name}.pdb.gz", data)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["pdb"].update(local=str(data), batch_size=4)
    config["dnn"]["spectrum"].update(k=10, n_eval=100)
    config["dnn"]["random_init_control"] = False
    config["dnn"]["sweeps"] = [{"model": ["lenet"], "dataset": ["mnist"], "n_train": [1024], "epochs": [12]}]
    config["dnn"]["curvature"]["runs"] = []  # interrupted curvature runs: tests/test_curvature.py
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def snakemake(work, *extra):
    return [
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        "1",
        "--rerun-incomplete",
        *extra,
    ]


def unlock(work):
    subprocess.run(snakemake(work, "--unlock"), check=True, capture_output=True)


def run_until(work, target, ready, timeout=240):
    """Start the workflow for `target` in its own process group; SIGKILL it once ready()."""
    unlock(work)
    proc = subprocess.Popen(
        snakemake(work, target),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, (work / "interrupted.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out waiting for the point to interrupt"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tables(work):
    out = {}
    for name in ("protein/proteins.tsv", "protein/size_bins.tsv", "dnn/dnn.tsv", "comparison/comparison.tsv"):
        rows = read_tsv(work / "results" / name)
        out[name] = [{k: v for k, v in r.items() if k not in VARYING} for r in rows]
    return out


def test_sigkill_mid_batch_and_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    reference = make_workdir(tmp_path / "reference")
    subprocess.run(snakemake(reference), check=True, capture_output=True)

    work = make_workdir(tmp_path / "work")
    records = work / "results" / "protein" / "records"
    # inside the first protein batch
    run_until(work, "results/protein/proteins.tsv", lambda: len(list(records.glob("*.json"))) >= 1)
    assert not (work / "results" / "protein" / "batches" / "batch_0.tsv").exists()
    ckpt_dir = work / "results" / "dnn" / "checkpoints"
    # training has finished an epoch but not the run
    run_until(work, "results/dnn/dnn.tsv", lambda: any(ckpt_dir.glob("*.ckpt")))
    assert not any((work / "results" / "dnn" / "models").glob("*.pt"))
    unlock(work)
    proc = subprocess.run(snakemake(work), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tables(work) == tables(reference)
    logs = (work / "logs" / "train").glob("*.log")
    assert any("resuming after epoch" in path.read_text() for path in logs)
    assert not list((work / "results").rglob("*.ckpt"))
