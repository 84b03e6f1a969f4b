"""The solvers users compare against: ARPACK (scipy's eigsh) and PyHessian's deflated power
iteration."""

import time

import numpy as np
import scipy.sparse.linalg
import torch

from hessian_powerlaw.network.eigensolvers.result import (
    Matmat,
    SolverResult,
    explicit_residuals,
    progress_bar,
)


def arpack(
    matmat: Matmat,
    n: int,
    k: int,
    tol: float = 1e-3,
    steps_per_k: float = 2.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SolverResult:
    """Top-k eigenpairs by ARPACK (implicitly restarted Lanczos), residuals checked explicitly."""
    ncv = min(n, max(int(steps_per_k * k) + 1, k + 20))
    v0 = np.random.default_rng(seed).standard_normal(n)
    bar = progress_bar(None, f"arpack top-{k}", progress)

    def apply(x):
        x = torch.as_tensor(np.asarray(x).reshape(n, -1), dtype=dtype, device=device)
        if bar is not None:
            bar.update(x.shape[1])
        return matmat(x).double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((n, n), matvec=apply, matmat=apply, dtype=np.float64)
    start = time.perf_counter()
    converged = True
    try:
        values, vecs = scipy.sparse.linalg.eigsh(op, k=k, which="LA", tol=tol, ncv=ncv, v0=v0)
    except scipy.sparse.linalg.ArpackNoConvergence as err:
        values, vecs, converged = err.eigenvalues, err.eigenvectors, False
    if bar is not None:
        bar.close()
    order = np.argsort(values)[::-1]
    vectors = torch.as_tensor(vecs[:, order], dtype=dtype, device=device)
    residuals = explicit_residuals(matmat, vectors, values[order])
    return SolverResult(
        eigenvalues=values[order],
        vectors=vectors,
        residuals=residuals,
        converged=converged and len(values) == k,
        steps=0,
        seconds=time.perf_counter() - start,
    )


def power_iteration(
    matmat: Matmat,
    n: int,
    k: int,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SolverResult:
    """PyHessian's deflated power iteration: the k eigenvalues of largest |lambda|, one at a time."""
    gen = torch.Generator().manual_seed(seed)
    found, values, converged = [], [], True
    bar = progress_bar(None, f"power iteration top-{k}", progress)
    start = time.perf_counter()
    for _ in range(k):
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(device, dtype)
        value, done = None, False
        for _ in range(max_iter):
            for u in found:
                v -= torch.dot(v, u) * u
            v /= torch.linalg.vector_norm(v)
            hv = matmat(v[:, None])[:, 0]
            new = float(torch.dot(hv, v))
            if bar is not None:
                bar.update(1)
            v = hv
            done = value is not None and abs(new - value) / (abs(value) + 1e-6) < tol
            value = new
            if done:
                break
        converged &= done
        for u in found:
            v -= torch.dot(v, u) * u
        found.append(v / torch.linalg.vector_norm(v))
        values.append(value)
    if bar is not None:
        bar.close()
    vectors = torch.stack(found, dim=1)
    order = np.argsort(values)[::-1]
    values = np.asarray(values)[order]
    vectors = vectors[:, torch.as_tensor(order.copy())]
    return SolverResult(
        eigenvalues=values,
        vectors=vectors,
        residuals=explicit_residuals(matmat, vectors, values),
        converged=converged,
        steps=0,
        seconds=time.perf_counter() - start,
    )
