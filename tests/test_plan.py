"""The workflow's plan as pure functions: run names, expansion and targets, without Snakemake."""

import pytest

from conftest import ROOT
from hessian_powerlaw import plan
from hessian_powerlaw.config import load_config, validate


def _config(**changes):
    config = validate({}, source="test")
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    return validate(config, source="test")


def test_run_names_cover_every_sweep_combination_and_the_initialisation():
    config = _config()
    sweep = {
        "model": ["lenet", "fcn"],
        "dataset": ["mnist"],
        "optimizer": ["sgd"],
        "batch_size": [128],
        "n_train": [0],
        "width": [100],
        "depth": [0, 2],
        "seed": [0],
        "epochs": [50],
        "label_noise": [0.2],
        "k": 50,
    }
    config["dnn"] = {**config["dnn"], "sweeps": [sweep], "random_init_control": True}
    runs = plan.dnn_runs(validate(config, source="test"))
    assert len(runs) == 2 * 2 * 2 and set(runs.values()) == {50}
    assert "fcn_mnist_sgd_b128_n0_w100_d0_s0_e50_ln0.2" in runs
    assert "fcn_mnist_sgd_b128_n0_w100_d0_s0_e0_ln0.2" in runs
    assert plan.trained_runs(runs) == [r for r in runs if "_e50" in r]


@pytest.mark.parametrize("noise, labels", [(None, None), (0.2, None), (None, "shuffled"), (0.6, "shuffled")])
def test_labelset_round_trips(noise, labels):
    suffix = plan.labelset(noise, labels)
    expected = {**({"label_noise": noise} if noise else {}), **({"labels": labels} if labels else {})}
    assert plan.label_settings(suffix) == expected


def test_k_becomes_the_option_tables_spectrum_k_in_one_place():
    assert plan.spectrum_settings({"k": 300, "name": "exact", "tol": 0.01}) == {
        "spectrum_k": 300,
        "tol": 0.01,
    }


def test_final_outputs_follow_the_enabled_sections():
    everything = plan.final_outputs(load_config(ROOT / "config.yaml"))
    assert "results/protein/proteins.tsv" in everything and "results/dnn/dnn.tsv" in everything
    nothing = _config(pdb={"enabled": False}, dnn={"enabled": False}, noise={"enabled": False})
    assert plan.final_outputs(nothing) == []


def test_reproduction_experiments_expand_to_records_and_parts():
    config = load_config(ROOT / "workflow" / "configs" / "calibrate_study.yaml")
    found = plan.experiments(config)
    records = plan.repro_records(config)
    assert len(records) == sum(len(e["seeds"]) for e in found.values() if "protein" not in e)
    assert plan.repro_records(config, "depth") == [
        f"results-calibrate/reproduction/records/cal-fcn-d{d}-w100_s0.json" for d in range(5)
    ]
    reused = next(e for e in found.values() if e.get("reuse"))
    assert plan.trained_experiment(config, reused["id"]) == reused["reuse"]
    parts = {p.split("/")[-1] for p in plan.final_outputs(config) if "/parts/" in p}
    assert parts == {f"{e['part']}.tsv" for e in found.values()}


def test_noise_records_name_every_run():
    config = _config()
    paths = plan.noise_records(config)
    trace = config["noise"]["trace"]
    n_trace = (2 * len(trace["lrs"]) + 2 + (2 if trace["compare_lr"] not in trace["lrs"] else 0)) * len(
        trace["init_seeds"]
    )
    assert sum("/trace/" in p for p in paths) == n_trace
    assert len(paths) == len(set(paths))
