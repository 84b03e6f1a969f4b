"""Top-K eigenvalues of a symmetric operator given by matrix products (Hessians of networks).

- 'block': block Lanczos (b vectors per product, i.e. per pass over the data), full
  reorthogonalisation, no restart: the Krylov basis grows until the top-K Ritz pairs have
  residual estimates ||B_m s_i|| / |theta_i| < tol, so converged pairs are never recomputed.
  Every new block is orthogonalised twice against the basis, factored, then checked and
  repaired by a third pass; numerically dependent columns (an invariant subspace: a Hessian of
  rank below the basis size) are replaced by random orthogonal directions, so the basis stays
  orthonormal on any Hessian. NaN or inf in a product or in the projected matrix stops the run
  with a SolverError saying so.
- 'lanczos': the same with b = 1 (one product per pass over the data).
- 'arpack': scipy.sparse.linalg.eigsh(which='LA') on a LinearOperator (the baseline; top only).
- 'slq': the Ritz values of an m-step Lanczos run from one random start (full
  reorthogonalisation, no convergence test), as stochastic Lanczos quadrature (PyHessian)
  computes them; the residual estimates say how far each is from an eigenvalue.
- 'dense': the full matrix from n products with blocks of the identity and a dense
  `eigh` (small networks only, DENSE_LIMIT parameters): exact, every eigenvalue in `full`.
- 'power': deflated power iteration as PyHessian runs it (one eigenvalue at a time,
  Gram-Schmidt against those found, stop at a relative change < tol or 100 iterations); it
  converges to the largest |lambda|, so on an indefinite Hessian it can return negative ones.

Both return a SolverResult with eigenvalues (descending), Ritz vectors, residuals
||H v - lambda v|| / |lambda| and a convergence flag. With which='SA', Lanczos returns the
bottom-k (ascending) from the top of -H, with residuals relative to ||H|| (the smallest
eigenvalues of a network Hessian crowd around zero, where a relative residual means nothing).
Without full reorthogonalisation a Lanczos run repeats converged eigenvalues ("ghosts"), so none
is offered.
"""

import math
import os

import numpy as np
import torch

from hessian_powerlaw.network.eigensolvers.auto import choose
from hessian_powerlaw.network.eigensolvers.baselines import arpack, power_iteration
from hessian_powerlaw.network.eigensolvers.checkpoint import SolverCheckpoint
from hessian_powerlaw.network.eigensolvers.dense import DENSE_LIMIT, dense, full_spectrum
from hessian_powerlaw.network.eigensolvers.lanczos import NOISE_FLOOR, block_lanczos, lanczos
from hessian_powerlaw.network.eigensolvers.result import (
    SolverError,
    SolverResult,
    basis_bytes,
    check_memory,
    explicit_residuals,
    steps_for,
)
from hessian_powerlaw.network.operators.base import Operator

# the one solver registry: name -> function (slq is Lanczos without a convergence test)
SOLVERS = {
    "lanczos": lanczos,
    "block": block_lanczos,
    "arpack": arpack,
    "slq": lanczos,
    "power": power_iteration,
    "dense": dense,
}
RESUMABLE = ("lanczos", "block", "slq")  # the solvers that save and resume (checkpoint.py)
FIXED_BUDGET = ("slq", "power")  # their values are what a fixed budget gives: no convergence claim
NAMES = (*SOLVERS, "auto")  # auto: block or lanczos, chosen by timing the operator (auto.py)
__all__ = [
    "DENSE_LIMIT",
    "NAMES",
    "NOISE_FLOOR",
    "RESUMABLE",
    "SOLVERS",
    "SolverCheckpoint",
    "SolverError",
    "SolverResult",
    "arpack",
    "basis_bytes",
    "block_lanczos",
    "check_memory",
    "dense",
    "explicit_residuals",
    "full_spectrum",
    "lanczos",
    "power_iteration",
    "steps_for",
    "top_eigenpairs",
]


def _finite_products(matmat):
    """`matmat` that stops the run at the first product holding NaN or inf (every solver)."""
    done = [0]

    def checked(v):
        out = matmat(v)
        if not bool(torch.isfinite(out).all()):
            raise SolverError(
                f"the Hessian product returned NaN or inf after {done[0]} products: the model's loss "
                "is not finite on these data (check the model file, or try --dtype float64)"
            )
        done[0] += v.shape[1]
        return out

    return checked


def _check_request(op, k, solver, tol, which, block_size, slq_steps):
    """SolverError for a request no solver can serve (the checks every solver shares)."""
    if which not in ("LA", "SA"):
        raise SolverError(f"which must be 'LA' (largest) or 'SA' (smallest), got {which!r}")
    if which == "SA" and solver not in ("lanczos", "dense"):
        raise SolverError(
            "the bottom eigenvalues (which='SA') are computed by the lanczos and dense solvers only"
        )
    if solver not in SOLVERS:
        raise SolverError(f"unknown solver {solver!r} (choose from {', '.join(NAMES)})")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise SolverError(f"tol must be a positive finite number, got {tol}")
    if solver == "block" and not (isinstance(block_size, int) and block_size >= 1):
        raise SolverError(f"block_size must be a positive integer, got {block_size}")
    if not 1 <= k < op.n:
        raise SolverError(f"K={k} must be between 1 and the number of parameters ({op.n}) - 1")
    if solver == "slq" and not (slq_steps and slq_steps >= k):
        raise SolverError(f"slq needs slq_steps >= K={k}, got {slq_steps}")


