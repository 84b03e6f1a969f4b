"""(Block) Lanczos with full reorthogonalisation that keeps its basis orthonormal on any
Hessian, rank-deficient ones included (see the package doc)."""

import math
import time

import numpy as np
import scipy.linalg
import torch

from hessian_powerlaw.network.eigensolvers.basis_products import coefficients, one_blas_thread, subtract
from hessian_powerlaw.network.eigensolvers.checkpoint import SolverCheckpoint
from hessian_powerlaw.network.eigensolvers.result import (
    Matmat,
    SolverError,
    SolverResult,
    progress_bar,
    steps_for,
)

# A basis column whose new component has norm <= DEPENDENT eps ||H|| is round-off (dependent);
# a Ritz value with |theta| <= NOISE_FLOOR eps ||H|| is zero to the products' working precision.
DEPENDENT = 10
NOISE_FLOOR = 100
# what is left along the basis after Gram-Schmidt is repaired above REPAIR eps sqrt(basis size)
REPAIR = 10
CHECK_EVERY = 8  # a single vector's orthogonality is measured at least every 8th step


def lanczos(matmat: Matmat, n: int, k: int, **kwargs: object) -> SolverResult:
    """Top-k eigenpairs by Lanczos with full reorthogonalisation: block Lanczos with b = 1."""
    return block_lanczos(matmat, n, k, block=1, **kwargs)


def block_lanczos(
    matmat: Matmat,
    n: int,
    k: int,
    tol: float = 1e-3,
    steps_per_k: float = 6.0,
    block: int = 16,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: bool = True,
    relative_to: str | float = "value",
    steps: int | None = None,
    checkpoint: SolverCheckpoint | None = None,
) -> SolverResult:
    """Top-k eigenpairs of the symmetric n x n operator `matmat` ((n, b) -> (n, b) tensors) by
    (block) Lanczos with full reorthogonalisation; a SolverResult with eigenvalues (k,) and
    vectors (n, k).

    Stops when every top-k Ritz pair has residual estimate ||B_m s_i|| / |theta_i| < tol (with
    relative_to='norm', divided by the largest |theta| instead), or after steps_per_k * k + 100
    columns (then converged=False). With `steps`, runs exactly that many columns (SLQ) and
    reports the estimates then. Ritz values at or below the noise floor (NOISE_FLOOR eps ||H||)
    are zero to working precision: they count as converged once their residual is below the floor.
    With a `checkpoint`, the state is saved every `checkpoint.every` seconds and a run of the
    same request on the same operator resumes from it (then the file is removed on return).
    """
    with one_blas_thread(device):
        run = (steps_per_k, block, seed, dtype, device, progress, relative_to, steps, checkpoint)
        return _block_lanczos(matmat, n, k, tol, *run)


