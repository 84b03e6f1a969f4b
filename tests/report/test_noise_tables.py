"""The noise study's tables from synthetic records with known answers, and the contract's files."""

import json
import math

import pytest

from hessian_powerlaw import cli
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.report import noise


def toy(model, noise_model, lr, rate, se=1e-6, measure_steps=1000):
    return {
        "experiment": "toy-valley",
        "model": model,
        "noise": noise_model,
        "lr": lr,
        "repeats": 10,
        "measure_steps": measure_steps,
        "equilibrate_steps": 1000,
        "trace_rate": rate,
        "trace_rate_se": se,
        "predicted_trace_rate": rate * 1.01,
        "predicted_logdet_rate": -rate,
        "trace_change": rate * measure_steps,
        "trace_change_se": se * measure_steps,
        "logdet_change": -rate * measure_steps,
        "logdet_change_se": se * measure_steps,
        "left_region": 0,
        "trajectory": {
            "step": [0, 1000, 2000],
            "trace": [5, 4.9, 4.8],
            "logdet": [1, 0.9, 0.8],
            "loss": [0, 0, 0],
        },
    }


def point(batch_size, lr, loss, slope=-40.0, intercept=1e-4, flat=True):
    return {
        "experiment": "equilibrium",
        "batch_size": batch_size,
        "lr": lr,
        "excess_loss": loss,
        "train_loss": loss + 0.5,
        "negative_sum": slope * loss + intercept,
        "n_negative": 100,
        "lambda_min": -0.01,
        "trace": 90.0,
        "loss_drift": 0.01,
        "equilibrated": flat,
    }


def trace_run(noise_model, lr, init, rate):
    return {
        "experiment": "trace-run",
        "noise": noise_model,
        "lr": lr,
        "init_seed": init,
        "trace_rate": rate,
        "trace_start": 90.0,
        "trace_end": 90.0 + 5000 * rate,
        "history": {"step": [0, 2500, 5000], "trace": [90.0, 90 + 2500 * rate, 90 + 5000 * rate]},
    }


def records():
    out = [toy("trace", "sgd", lr, -13 * 0.019 * lr**2 + 1e-7) for lr in (0.01, 0.02, 0.03, 0.05)]
    out += [toy("trace", "none", lr, 0.0, se=0.0) for lr in (0.01, 0.02, 0.03, 0.05)]
    out += [toy("anticorrelated", "sgd", 0.03, -3e-5), toy("anticorrelated", "isotropic", 0.03, 2e-5)]
    out += [point(s, lr, 0.001 * s * lr, flat=s < 100) for s in (5, 25, 250) for lr in (0.01, 0.1)]
    for init in range(3):
        for lr in (0.01, 0.02, 0.05):
            out.append(trace_run("gd", lr, init, 0.01 * lr))
            out.append(trace_run("sgd", lr, init, 0.01 * lr - 2.0 * lr**2 + 1e-4 * init))
    return out


def test_toy_rate_fit_recovers_the_slope_and_gd_is_flat():
    rows = noise.toy_trace_rate(noise.toy_rows(records()))
    by = {r["noise"]: r for r in rows}
    assert by["sgd"]["slope"] == pytest.approx(-13 * 0.019, rel=1e-9)
    assert by["sgd"]["intercept"] == pytest.approx(1e-7, rel=1e-6)
    assert by["sgd"]["r2"] == pytest.approx(1.0) and by["sgd"]["n_lr"] == 4
    assert by["sgd"]["predicted_slope"] == pytest.approx(-13 * 0.019 * 1.01, rel=1e-9)
    assert by["none"]["slope"] == 0.0 and math.isnan(by["none"]["r2"])


def test_negative_vs_loss_recovers_a_known_line():
    row = noise.negative_vs_loss(noise.negative_points(records()))
    assert row["slope"] == pytest.approx(-40.0) and row["intercept"] == pytest.approx(1e-4)
    assert row["n_points"] == 6 and row["n_equilibrated"] == 4
    assert row["loss_min"] == pytest.approx(0.001 * 5 * 0.01) and row["loss_max"] == pytest.approx(
        0.001 * 250 * 0.1
    )
    assert row["paper_slope"] == -40.07


def test_trace_rows_pair_sgd_with_gd_from_the_same_minimum():
    rows = {(r["noise"], r["lr"]): r for r in noise.trace_rows(records())}
    sgd = rows[("sgd", 0.05)]
    assert sgd["n_inits"] == 3
    assert sgd["noise_rate"] == pytest.approx(-2.0 * 0.05**2 + 1e-4)  # mean of the paired differences
    assert math.isnan(rows[("gd", 0.05)]["noise_rate"])
    fits = {f["y"]: f for f in noise.trace_rate_fits(list(rows.values()))}
    assert fits["sgd noise_rate"]["slope"] == pytest.approx(-2.0, rel=1e-9)
    assert fits["sgd noise_rate"]["n_lr"] == 3


def test_noise_tables_command_writes_the_contract_files(tmp_path, capsys):
    paths = []
    for i, rec in enumerate(records()):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(rec))
        paths.append(str(path))
    out = tmp_path / "noise"
    assert cli.main(["noise-tables", *paths, "--out-dir", str(out)]) == 0
    contract = {
        "toy_trace_rate": ["noise", "slope", "slope_se", "intercept", "intercept_se", "r2", "n_lr"],
        "toy_anticorrelated": [
            "noise",
            "trace_change",
            "trace_change_se",
            "logdet_change",
            "logdet_change_se",
        ],
        "negative_vs_loss": [
            "slope",
            "slope_se",
            "intercept",
            "intercept_se",
            "r2",
            "n_points",
            "loss_min",
            "loss_max",
        ],
    }
    for stem, columns in contract.items():
        rows = read_tsv(out / f"{stem}.tsv")
        assert set(columns) <= set(rows[0]), stem
    assert len(read_tsv(out / "toy_trace_rate.tsv")) == 2
    assert (
        len(read_tsv(out / "toy_anticorrelated.tsv")) == 2
        and len(read_tsv(out / "negative_vs_loss.tsv")) == 1
    )
    md = (out / "noise.md").read_text()
    assert "paper: slope -40.07" in md and "Anticorrelated valley" in md
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli.main(["noise-tables", str(bad), "--out-dir", str(out)]) == 2
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"experiment": "toy-valley", "model": "trace"}))
    assert cli.main(["noise-tables", str(partial), "--out-dir", str(out)]) == 2
    assert "partial.json: not a noise-study record (lacks noise, lr" in capsys.readouterr().err


def test_noise_plots_command_draws_every_figure(tmp_path):
    paths = []
    for i, rec in enumerate(records()):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(rec))
        paths.append(str(path))
    assert cli.main(["noise-plots", *paths, "--out-dir", str(tmp_path / "fig")]) == 0
    from hessian_powerlaw.report.noise_figures import FIGURES

    for name in FIGURES:
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 1000
