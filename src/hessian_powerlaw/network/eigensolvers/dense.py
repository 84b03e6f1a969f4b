"""The exact spectrum of a small Hessian: the n x n matrix from products with blocks of the
identity, then a dense symmetric eigendecomposition (LAPACK through torch).

For networks up to DENSE_LIMIT parameters (the noise study's 6220-parameter network: 6220
products and one `eigh`, about 15 s on 2 cores). The matrix is checked for non-finite entries
and for symmetry (products that are not a symmetric operator: a model outside the operator's
assumptions), and every eigenvalue is returned, so sums over the spectrum (the trace, the sum
of the negative eigenvalues) are exact up to rounding.
"""

import time

import numpy as np
import torch

from hessian_powerlaw.network.device import available_bytes
from hessian_powerlaw.network.eigensolvers.result import Matmat, SolverError, SolverResult, progress_bar

DENSE_LIMIT = 16384  # parameters: a 2 GiB float64 matrix, eigh in minutes on 2 cores
ASYMMETRY = {torch.float32: 1e-4, torch.float64: 1e-10}


def check_size(n: int, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> None:
    """Refuse, with the reason, a matrix too large to build and decompose."""
    element = torch.tensor([], dtype=dtype).element_size()
    need = 3 * n * n * element  # the matrix, its eigenvectors and LAPACK's workspace
    if n > DENSE_LIMIT:
        raise SolverError(
            f"--solver dense builds the full {n} x {n} Hessian: {n} parameters exceed its limit of "
            f"{DENSE_LIMIT} (memory and time grow as n^2 and n^3); use --solver block"
        )
    if need > 0.8 * available_bytes(device):
        raise SolverError(
            f"--solver dense needs about {need / 2**30:.1f} GiB for the {n} x {n} Hessian on {device}; "
            "use --solver block"
        )


def dense_matrix(
    matmat: Matmat,
    n: int,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    block: int = 512,
    progress: bool = False,
) -> torch.Tensor:
    """H (n, n) from products H @ I[:, i:i+block], symmetrised after the symmetry check."""
    check_size(n, dtype, device)
    bar = progress_bar(n, "dense Hessian", progress)
    columns = []
    for i in range(0, n, block):
        eye = torch.zeros(n, min(block, n - i), dtype=dtype, device=device)
        eye[i : i + eye.shape[1]].fill_diagonal_(1.0)
        columns.append(matmat(eye).to(dtype))
        if bar is not None:
            bar.update(eye.shape[1])
    if bar is not None:
        bar.close()
    h = torch.cat(columns, dim=1)
    if not bool(torch.isfinite(h).all()):
        raise SolverError("the dense Hessian holds NaN or inf: the model's loss is not finite on these data")
    scale = float(torch.linalg.matrix_norm(h))
    asymmetry = float(torch.linalg.matrix_norm(h - h.T)) / scale if scale > 0 else 0.0
    if asymmetry > ASYMMETRY.get(dtype, 1e-4):
        raise SolverError(
            f"the Hessian products are not symmetric (||H - H^T|| / ||H|| = {asymmetry:.1e}): "
            "the operator does not fit this model; try --hessian autograd or --dtype float64"
        )
    return (h + h.T) / 2


def full_spectrum(
    matmat: Matmat,
    n: int,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """All n eigenvalues (n,), descending, as float64 numpy (no eigenvectors: faster)."""
    h = dense_matrix(matmat, n, dtype, device, progress=progress)
    return torch.linalg.eigvalsh(h).flip(0).double().cpu().numpy()


def dense(
    matmat: Matmat,
    n: int,
    k: int,
    tol: float = 1e-3,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    relative_to: str = "value",
) -> SolverResult:
    """Top-k eigenpairs from the full decomposition; `full` holds all n eigenvalues.

    Residuals ||H v - lambda v|| are explicit (from the matrix), relative to |lambda|
    (relative_to='value') or to ||H|| ('norm'); `tol` and `seed` are accepted for the common
    solver signature and unused (the decomposition is exact)."""
    start = time.perf_counter()
    h = dense_matrix(matmat, n, dtype, device, progress=progress)
    values, vectors = torch.linalg.eigh(h)
    values, vectors = values.flip(0), vectors.flip(1)
    top, v = values[:k], vectors[:, :k]
    scale = values.abs().max() if relative_to == "norm" else top.abs()
    residuals = torch.linalg.vector_norm(h @ v - v * top, dim=0) / scale.clamp_min(torch.finfo(dtype).tiny)
    return SolverResult(
        eigenvalues=top.double().cpu().numpy(),
        vectors=v,
        residuals=residuals.double().cpu().numpy(),
        converged=True,
        steps=n,
        seconds=time.perf_counter() - start,
        norm=float(values.abs().max()),
        noise_floor=float(n * torch.finfo(dtype).eps * values.abs().max()),
        full=np.asarray(values.double().cpu().numpy()),
    )
