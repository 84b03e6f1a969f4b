"""The noise study's network experiments as records of plain numbers (one JSON each).

- `equilibrium`: SGD from a minimum at one (batch size, lr), then the exact, full Hessian
  spectrum of the end state (dense, float64): the sum of all negative eigenvalues, the trace,
  the loss, and whether the loss was flat over the last part of the run (paper Fig. 2a).
- `displacement`: the mechanism behind Fig. 2a tested directly: a minimum displaced along its
  non-degenerate Hessian directions by controlled amounts, the full spectrum at every point.
- `trace_run`: the exact trace every few steps along constant-rate noisy descent from a
  minimum, and its rate (least-squares slope per step) after the first part of the run
  (paper Fig. 3 and the trace rate against lr^2).
"""

import os
import time

import numpy as np
import torch

from hessian_powerlaw.network.eigensolvers import full_spectrum
from hessian_powerlaw.network.eigensolvers.dense import dense_matrix
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.noise.flat import FlatLoss
from hessian_powerlaw.network.noise.small_net import (
    TrainingError,
    data_of,
    descend,
    flatness,
    smoothing_floor,
)
from hessian_powerlaw.network.operators import make_operator
from hessian_powerlaw.network.spectrum import spectrum_sums
from hessian_powerlaw.regression import linear_fit

RUN_META = ("init_seed", "n_params", "n_train_used", "label_smoothing", "pool", "width")


