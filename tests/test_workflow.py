"""The Snakemake workflow end to end on three bundled entries in a temporary directory."""

import shutil
import subprocess

import pytest
import yaml

from conftest import BUNDLED, EDGE, ROOT
from hessian_powerlaw.io import read_tsv

pytestmark = pytest.mark.slow


def snakemake(workdir, *args):
    return subprocess.run(
        [
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def workdir(tmp_path):
    data = tmp_path / "pdb"
    data.mkdir()
    for name in ("1aki.pdb.gz", "4hhb.pdb.gz", "3ptb.pdb.gz"):
        shutil.copy(BUNDLED / name, data)
    shutil.copy(EDGE / "3tah.pdb.gz", data)
    (data / "junk.pdb").write_text("HEADER    NOT A STRUCTURE\n")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["pdb"].update(local=str(data), batch_size=2)
    config["dnn"]["spectrum"].update(k=10, n_eval=100)
    config["dnn"]["sweeps"] = [{"model": ["lenet"], "dataset": ["mnist"], "n_train": [300], "epochs": [2]}]
    config["dnn"]["curvature"].update(every=1, n_eval=64, n_hvps=6, top_k=2, bottom_k=2, rate_from_epoch=0)
    config["dnn"]["curvature"]["runs"] = [
        {"model": ["lenet"], "dataset": ["mnist"], "n_train": [256], "seed": [0, 1], "epochs": [2]}
    ]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_workflow_end_to_end(workdir):
    proc = snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = workdir / "results" / "protein"
    proteins = {r["pdb_id"]: r for r in read_tsv(out / "proteins.tsv")}
    assert set(proteins) == {"1AKI", "3PTB", "3TAH", "4HHB", "junk"}
    assert proteins["4HHB"]["status"] == "ok" and proteins["4HHB"]["k"] == 171
    assert proteins["4HHB"]["beta"] == pytest.approx(1.9948, abs=1e-4)  # MANIFEST reference (ProDy)
    assert proteins["3TAH"]["status"] == "skipped" and "12 zero modes" in proteins["3TAH"]["reason"]
    assert proteins["junk"]["status"] == "failed"
    bins = {r["bin_3n"]: r for r in read_tsv(out / "size_bins.tsv")}
    assert bins["300-1000"]["count"] == 2 and bins["1000-3000"]["count"] == 1 and bins["all"]["count"] == 3
    assert {r["pdb_id"] for r in read_tsv(out / "failures.tsv")} == {"3TAH", "junk"}
    assert len(list((workdir / "results" / "protein" / "batches").glob("*.tsv"))) == 3
    assert (workdir / "logs" / "protein" / "batch_0.log").exists()
    assert (out / "records" / "4HHB.npy").exists()
    runs = {r["run"]: r for r in read_tsv(workdir / "results" / "dnn" / "dnn.tsv")}
    trained, control = "lenet_mnist_sgd_b128_n300_w100_d2_s0_e2", "lenet_mnist_sgd_b128_n300_w100_d2_s0_e0"
    assert set(runs) == {trained, control}
    assert runs[trained]["epochs"] == 2 and runs[control]["epochs"] == 0
    assert all(r["status"] == "ok" and r["k"] == 10 and r["n_eval"] == 100 for r in runs.values())
    assert (workdir / "results" / "dnn" / "metrics" / f"{trained}.json").exists()
    assert not list((workdir / "results" / "dnn").rglob("*.ckpt"))
    comparison = read_tsv(workdir / "results" / "comparison" / "comparison.tsv")
    assert [r["side"] for r in comparison] == ["protein"] * 4 + ["network"] * 2
    assert "Trained networks: mean s" in (workdir / "results" / "comparison" / "comparison.md").read_text()
    for name in (
        "overlay",
        "protein_spectra",
        "protein_size_bins",
        "dnn_spectra",
        "dnn_eigengaps",
        "dnn_sweeps",
        "curvature_trace",
        "curvature_lr",
        "curvature_negative",
        "curvature_noise",
    ):
        for ext in ("png", "pdf"):
            assert (workdir / "results" / "plots" / f"{name}.{ext}").stat().st_size > 1000
    curvature = {r["run"]: r for r in read_tsv(workdir / "results" / "curvature" / "runs.tsv")}
    assert set(curvature) == {f"lenet_mnist_sgd_lr0.1_constant_b128_n256_w100_d2_s{s}_e2" for s in (0, 1)}
    assert all(r["n_points"] == 3 and r["hvps"] > 0 for r in curvature.values())
    report = snakemake(workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0 and (workdir / "report.html").stat().st_size > 100_000
    # a rerun has nothing to do
    again = snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_workflow_rejects_bad_config(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["anm"]["cutof"] = 9
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n")
    assert proc.returncode != 0 and "'cutof' was unexpected" in proc.stdout + proc.stderr


def test_noise_study_workflow_end_to_end(tmp_path):
    """workflow/configs/noise_cpu.yaml shrunk to seconds: every rule, the contract's tables."""
    config = yaml.safe_load((ROOT / "workflow" / "configs" / "noise_cpu.yaml").read_text())
    noise = config["noise"]
    noise["toy"].update(repeats=4, equilibrate_steps=50, measure_steps=50, trace_lrs=[0.01, 0.02, 0.03])
    noise["network"].update(n_images=60, width=8, minimum_epochs=100)
    noise["equilibrium"].update(batch_sizes=[5, 20], lrs=[0.05], steps=40, every=5)
    noise["trace"].update(init_seeds=[0, 1], lrs=[0.02, 0.05], steps=40, every=10, top_k=3, refresh=20)
    full = {**yaml.safe_load((ROOT / "config.yaml").read_text()), **config}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(full))
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "noise"
    assert {r["noise"] for r in read_tsv(out / "toy_trace_rate.tsv")} == {"sgd", "isotropic", "none"}
    assert {r["noise"] for r in read_tsv(out / "toy_anticorrelated.tsv")} == {"sgd", "isotropic", "none"}
    (row,) = read_tsv(out / "negative_vs_loss.tsv")
    assert row["n_points"] == 2
    runs = read_tsv(out / "trace_runs.tsv")
    assert {(r["noise"], r["lr"]) for r in runs} >= {("sgd", 0.02), ("gd", 0.05), ("isotropic-topk", 0.05)}
    assert (out / "noise_negative.png").is_file() and (out / "noise.md").is_file()
    assert not (tmp_path / "results" / "protein").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "workflow" / "configs").glob("*.yaml")))
