"""Small synthetic inputs of the report commands, made without torch: network records with their
spectra (a Pareto sample with a known exponent, fitted by the shared fit) and training metrics
with curvature measurements."""

import json

import numpy as np

from hessian_powerlaw.fit import power_law_fit
from hessian_powerlaw.io import save_npy
from hessian_powerlaw.records import GAP_FIT_KEYS, NETWORK_KEYS

SPEC = {
    "model": "lenet",
    "dataset": "mnist",
    "optimizer": "sgd",
    "schedule": "constant",
    "batch_size": 128,
    "n_train": 1000,
    "width": 100,
    "depth": 2,
    "epochs": 8,
    "lr": 0.05,
    "seed": 0,
}


def pareto(n, beta, seed=0):
    """n values (descending) of a power-law density x^-beta above 1."""
    u = np.random.default_rng(seed).random(n)
    return np.sort((1 - u) ** (-1 / (beta - 1)))[::-1]


def network_record(run, values, k, epochs=50):
    record = dict.fromkeys(NETWORK_KEYS)
    record.update({**SPEC, "run": run, "epochs": epochs, "variant": "spectrum", "n_modes": len(values)})
    record.update(power_law_fit(values, k))
    gaps = -np.diff(values)
    gap = power_law_fit(gaps, int(np.count_nonzero(gaps > 0)), compare=False)
    record.update({f"gap_{key}": gap[key] for key in GAP_FIT_KEYS}, status="ok", reason=None)
    return record


def write_network(folder, run, beta, k=300, epochs=50, seed=0):
    """`folder/run.json` and `.npy` (eigenvalues, residuals); returns the JSON path."""
    values = pareto(3 * k, beta, seed)[:k]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}.json"
    path.write_text(json.dumps(network_record(run, values, k, epochs)))
    save_npy(path.with_suffix(".npy"), np.stack([values, np.zeros_like(values)]))
    return path


def write_metrics(folder, name, optimizer="sgd", lr=0.05, seed=0, rate=-0.5):
    """A finished run's metrics whose trace falls by `rate` per epoch (8 steps per epoch)."""
    spec = {**SPEC, "optimizer": optimizer, "lr": lr, "seed": seed}
    curvature = []
    for epoch in range(0, 9, 2):
        loss = 1.0 / (1 + epoch)
        curvature.append(
            {
                "epoch": epoch,
                "trace": 100 + rate * epoch,
                "trace_stderr": 1.0,
                "lambda_max": 10.0 - 0.1 * epoch,
                "logdet_top": 5.0 - 0.2 * epoch,
                "neg_sum": -2.0 * loss,
                "train_loss": loss,
                "hvps": 40,
                "top": [10.0, 5.0],
                "bottom": [-2.0 * loss, 0.0],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"spec": spec, "final": {"n_train_used": 1000}, "curvature": curvature}))
    return path
