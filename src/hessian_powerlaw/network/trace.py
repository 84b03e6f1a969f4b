"""Stochastic trace estimators of a symmetric operator given by matrix products (HVPs).

- 'hutchinson': mean of z^T H z over Rademacher probes z (Hutchinson 1989).
- 'hutchpp': Hutch++ (Meyer, Musco, Musco & Woodruff 2021): the trace of H on the range of
  H S (S: Rademacher, a third of the products) exactly, plus Hutchinson on the deflated rest.
  On spectra dominated by a few large eigenvalues (trained networks) it reaches the same error
  with far fewer products.

Both return {'estimator', 'trace', 'stderr', 'hvps', 'probes'}; the standard error is that of
the Hutchinson (residual) part, whose samples are independent. Products go in blocks of `block`.
"""

import math

import torch

ESTIMATORS = ("hutchinson", "hutchpp")


def _rademacher(n, m, gen, dtype, device):
    return (torch.randint(0, 2, (n, m), generator=gen, dtype=torch.int8) * 2 - 1).to(device, dtype)


def _apply(matmat, vectors, block):
    return torch.cat([matmat(vectors[:, i : i + block]) for i in range(0, vectors.shape[1], block)], dim=1)


def _mean_se(samples):
    samples = samples.double()
    m = samples.numel()
    se = float(samples.std(unbiased=True)) / math.sqrt(m) if m > 1 else math.inf
    return float(samples.mean()), se


def hutchinson(matmat, n, n_hvps=30, seed=0, dtype=torch.float32, device="cpu", block=8):
    """Trace of H from `n_hvps` Rademacher probes."""
    if n_hvps < 2:
        raise ValueError(f"Hutchinson needs at least 2 products for a standard error, got {n_hvps}")
    gen = torch.Generator().manual_seed(seed)
    z = _rademacher(n, n_hvps, gen, dtype, device)
    samples = (z * _apply(matmat, z, block)).sum(0)
    trace, se = _mean_se(samples)
    return {"estimator": "hutchinson", "trace": trace, "stderr": se, "hvps": n_hvps, "probes": n_hvps}


def hutchpp(matmat, n, n_hvps=30, seed=0, dtype=torch.float32, device="cpu", block=8):
    """Trace of H from `n_hvps` products: n_hvps/3 for the sketch, its image, and residual probes."""
    k = n_hvps // 3
    if k < 1 or n_hvps - 2 * k < 2:
        raise ValueError(f"Hutch++ needs at least 4 products (sketch, image, 2 probes), got {n_hvps}")
    gen = torch.Generator().manual_seed(seed)
    s = _rademacher(n, k, gen, dtype, device)
    q, _ = torch.linalg.qr(_apply(matmat, s, block))
    exact = float(torch.trace(q.T @ _apply(matmat, q, block)))
    g = _rademacher(n, n_hvps - 2 * k, gen, dtype, device)
    g = g - q @ (q.T @ g)
    samples = (g * _apply(matmat, g, block)).sum(0)
    rest, se = _mean_se(samples)
    return {"estimator": "hutchpp", "trace": exact + rest, "stderr": se, "hvps": n_hvps, "probes": g.shape[1]}


def estimate_trace(op, estimator="hutchpp", n_hvps=30, seed=0):
    """Trace estimate of a HessianOperator-like `op` (matmat, n, dtype, device)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown trace estimator {estimator!r} (choose from {', '.join(ESTIMATORS)})")
    run = hutchinson if estimator == "hutchinson" else hutchpp
    return run(op.matmat, op.n, n_hvps, seed=seed, dtype=op.dtype, device=op.device)