def test_every_shipped_config_dry_runs(tmp_path, name):
    config = {
        **yaml.safe_load((ROOT / "config.yaml").read_text()),
        **yaml.safe_load((ROOT / "workflow" / "configs" / name).read_text()),
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_reproduction_part_and_table(tmp_path):
    """Two tiny experiments (one reusing the other's networks for a test-set Hessian): the
    part table, then the full table with every study row, and records that name their command."""
    config = {
        "pdb": {"enabled": False},
        "dnn": {"enabled": True, "spectrum": {"k": 10, "n_eval": 100}, "sweeps": []},
        "reproduction": {
            "enabled": True,
            "experiments": [
                {
                    "id": "t1-lenet-mnist",
                    "part": "table-1",
                    "seeds": [0, 1],
                    "train": {"model": "fcn", "width": 8, "depth": 1, "n_train": 300, "epochs": 1},
                },
                {
                    "id": "fig21a-test-lr001",
                    "part": "random-labels",
                    "reuse": "t1-lenet-mnist",
                    "seeds": [1],
                    "spectrum": {"eval_split": "test"},
                },
            ],
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    part = tmp_path / "results" / "reproduction" / "parts" / "table-1.tsv"
    proc = snakemake(tmp_path, "results/reproduction/parts/table-1.tsv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["id"] for r in read_tsv(part)] == ["t1-lenet-mnist", "t2-gaps-mnist"]
    assert not (tmp_path / "results" / "reproduction" / "records" / "fig21a-test-lr001_s1.json").exists()
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = {r["id"]: r for r in read_tsv(tmp_path / "results" / "reproduction" / "reproduction.tsv")}
    assert table["t1-lenet-mnist"]["n_seeds"] == 2 and table["fig21a-test"]["n_seeds"] == 1
    assert table["t3-b512"]["n_seeds"] == 0
    records = tmp_path / "results" / "reproduction" / "records"
    record = yaml.safe_load((records / "fig21a-test-lr001_s1.json").read_text())
    train, spectrum = record["command"].split(" && ")
    assert "--seed 1" in train and "--out results/reproduction/models/t1-lenet-mnist_s1.pt" in train
    assert "--eval-split test" in spectrum and "--run fig21a-test-lr001_s1" in spectrum
    assert record["eval_split"] == "test" and record["seconds"] >= record["spectrum_seconds"]
    assert (tmp_path / "results" / "reproduction" / "slope.png").is_file()


def test_label_dimensions_of_the_sweeps(tmp_path):
    config = {
        "pdb": {"enabled": False},
        "dnn": {
            "curvature": {"runs": []},
            "sweeps": [
                {
                    "model": ["lenet"],
                    "dataset": ["mnist"],
                    "epochs": [2],
                    "label_noise": [0.2],
                    "labels": ["true", "shuffled"],
                }
            ],
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", "-p")
    assert proc.returncode == 0, proc.stderr[-2000:]
    trains = [line for line in proc.stdout.splitlines() if "hessian-powerlaw train" in line]
    assert len(trains) == 4  # two label settings, trained and at initialisation
    shuffled = [t for t in trains if "_e2_ln0.2_shuffled.pt" in t]
    assert len(shuffled) == 1 and "--labels shuffled" in shuffled[0] and "--label-noise 0.2" in shuffled[0]
    plain = [t for t in trains if "_e2_ln0.2.pt" in t]
    assert len(plain) == 1 and "--labels true" in plain[0]


@pytest.mark.parametrize("backend, jobs, gpu", [("auto", "2", False), ("cuda", "1", True)])
def test_protein_batches_on_the_gpu_backend(tmp_path, backend, jobs, gpu):
    """With eigen_backend cuda a protein batch is one process that asks for a GPU."""
    data = tmp_path / "pdb"
    data.mkdir()
    shutil.copy(BUNDLED / "1aki.pdb.gz", data)
    config = {"pdb": {"local": str(data)}, "anm": {"eigen_backend": backend}, "dnn": {"enabled": False}}
    config["noise"] = {"enabled": False}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "results" / "pdb").mkdir(parents=True)
    (tmp_path / "results" / "pdb" / "entries.tsv").write_text(f"pdb_id\tpath\n1AKI\t{data / '1aki.pdb.gz'}\n")
    proc = snakemake(tmp_path, "-n", "-p", "results/protein/batches/batch_0.tsv", "--rerun-triggers", "mtime")
    assert proc.returncode == 0, proc.stderr[-2000:]
    command = next(line for line in proc.stdout.splitlines() if "hessian-powerlaw protein " in line)
    assert f"--jobs {jobs} " in command and f"--eigen-backend {backend}" in command
    assert ("gpu=1" in proc.stdout) == gpu


@pytest.mark.parametrize("device, gpu", [("auto", True), ("cpu", False)])
def test_network_jobs_ask_for_a_gpu_unless_pinned_to_the_cpu(tmp_path, device, gpu):
    config = {
        "pdb": {"enabled": False},
        "noise": {"enabled": False},
        "dnn": {
            "device": device,
            "curvature": {"runs": []},
            "sweeps": [{"model": ["lenet"], "dataset": ["mnist"], "epochs": [2]}],
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rule dnn_spectrum" in proc.stdout
    assert ("gpu=1" in proc.stdout) == gpu and ("gpu=0" in proc.stdout) != gpu


def test_a_spectrum_job_on_several_gpus_runs_under_torchrun(tmp_path):
    config = {
        "pdb": {"enabled": False},
        "noise": {"enabled": False},
        "dnn": {
            "device": "cuda",
            "spectrum_gpus": 4,
            "random_init_control": False,
            "curvature": {"runs": []},
            "sweeps": [{"model": ["lenet"], "dataset": ["mnist"], "epochs": [2]}],
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", "-p")
    assert proc.returncode == 0, proc.stderr[-2000:]
    spectrum = proc.stdout[proc.stdout.index("rule dnn_spectrum") :]
    assert "torchrun --standalone --nproc_per_node 4 -m hessian_powerlaw dnn-spectrum" in spectrum
    assert "gpu=4" in spectrum.split("rule ")[1]
