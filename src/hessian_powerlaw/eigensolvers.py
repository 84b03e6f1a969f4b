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
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

SOLVERS = ("lanczos", "block", "arpack", "slq", "power")


class SolverError(RuntimeError):
    """A run that cannot start (memory) or was asked something impossible."""


@dataclass
class SolverResult:
    eigenvalues: np.ndarray
    vectors: torch.Tensor = field(repr=False)
    residuals: np.ndarray
    converged: bool
    steps: int
    hvp_count: int = 0
    data_passes: int = 0
    seconds: float = 0.0
    residual_kind: str = "explicit"
    norm: float = 0.0  # max |Ritz value| seen: an estimate of ||H|| (lanczos)
    block: int = 1  # vectors per product (block Lanczos: min(requested, K/4))
    noise_floor: float = 0.0  # |lambda| at or below this is zero to working precision (Lanczos)
    orthogonality: float = 0.0  # largest |basis^T q| left by block Gram-Schmidt, then repaired
    replaced: int = 0  # numerically dependent basis columns replaced by random directions


# A basis column whose new component has norm <= DEPENDENT eps ||H|| is round-off (dependent);
# a Ritz value with |theta| <= NOISE_FLOOR eps ||H|| is zero to the products' working precision.
DEPENDENT = 10
NOISE_FLOOR = 100


def basis_bytes(n, k, steps_per_k, element_size):
    """Memory of the Krylov basis (n x steps) plus the K Ritz vectors."""
    return n * (steps_for(k, steps_per_k) + k) * element_size


def steps_for(k, steps_per_k):
    return int(math.ceil(steps_per_k * k)) + 100


def available_bytes(device):
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    import psutil

    return psutil.virtual_memory().available


def check_memory(n, k, steps_per_k, element_size, device, limit=None):
    """Refuse, naming the K that fits, when the basis would not fit in memory."""
    budget = 0.8 * (available_bytes(device) if limit is None else limit)
    need = basis_bytes(n, k, steps_per_k, element_size)
    if need > budget:
        fits = int(budget / (n * element_size) - 100) // int(math.ceil(steps_per_k + 1))
        raise SolverError(
            f"top-{k} needs about {need / 2**30:.1f} GiB for its Krylov basis ({n} parameters x "
            f"{steps_for(k, steps_per_k)} vectors) but {budget / 2**30:.1f} GiB is usable on {device}; "
            + (f"K <= {fits} would fit" if fits > 0 else "no K fits on this device")
        )


def explicit_residuals(matmat, vectors, values, block=32, scale=None):
    """||H v_i - lambda_i v_i|| / |lambda_i| (or / `scale`) with products in blocks of `block`."""
    out = []
    for i in range(0, vectors.shape[1], block):
        v = vectors[:, i : i + block]
        lam = torch.as_tensor(values[i : i + block], dtype=v.dtype, device=v.device)
        r = matmat(v) - v * lam
        norm = lam.abs() if scale is None else scale
        out.append((torch.linalg.vector_norm(r, dim=0) / norm).cpu().numpy())
    return np.concatenate(out).astype(float)


def lanczos(matmat, n, k, block=1, **kwargs):
    """Top-k eigenpairs by Lanczos with full reorthogonalisation: block Lanczos with b = 1."""
    return block_lanczos(matmat, n, k, block=1, **kwargs)