def top_eigenpairs(
    op: Operator,
    k: int,
    solver: str = "lanczos",
    tol: float = 1e-3,
    steps_per_k: float | None = None,
    seed: int = 0,
    verify: bool = False,
    memory_limit: int | None = None,
    progress: bool = True,
    which: str = "LA",
    slq_steps: int | None = None,
    block_size: int = 16,
    checkpoint: "SolverCheckpoint | str | os.PathLike | None" = None,
) -> SolverResult:
    """Top-k (which='LA') or bottom-k ('SA') eigenpairs of an operator (`operators.Operator`:
    matmat on (n, b) blocks, n, dtype, device, counters).

    Returns a SolverResult: eigenvalues (k,) float64 in the operator's units (descending for
    'LA', ascending for 'SA'), vectors (n, k) on the operator's device, residuals (k,) relative
    (see residual_kind), the HVP count and data passes of this call. Checks shared by every
    solver live here: the solver name, 1 <= k < n, tol, block size, the basis memory, and a
    NaN or inf in any product (SolverError). `converged` means every returned pair passed:
    Lanczos residual estimates below tol, and for arpack and power (whose own stopping rules
    do not bound the residual) explicit residuals below sqrt(tol), so that each eigenvalue is
    within sqrt(tol) |lambda| of one of the operator's (Bauer-Fike). With a `checkpoint` (a
    path or a SolverCheckpoint; lanczos, block and slq), the run saves its state there and
    resumes from it; its counts and seconds then cover the whole run."""
    hvp0, passes0 = op.hvp_count, op.data_passes
    if checkpoint is not None and not isinstance(checkpoint, SolverCheckpoint):
        checkpoint = SolverCheckpoint(checkpoint)
    if checkpoint is not None and solver not in (*RESUMABLE, "auto"):
        raise SolverError(f"the {solver} solver cannot resume: a checkpoint is for {', '.join(RESUMABLE)}")
    choice = None
    saved_block = checkpoint.saved_block() if checkpoint is not None and solver == "auto" else None
    if solver == "auto" and which == "SA":
        solver, choice = "lanczos", "the bottom eigenvalues are computed by lanczos"
    elif saved_block is not None:  # what auto chose for the run being resumed
        solver, block_size = ("block" if saved_block > 1 else "lanczos"), saved_block
        choice = f"the choice of the run resumed from {checkpoint.path}"
    elif solver == "auto":  # the measurement's products count in this call's
        _check_request(op, k, "block", tol, which, block_size, slq_steps)
        solver, block_size, choice = choose(op, k, block_size, seed)
    _check_request(op, k, solver, tol, which, block_size, slq_steps)
    steps_per_k = steps_per_k or (6.0 if solver in ("lanczos", "block") else 2.0)
    if solver == "slq":
        steps_per_k = (slq_steps - 100) / k
    element = torch.tensor([], dtype=op.dtype).element_size()
    if solver != "dense":
        check_memory(op.n, k, 0 if solver == "power" else steps_per_k, element, op.device, memory_limit)
    run = SOLVERS[solver]
    matmat = _finite_products(op.matmat if which == "LA" else (lambda v: -op.matmat(v)))
    extra = {"relative_to": "norm"} if which == "SA" else {}
    if solver == "slq":
        extra["steps"] = min(slq_steps, op.n)
    if solver in ("power", "dense"):
        steps_per_k = None
    if solver == "block":
        extra["block"] = block_size
    if checkpoint is not None:
        extra["checkpoint"] = checkpoint
        checkpoint.counters = lambda: {
            "hvp_count": op.hvp_count - hvp0,
            "data_passes": op.data_passes - passes0,
        }
    result = run(
        matmat,
        op.n,
        k,
        tol=tol,
        **({} if steps_per_k is None else {"steps_per_k": steps_per_k}),
        seed=seed,
        dtype=op.dtype,
        device=op.device,
        progress=progress,
        **extra,
    )
    scale = None
    if which == "SA":
        result.eigenvalues = -result.eigenvalues
        result.full = None if result.full is None else -result.full[::-1]
        result.residual_kind = "lanczos estimate, relative to ||H||"
        scale = result.norm
    if verify and result.residual_kind != "explicit":
        result.residuals = explicit_residuals(op.matmat, result.vectors, result.eigenvalues, scale=scale)
        result.residual_kind = "explicit"
    if solver in ("arpack", "power"):  # their own stopping rules do not bound the residuals
        result.converged = bool(result.converged and np.max(result.residuals) <= math.sqrt(tol))
    result.choice = choice and f"{solver}: {choice}"
    result.hvp_count = op.hvp_count - hvp0 + (checkpoint.restored["hvp_count"] if checkpoint else 0)
    result.data_passes = op.data_passes - passes0 + (checkpoint.restored["data_passes"] if checkpoint else 0)
    return result