def equilibrium(
    minimum_path: str | os.PathLike,
    batch_size: int,
    lr: float,
    steps: int = 20000,
    every: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """SGD at (batch_size, lr) from a minimum, then the full spectrum of the end state.

    Parameters
    ----------
    minimum_path : str or os.PathLike
        A model file of `noise-minimum`.
    batch_size : int
        SGD's batch size.
    lr : float
        SGD's constant learning rate.
    steps : int, default 20000
        SGD steps.
    every : int, default 200
        Steps between loss measurements.
    seed : int, default 0
        Seed of the batches.
    progress : bool, default False
        A progress bar on stderr.

    Returns
    -------
    dict
        The 'equilibrium' record (`report.noise_records.RECORD_KEYS`): losses, the excess loss over the
        smoothing floor, whether the loss had levelled off, and the spectrum's sums.
    """
    clock = time.perf_counter()
    model, meta, history, data = descend(
        minimum_path, "sgd", lr, steps, batch_size=batch_size, every=every, seed=seed
    )
    x, y = data["train"]
    op = make_operator(model, x, y, dtype=torch.float64, label_smoothing=meta["label_smoothing"])
    values = full_spectrum(op.matmat, op.n, torch.float64, progress=progress)
    drift, flat = flatness(history["excess_loss"])
    loss = op.loss()
    return {
        "experiment": "equilibrium",
        "minimum": str(minimum_path),
        **{k: meta.get(k) for k in RUN_META},
        "batch_size": batch_size,
        "lr": float(lr),
        "steps": steps,
        "seed": seed,
        "train_loss": loss,
        "excess_loss": loss - smoothing_floor(meta["label_smoothing"], data["classes"]),
        "loss_drift": drift,
        "equilibrated": bool(flat),
        **spectrum_sums(values),
        "lambda_max": float(values[0]),
        "noise_floor": float(op.n * np.finfo(float).eps * np.abs(values).max()),
        "history": history,
        "seconds": round(time.perf_counter() - clock, 2),
    }


def trace_run(
    minimum_path: str | os.PathLike,
    noise: str,
    lr: float,
    batch_size: int = 25,
    steps: int = 5000,
    every: int = 250,
    seed: int = 0,
    top_k: int = 20,
    refresh: int = 500,
    rate_from: float = 0.2,
) -> dict:
    """The exact Hessian trace along noisy descent from a minimum.

    Parameters
    ----------
    minimum_path : str or os.PathLike
        A model file of `noise-minimum`.
    noise : str
        One of DESCENT_NOISES: 'sgd', 'gd', 'isotropic' or 'isotropic-topk' (`small_net.descend`).
    lr : float
        The constant learning rate.
    batch_size : int, default 25
        The minibatch size (and the size the isotropic noise is matched to).
    steps : int, default 5000
        Descent steps.
    every : int, default 250
        Steps between trace measurements.
    seed : int, default 0
        Seed of the noise.
    top_k : int, default 20
        Dimension of the top-eigenvector subspace of 'isotropic-topk'.
    refresh : int, default 500
        Steps between recomputations of that subspace.
    rate_from : float, default 0.2
        The trace rate is fitted from this fraction of the run on (after the early phase).

    Returns
    -------
    dict
        The 'trace-run' record (`report.noise_records.RECORD_KEYS`): the trace history and its rate per
        step.
    """
    marks = [i for i in range(0, steps + 1, every)] + ([steps] if steps % every else [])
    if sum(m >= rate_from * steps for m in marks) < 3:
        raise TrainingError(
            f"the trace rate needs at least 3 measurements after {rate_from:.0%} of the run; "
            f"{steps} steps measured every {every} give fewer: lower --every or --rate-from"
        )
    clock = time.perf_counter()
    _, meta, history, _ = descend(
        minimum_path, noise, lr, steps, batch_size, every, seed, top_k=top_k, refresh=refresh, trace=True
    )
    step = np.asarray(history["step"], dtype=float)
    trace = np.asarray(history["trace"])
    later = step >= rate_from * steps
    fit = linear_fit(step[later], trace[later])
    return {
        "experiment": "trace-run",
        "minimum": str(minimum_path),
        **{k: meta.get(k) for k in RUN_META},
        "noise": noise,
        "lr": float(lr),
        "batch_size": batch_size,
        "steps": steps,
        "seed": seed,
        "top_k": top_k if noise == "isotropic-topk" else None,
        "refresh": refresh if noise == "isotropic-topk" else None,
        "rate_from": rate_from,
        "trace_start": float(trace[0]),
        "trace_end": float(trace[-1]),
        "trace_rate": fit["slope"],
        "trace_rate_se": fit["slope_se"],
        "excess_loss_end": history["excess_loss"][-1],
        "history": history,
        "seconds": round(time.perf_counter() - clock, 2),
    }


def displacement(
    minimum_path: str | os.PathLike, scales: list[float], seed: int = 0, rel_cut: float = 1e-3
) -> dict:
    """The full spectrum of a minimum displaced along one direction of its non-degenerate subspace.

    The direction is delta = sum_i z_i v_i / sqrt(lambda_i), z ~ N(0, 1), over the modes with
    eigenvalues above `rel_cut` times the largest: every non-degenerate mode gets the same share
    of the quadratic loss rise (as at equilibrium under SGD-like noise), scaled so that
    delta^T H delta / 2 = 1: a displacement by eps raises the loss by about eps^2.

    Parameters
    ----------
    minimum_path : str or os.PathLike
        A model file of `noise-minimum`.
    scales : list of float
        The displacements eps.
    seed : int, default 0
        Seed of z.
    rel_cut : float, default 1e-3
        Modes below this fraction of the largest eigenvalue count as degenerate.

    Returns
    -------
    dict
        The record; its 'points' hold, per scale, the loss, its excess over the smoothing floor,
        its rise over the minimum, the first-order part of that rise (eps g.delta, g the gradient
        at the minimum: what a minimum reached only approximately adds to the quadratic eps^2)
        and the negative-eigenvalue sum (`spectrum.spectrum_sums`).
    """
    scales = [float(e) for e in scales]
    if not scales or not all(np.isfinite(e) and e >= 0 for e in scales):
        raise TrainingError(f"scales must be finite and >= 0, got {scales}")
    clock = time.perf_counter()
    model, meta = load_model(minimum_path)
    data = data_of(meta)
    smoothing = meta.get("label_smoothing", 0.0)
    flat = FlatLoss(model, *data["train"], smoothing)
    floor = smoothing_floor(smoothing, data["classes"])

    def spectrum_at(theta):
        op = make_operator(flat.module(theta), flat.x, flat.y, dtype=torch.float64, label_smoothing=smoothing)
        return dense_matrix(op.matmat, op.n, torch.float64)

    hessian = spectrum_at(flat.theta0)
    values, vectors = torch.linalg.eigh(hessian)
    keep = values > rel_cut * values.max()
    z = torch.randn(int(keep.sum()), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    delta = vectors[:, keep] @ (z / values[keep].sqrt())
    delta = (delta * (2.0 / float(delta @ hessian @ delta)) ** 0.5).numpy()
    base = flat.loss(flat.theta0)
    slope = float(flat.gradient(flat.theta0) @ delta)
    points = []
    for eps in scales:
        theta = flat.theta0 + eps * delta
        sums = spectrum_sums(torch.linalg.eigvalsh(spectrum_at(theta)).numpy())
        loss = flat.loss(theta)
        points.append(
            {
                "scale": eps,
                "train_loss": loss,
                "excess_loss": loss - floor,
                "loss_rise": loss - base,
                "linear_rise": eps * slope,
                **sums,
            }
        )
    return {
        "experiment": "displacement",
        "minimum": str(minimum_path),
        **{k: meta.get(k) for k in RUN_META},
        "seed": seed,
        "rel_cut": rel_cut,
        "n_nondegenerate": int(keep.sum()),
        "minimum_excess_loss": base - floor,
        "points": points,
        "seconds": round(time.perf_counter() - clock, 2),
    }
