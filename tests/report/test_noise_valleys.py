"""The valley experiments' tables and figures from synthetic records with known lines."""

import math

import pytest

from hessian_powerlaw.report import noise_valleys


def path_rows():
    rows = []
    for run, slope in (("a", -0.01), ("b", -0.03)):
        for i, step in enumerate(range(1000, 2001, 250)):
            rows.append(
                {
                    "run": run,
                    "iteration": step,
                    "loss": 0.5,
                    "val_loss": 0.9,
                    "trace": 100 + slope * step,
                    "trace_se": 0.0,
                    "connected_to_next": "true" if i < 4 else "",
                    "steps": 10,
                }
            )
    return rows


def test_path_summary_fits_each_run_and_pools_the_slopes():
    summary = noise_valleys.path_summary(path_rows())
    by_run = {r["run"]: r for r in summary}
    assert by_run["a"]["slope"] == pytest.approx(-0.01) and by_run["b"]["slope"] == pytest.approx(-0.03)
    assert by_run["a"]["n_connected"] == 4 and by_run["a"]["n_points"] == 5
    pooled = by_run["all runs"]
    assert pooled["slope"] == pytest.approx(-0.02) and pooled["slope_se"] == pytest.approx(0.01)
    assert pooled["n_connected"] == 8 and math.isnan(pooled["r2"])


def records():
    grid = [
        {"experiment": "equilibrium", "excess_loss": x, "negative_sum": -40 * x} for x in (0.001, 0.01, 0.1)
    ]
    shifted = [{"excess_loss": x, "negative_sum": -35 * x + 0.001} for x in (0.0, 0.002, 0.02, 0.2)]
    return [*grid, {"experiment": "displacement", "points": shifted}, {"experiment": "toy-valley"}]


def test_negative_fits_one_line_per_experiment_with_its_loss_range():
    fits = {r["experiment"]: r for r in noise_valleys.negative_fits(records())}
    assert set(fits) == {"sgd-grid", "displacement"}
    assert fits["sgd-grid"]["slope"] == pytest.approx(-40) and fits["sgd-grid"]["n_points"] == 3
    assert fits["displacement"]["intercept"] == pytest.approx(0.001)
    assert fits["sgd-grid"]["loss_max"] / fits["sgd-grid"]["loss_min"] == pytest.approx(100)
    assert fits["sgd-grid"]["paper_slope"] == -40.07


def test_figures_are_written(tmp_path):
    written = noise_valleys.write_figures(path_rows(), records(), tmp_path)
    assert len(written) == 3 and all((tmp_path / p.split("/")[-1]).stat().st_size > 1000 for p in written)