def block_lanczos(
    matmat,
    n,
    k,
    tol=1e-3,
    steps_per_k=6.0,
    block=16,
    seed=0,
    dtype=torch.float32,
    device="cpu",
    progress=True,
    relative_to="value",
    steps=None,
):
    """Top-k eigenpairs by (block) Lanczos with full reorthogonalisation (see the module doc).

    Stops when every top-k Ritz pair has residual estimate ||B_m s_i|| / |theta_i| < tol (with
    relative_to='norm', divided by the largest |theta| instead), or after steps_per_k * k + 100
    columns (then converged=False). With `steps`, runs exactly that many columns (SLQ) and
    reports the estimates then. Ritz values at or below the noise floor (NOISE_FLOOR eps ||H||)
    are zero to working precision: they count as converged once their residual is below the floor.
    """
    max_cols = min(n, steps or steps_for(k, steps_per_k))
    block = min(block, max(1, k // 4), max_cols)  # a block much wider than K wastes products
    check_every = max(10, k // 20) if block == 1 else max(block, k // 10)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.finfo(dtype).eps
    basis = torch.empty(n, max_cols, dtype=dtype, device=device)
    t = np.zeros((max_cols, max_cols))
    q = _random_block(n, block, gen, dtype, device)
    q, _ = torch.linalg.qr(q)
    bar = _bar(max_cols, f"{'block ' if block > 1 else ''}lanczos top-{k} (b={block})", progress)
    start, j, b_prev, checked, norm = time.perf_counter(), 0, None, 0, 0.0
    health = {"orthogonality": 0.0, "replaced": 0}
    converged, estimates, theta, s, top = False, None, None, None, None
    while j + q.shape[1] <= max_cols:
        width = q.shape[1]
        basis[:, j : j + width] = q
        w = matmat(q).to(dtype)
        norm = max(norm, float(torch.linalg.vector_norm(w, dim=0).max()))  # ||H|| >= ||H q_i||
        a = q.T @ w
        a = (a + a.T) / 2
        t[j : j + width, j : j + width] = a.double().cpu().numpy()
        w -= q @ a
        if b_prev is not None:
            w -= basis[:, j - b_prev.shape[1] : j] @ b_prev.T
        j += width
        q, r = _next_block(w, basis[:, :j], gen, DEPENDENT * eps * norm, health)
        if bar:
            bar.update(width)
        done = j + width > max_cols
        if (j >= k and j - checked >= check_every and not steps) or done:
            checked = j
            theta, s = _ritz(t[:j, :j], width)
            top = np.argsort(theta)[::-1][:k]
            residual = np.linalg.norm(r.double().cpu().numpy() @ s[j - width : j, top], axis=0)
            floor = NOISE_FLOOR * eps * max(norm, np.abs(theta).max())
            scale = np.abs(theta[top]) if relative_to == "value" else np.abs(theta).max()
            estimates = residual / np.maximum(scale, floor)
            converged = len(top) == k and bool(np.all(estimates < np.where(scale > floor, tol, 1.0)))
            if bar:
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
    if bar:
        bar.close()
    if theta is None:
        raise SolverError(f"Lanczos stopped after {j} columns, before K={k}")
    result = _ritz_result(basis[:, :j], theta, s, top, estimates, converged, start, block)
    result.noise_floor = NOISE_FLOOR * eps * result.norm
    result.orthogonality, result.replaced = health["orthogonality"], health["replaced"]
    return result


def _random_block(n, width, gen, dtype, device):
    return torch.randn(n, width, generator=gen, dtype=torch.float64).to(device, dtype)


def _orthogonalize(w, *against):
    """w minus its components in the orthonormal columns of each of `against`, twice."""
    for _ in range(2):  # "twice is enough"
        for basis in against:
            if basis.shape[1]:
                w = w - basis @ (basis.T @ w)
    return w


def _next_block(w, basis, gen, floor, health):
    """(Q, R) with w = Q R + (a part in span(basis) and round-off): Q orthonormal and
    orthogonal to the orthonormal `basis`.

    After the block Gram-Schmidt and QR, Q is orthogonalised against the basis once more and
    re-factored, which measures and repairs the orthogonality lost to round-off. A column that
    was numerically dependent (|R_ii| at the noise floor, or mostly in the basis) carries no
    Krylov information, only round-off with components along the basis: it is replaced by a
    random direction orthogonal to everything so far and its row of R set to zero. This is
    what keeps the basis orthonormal past an invariant subspace (a Hessian of rank below the
    basis size, such as a network with dead units).
    """
    q, r = torch.linalg.qr(_orthogonalize(w, basis))
    c = basis.T @ q
    health["orthogonality"] = max(health["orthogonality"], float(c.abs().max()) if c.numel() else 0.0)
    q, r2 = torch.linalg.qr(q - basis @ c)
    r = r2 @ r
    weak = (torch.diagonal(r).abs() <= floor) | (torch.diagonal(r2).abs() < 0.5)
    if bool(weak.any()):
        count = int(weak.sum())
        health["replaced"] += count
        r[weak] = 0
        keep = q[:, ~weak]
        fresh = _orthogonalize(_random_block(len(q), count, gen, q.dtype, q.device), basis, keep)
        fresh = fresh / torch.linalg.vector_norm(fresh, dim=0)
        fresh, _ = torch.linalg.qr(_orthogonalize(fresh, basis, keep))
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
    """The SolverResult of a Lanczos run: the top Ritz pairs of `basis` with residual estimates."""
    return SolverResult(
        eigenvalues=theta[top],
        vectors=basis @ torch.as_tensor(s[:, top], dtype=basis.dtype, device=basis.device),
        residuals=estimates,
        converged=converged,
        steps=basis.shape[1],
        seconds=time.perf_counter() - start,
        residual_kind="lanczos estimate",
        norm=float(np.abs(theta).max()),
        block=block,
    )


def arpack(matmat, n, k, tol=1e-3, steps_per_k=2.0, seed=0, dtype=torch.float32, device="cpu", progress=True):
    """Top-k eigenpairs by ARPACK (implicitly restarted Lanczos), residuals checked explicitly."""
    ncv = min(n, max(int(steps_per_k * k) + 1, k + 20))
    v0 = np.random.default_rng(seed).standard_normal(n)
    bar = _bar(None, f"arpack top-{k}", progress)

    def apply(x):
        x = torch.as_tensor(np.asarray(x).reshape(n, -1), dtype=dtype, device=device)
        if bar:
            bar.update(x.shape[1])
        return matmat(x).double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((n, n), matvec=apply, matmat=apply, dtype=np.float64)
    start = time.perf_counter()
    converged = True
    try:
        values, vecs = scipy.sparse.linalg.eigsh(op, k=k, which="LA", tol=tol, ncv=ncv, v0=v0)
    except scipy.sparse.linalg.ArpackNoConvergence as err:
        values, vecs, converged = err.eigenvalues, err.eigenvectors, False
    if bar:
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
    matmat, n, k, tol=1e-3, max_iter=100, seed=0, dtype=torch.float32, device="cpu", progress=True
):
    """PyHessian's deflated power iteration: the k eigenvalues of largest |lambda|, one at a time."""
    gen = torch.Generator().manual_seed(seed)
    found, values, converged = [], [], True
    bar = _bar(None, f"power iteration top-{k}", progress)
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
            if bar:
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
    if bar:
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


def _bar(total, desc, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="hvp", file=sys.stderr, mininterval=2.0, leave=False)


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


def top_eigenpairs(
    op,
    k,
    solver="lanczos",
    tol=1e-3,
    steps_per_k=None,
    seed=0,
    verify=False,
    memory_limit=None,
    progress=True,
    which="LA",
    slq_steps=None,
    block_size=16,
):
    """Top-k (which='LA') or bottom-k ('SA') eigenpairs of a HessianOperator-like `op`
    (matmat, n, dtype, device, counters)."""
    if which not in ("LA", "SA"):
        raise SolverError(f"which must be 'LA' (largest) or 'SA' (smallest), got {which!r}")
    if which == "SA" and solver != "lanczos":
        raise SolverError("the bottom eigenvalues (which='SA') are computed by the lanczos solver only")
    if solver not in SOLVERS:
        raise SolverError(f"unknown solver {solver!r} (choose from {', '.join(SOLVERS)})")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise SolverError(f"tol must be a positive finite number, got {tol}")
    if solver == "block" and not (isinstance(block_size, int) and block_size >= 1):
        raise SolverError(f"block_size must be a positive integer, got {block_size}")
    if not 1 <= k < op.n:
        raise SolverError(f"K={k} must be between 1 and the number of parameters ({op.n}) - 1")
    if solver == "slq" and not (slq_steps and slq_steps >= k):
        raise SolverError(f"slq needs slq_steps >= K={k}, got {slq_steps}")
    steps_per_k = steps_per_k or (6.0 if solver in ("lanczos", "block") else 2.0)
    if solver == "slq":
        steps_per_k = (slq_steps - 100) / k
    element = torch.tensor([], dtype=op.dtype).element_size()
    check_memory(op.n, k, 0 if solver == "power" else steps_per_k, element, op.device, memory_limit)
    hvp0, passes0 = op.hvp_count, op.data_passes
    run = {
        "lanczos": lanczos,
        "slq": lanczos,
        "block": block_lanczos,
        "arpack": arpack,
        "power": power_iteration,
    }[solver]
    matmat = _finite_products(op.matmat if which == "LA" else (lambda v: -op.matmat(v)))
    extra = {"relative_to": "norm"} if which == "SA" else {}
    if solver == "slq":
        extra["steps"] = min(slq_steps, op.n)
    if solver == "power":
        steps_per_k = None
    if solver == "block":
        extra["block"] = block_size
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
        result.residual_kind = "lanczos estimate, relative to ||H||"
        scale = result.norm
    if verify and result.residual_kind != "explicit":
        result.residuals = explicit_residuals(op.matmat, result.vectors, result.eigenvalues, scale=scale)
        result.residual_kind = "explicit"
    result.hvp_count = op.hvp_count - hvp0
    result.data_passes = op.data_passes - passes0
    return result