def _block_lanczos(
    matmat, n, k, tol, steps_per_k, block, seed, dtype, device, progress, relative_to, steps, checkpoint
):
    max_cols = min(n, steps or steps_for(k, steps_per_k))
    block = min(block, max(1, k // 4), max_cols)  # a block much wider than K wastes products
    check_every = max(10, k // 20) if block == 1 else max(block, k // 10)
    request = {"n": n, "k": k, "block": block, "seed": seed, "dtype": str(dtype), "max_cols": max_cols}
    request.update(tol=float(tol), relative_to=relative_to, steps=steps)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.finfo(dtype).eps
    rows = torch.empty(max_cols, n, dtype=dtype, device=device)  # the basis, one vector per row
    t = np.zeros((max_cols, max_cols))
    start = time.perf_counter()
    saved = _resume(checkpoint, request, matmat, rows, t, gen) if checkpoint is not None else None
    if saved is None:
        q, _ = torch.linalg.qr(_random_block(n, block, gen, dtype, device))
        j, b_prev, checked, norm = 0, None, 0, 0.0
        health = {"orthogonality": 0.0, "replaced": 0}
    else:
        q, b_prev, j, checked, norm, health = saved
    bar = progress_bar(max_cols, f"{'block ' if block > 1 else ''}lanczos top-{k} (b={block})", progress)
    if bar is not None and j:
        bar.update(j)
    converged, estimates, theta, s, top = False, None, None, None, None
    while j + q.shape[1] <= max_cols:
        width = q.shape[1]
        if checkpoint is not None and j and checkpoint.due():
            arrays = {"rows": rows[:j], "q": q, "b_prev": b_prev, "generator": gen.get_state()}
            arrays["t"] = torch.from_numpy(t[: j + width, : j + width])
            scalars = {"j": j, "checked": checked, "norm": norm, "health": health, "first": block}
            checkpoint.save(request, arrays, scalars, time.perf_counter() - start)
        rows[j : j + width] = q.T
        w = matmat(q).to(dtype)
        norm = max(norm, float(torch.linalg.vector_norm(w, dim=0).max()))  # ||H|| >= ||H q_i||
        a = q.T @ w
        a = (a + a.T) / 2
        t[j : j + width, j : j + width] = a.double().cpu().numpy()
        w -= q @ a
        if b_prev is not None:
            w -= rows[j - b_prev.shape[1] : j].T @ b_prev.T
        j += width
        q, r = next_block(w, rows[:j], gen, DEPENDENT * eps * norm, health)
        if bar is not None:
            bar.update(width)
        done = j + width > max_cols
        if (j >= k and j - checked >= check_every and not steps) or done:
            checked = j
            theta, s, top, estimates, converged = _check(t[:j, :j], r, width, k, tol, eps, norm, relative_to)
            if bar is not None:
                bar.set_postfix(worst=f"{estimates.max():.1e}")
            if converged and not steps:
                break
        cols = min(width, max_cols - j)
        if cols <= 0:
            break
        q, r = q[:, :cols], r[:cols]
        t[j : j + cols, j - width : j] = r.double().cpu().numpy()
        t[j - width : j, j : j + cols] = t[j : j + cols, j - width : j].T
        b_prev = r
    if bar is not None:
        bar.close()
    if theta is None:
        raise SolverError(f"Lanczos stopped after {j} columns, before K={k}")
    result = _ritz_result(rows[:j], theta, s, top, estimates, converged, start, block)
    result.noise_floor = NOISE_FLOOR * eps * result.norm
    result.orthogonality, result.replaced = health["orthogonality"], health["replaced"]
    if checkpoint is not None:
        result.earlier_seconds = checkpoint.restored["seconds"]
        result.seconds += result.earlier_seconds
        checkpoint.remove()
    return result


def _resume(checkpoint, request, matmat, rows, t, gen):
    """(q, b_prev, j, checked, norm, health) of a saved run of this request, its basis into
    `rows` and projected matrix into `t` (in place), or None. The first block's products are
    recomputed and compared with the saved ones: a changed model or data starts afresh."""
    loaded = checkpoint.load(request)
    if not checkpoint.agreed(loaded is not None, "another rank of the group could not read it"):
        return None
    arrays, scalars = loaded
    j, first = scalars["j"], scalars["first"]
    rows[:j] = arrays["rows"].to(rows.device, rows.dtype)
    q0 = rows[:first].T
    a0 = q0.T @ matmat(q0).to(rows.dtype)
    same = checkpoint.matches(arrays["t"][:first, :first], (a0 + a0.T) / 2, scalars["norm"])
    if not checkpoint.agreed(same, "another rank's products differ from it"):
        return None
    m = arrays["t"].shape[0]
    t[:m, :m] = arrays["t"].numpy()
    gen.set_state(arrays["generator"])
    checkpoint.resumed(j)
    q = arrays["q"].to(rows.device, rows.dtype)
    b_prev = arrays["b_prev"].to(rows.device, rows.dtype) if "b_prev" in arrays else None
    return q, b_prev, j, scalars["checked"], scalars["norm"], scalars["health"]


def _check(t, r, width, k, tol, eps, norm, relative_to):
    """Ritz values (ascending) and vectors of the projected matrix `t`, the indices of the top
    k, their residual estimates ||R s_i|| / scale and whether all have converged (a value at or
    below the noise floor is converged once its residual is below the floor)."""
    theta, s = _ritz(t, width)
    top = np.argsort(theta)[::-1][:k]
    residual = np.linalg.norm(r.double().cpu().numpy() @ s[-width:, top], axis=0)
    floor = NOISE_FLOOR * eps * max(norm, np.abs(theta).max())
    scale = np.abs(theta[top]) if relative_to == "value" else np.abs(theta).max()
    estimates = residual / np.maximum(scale, floor)
    converged = len(top) == k and bool(np.all(estimates < np.where(scale > floor, tol, 1.0)))
    return theta, s, top, estimates, converged


def _random_block(n, width, gen, dtype, device):
    return torch.randn(n, width, generator=gen, dtype=torch.float64).to(device, dtype)


def _orthogonalize(w, *against):
    """w (n, b) minus its components in the orthonormal rows of each of `against` ((m, n)
    each), twice. The basis is kept by rows so that each of its vectors is contiguous: a
    single vector's projections then read it at full memory bandwidth (3x faster than
    strided columns at n = 2.1M, m = 64; equal at b = 16)."""
    for _ in range(2):  # "twice is enough"
        for basis in against:
            if basis.shape[0]:
                w = subtract(w, basis, coefficients(basis, w))
    return w


def _project_out(w, basis):
    """(w minus its components in the orthonormal rows of `basis` (m, n), whether a second pass
    was needed): one classical Gram-Schmidt pass, and a second only where the first cancelled
    more than 1 - 1/sqrt(2) of a column's norm (Kahan and Parlett's criterion: without such
    cancellation one pass leaves the column orthogonal to working precision). Each pass reads
    the basis twice, the part of a step that grows with the basis; the second is rare in
    Lanczos, whose three-term recurrence has already removed the large components."""
    before = torch.linalg.vector_norm(w, dim=0)
    w = subtract(w, basis, coefficients(basis, w))
    cancelled = bool((torch.linalg.vector_norm(w, dim=0) < before / math.sqrt(2)).any())
    if cancelled:
        w = subtract(w, basis, coefficients(basis, w))
    return w, cancelled


def next_block(
    w: torch.Tensor, basis: torch.Tensor, gen: torch.Generator, floor: float, health: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, R) with w (n, b) = Q R + (a part in span(basis) and round-off): Q orthonormal and
    orthogonal to the orthonormal rows of `basis` (m, n).

    Where the Gram-Schmidt (`_project_out`) cancelled, or for a block (b > 1, where it is one
    BLAS-3 read), or on every CHECK_EVERY-th step, what is left of Q along the basis after the
    QR is measured (`health['orthogonality']`) and, above round-off (REPAIR eps sqrt(m)),
    projected out once more and Q re-factored; elsewhere the criterion guarantees it (a single
    vector's step then reads the basis twice, not three times). A column that was numerically dependent
    (|R_ii| at the noise floor, or mostly in the basis) carries no Krylov information, only
    round-off with components along the basis: it is replaced by a random direction orthogonal
    to everything so far and its row of R set to zero. This is what keeps the basis orthonormal
    past an invariant subspace (a Hessian of rank below the basis size, such as a network with
    dead units).
    """
    w, cancelled = _project_out(w, basis)
    q, r = torch.linalg.qr(w)
    r2 = torch.eye(q.shape[1], dtype=q.dtype, device=q.device)
    if not (cancelled or q.shape[1] > 1 or basis.shape[0] % CHECK_EVERY == 0):
        return _replace_weak(q, r, r2, basis, gen, floor, health)
    c = coefficients(basis, q)
    left = float(c.abs().max()) if c.numel() else 0.0
    health["orthogonality"] = max(health["orthogonality"], left)
    if left > REPAIR * torch.finfo(q.dtype).eps * math.sqrt(basis.shape[0]):
        q, r2 = torch.linalg.qr(subtract(q, basis, c))
        r = r2 @ r
    return _replace_weak(q, r, r2, basis, gen, floor, health)


def _replace_weak(q, r, r2, basis, gen, floor, health):
    """(Q, R) with each numerically dependent column of Q (|R_ii| at the noise floor, or
    mostly in the basis: |R2_ii| < 0.5) replaced by a random orthogonal direction."""
    weak = (torch.diagonal(r).abs() <= floor) | (torch.diagonal(r2).abs() < 0.5)
    if bool(weak.any()):
        count = int(weak.sum())
        health["replaced"] += count
        r[weak] = 0
        keep = q[:, ~weak]
        fresh = _orthogonalize(_random_block(len(q), count, gen, q.dtype, q.device), basis, keep.T)
        fresh = fresh / torch.linalg.vector_norm(fresh, dim=0)
        fresh, _ = torch.linalg.qr(_orthogonalize(fresh, basis, keep.T))
        q[:, weak] = fresh
    return q, r


def _ritz(t, width):
    """Eigenvalues (ascending) and eigenvectors of the projected matrix (tridiagonal when width 1)."""
    if not np.all(np.isfinite(t)):
        raise SolverError("the Lanczos matrix holds NaN or inf values (see the Hessian product)")
    if width == 1:
        return scipy.linalg.eigh_tridiagonal(np.diag(t).copy(), np.diag(t, -1).copy())
    return scipy.linalg.eigh(t)


def _ritz_result(basis, theta, s, top, estimates, converged, start, block=1):
    """The SolverResult of a Lanczos run: the top Ritz pairs of the basis (m, n), one vector
    per row, with residual estimates."""
    return SolverResult(
        eigenvalues=theta[top],
        vectors=basis.T @ torch.as_tensor(s[:, top], dtype=basis.dtype, device=basis.device),
        residuals=estimates,
        converged=converged,
        steps=basis.shape[0],
        seconds=time.perf_counter() - start,
        residual_kind="lanczos estimate",
        norm=float(np.abs(theta).max()),
        block=block,
    )
