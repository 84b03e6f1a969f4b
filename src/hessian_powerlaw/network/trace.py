"""Stochastic trace estimators of a symmetric operator given by matrix products (HVPs).

- 'hutchinson': mean of z^T H z over Rademacher probes z (Hutchinson 1989).
- 'hutchpp': Hutch++ (Meyer, Musco, Musco & Woodruff 2021): the trace of H on the range of
  H S (S: Rademacher, a third of the products) exactly, plus Hutchinson on the deflated rest.
  On spectra dominated by a few large eigenvalues (trained networks) it reaches the same error
  with far fewer products.

Both return {'estimator', 'trace', 'stderr', 'hvps', 'probes'}; the standard error is that of
the Hutchinson (residual) part, whose samples are independent. Products go in blocks of `block`.
"""

import copy
import math

import numpy as np
import torch

from hessian_powerlaw.network.eigensolvers.result import Matmat
from hessian_powerlaw.network.operators.base import Operator

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


def hutchinson(
    matmat: Matmat,
    n: int,
    n_hvps: int = 30,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    block: int = 8,
) -> dict:
    """Trace of H from `n_hvps` Rademacher probes."""
    if n_hvps < 2:
        raise ValueError(f"Hutchinson needs at least 2 products for a standard error, got {n_hvps}")
    gen = torch.Generator().manual_seed(seed)
    z = _rademacher(n, n_hvps, gen, dtype, device)
    samples = (z * _apply(matmat, z, block)).sum(0)
    trace, se = _mean_se(samples)
    return {"estimator": "hutchinson", "trace": trace, "stderr": se, "hvps": n_hvps, "probes": n_hvps}


def hutchpp(
    matmat: Matmat,
    n: int,
    n_hvps: int = 30,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    block: int = 8,
) -> dict:
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


def estimate_trace(op: Operator, estimator: str = "hutchpp", n_hvps: int = 30, seed: int = 0) -> dict:
    """Trace estimate of a HessianOperator-like `op` (matmat, n, dtype, device)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown trace estimator {estimator!r} (choose from {', '.join(ESTIMATORS)})")
    run = hutchinson if estimator == "hutchinson" else hutchpp
    return run(op.matmat, op.n, n_hvps, seed=seed, dtype=op.dtype, device=op.device)


def exact_trace(model: torch.nn.Module, x: torch.Tensor, chunk: int = 250) -> float:
    """The exact trace of the mean cross-entropy Hessian of a piecewise-linear network.

    For the networks `operators.sequential.plan` accepts (Conv2d/Linear with ReLU, max-pool),
    the output is linear in every single parameter at fixed masks, so the second derivative of
    the logits along any one parameter is zero and the Hessian's diagonal is that of its
    Gauss-Newton part: tr H = mean_i tr(J_i^T (diag p_i - p_i p_i^T) J_i), J_i the (classes x
    n) Jacobian of image i's logits. Costs one Jacobian per image (no Hessian products); the
    targets, and so label smoothing, do not enter. Refuses other models (use estimate_trace)."""
    from torch.func import functional_call, jacrev, vmap

    from hessian_powerlaw.network.operators.sequential import plan

    plan(model)  # UnsupportedModel for layers with curvature of their own
    model = copy.deepcopy(model).eval()
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits(p, image):
        return functional_call(model, {**p, **buffers}, (image.unsqueeze(0),))[0]

    total = 0.0
    for i in range(0, len(x), chunk):
        images = x[i : i + chunk]
        jac = vmap(jacrev(logits), in_dims=(None, 0))(params, images)  # name -> (N, C, *shape)
        flat = torch.cat([j.flatten(2) for j in jac.values()], dim=2)  # (N, C, n)
        with torch.no_grad():
            p = torch.softmax(vmap(logits, in_dims=(None, 0))(params, images), dim=1)
        total += float((p * (flat**2).sum(2)).sum() - ((p.unsqueeze(2) * flat).sum(1) ** 2).sum())
    return total / len(x)


def deflated_trace(
    matmat: Matmat,
    vectors: torch.Tensor,
    values: np.ndarray,
    n_probes: int = 32,
    seed: int = 0,
    block: int = 16,
) -> dict:
    """Trace of H from a Rayleigh-Ritz run and `n_probes` more products.

    vectors (n, k): orthonormal Ritz vectors with Ritz values `values` (k,), so that
    V^T H V = diag(values) (exact for the Lanczos solvers, to their tolerance for the others).
    tr H = sum(values) + tr((I - P) H (I - P)), P = V V^T, the second term by Hutchinson on
    Rademacher probes projected off V (Hutch++ with the top-k eigenspace as its sketch: the
    large eigenvalues that make plain Hutchinson noisy are counted exactly). n_probes 0: the
    sum of the Ritz values only, with an unknown (nan) error."""
    exact = float(torch.as_tensor(values, dtype=torch.float64).sum())
    if n_probes < 2:
        return {"estimator": "ritz-sum", "trace": exact, "stderr": math.nan, "hvps": 0, "probes": 0}
    gen = torch.Generator().manual_seed(seed + 7001)
    g = _rademacher(vectors.shape[0], n_probes, gen, vectors.dtype, vectors.device)
    g = g - vectors @ (vectors.T @ g)
    g = g - vectors @ (vectors.T @ g)  # twice: the rest must not see the top eigenvalues
    samples = (g * _apply(matmat, g, block)).sum(0)
    rest, se = _mean_se(samples)
    return {
        "estimator": "deflated-hutchinson",
        "trace": exact + rest,
        "stderr": se,
        "hvps": n_probes,
        "probes": n_probes,
    }
