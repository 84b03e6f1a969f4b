"""Top-K eigenvalues of a symmetric operator given by matrix products (Hessians of networks).

- 'lanczos': Lanczos with full reorthogonalisation (two Gram-Schmidt passes per step), the
  basis kept on the operator's device, run until the top-K Ritz pairs converge.
- 'block': block Lanczos (b vectors per product, i.e. per pass over the data), full
  reorthogonalisation, no restart: the Krylov basis grows until the top-K Ritz pairs have
  residual estimates ||B_m s_i|| / |theta_i| < tol, so converged pairs are never recomputed.
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


def lanczos(
    matmat,
    n,
    k,
    tol=1e-3,
    steps_per_k=3.0,
    check_every=None,
    seed=0,
    dtype=torch.float32,
    device="cpu",
    progress=True,
    relative_to="value",
    steps=None,
):
    """Top-k eigenpairs by Lanczos with full reorthogonalisation.

    Stops when every top-k Ritz pair has residual estimate |beta_m s_mi| / |theta_i| < tol
    (equal to ||H y - theta y|| / |theta| for a fully reorthogonalised basis; with
    relative_to='norm' divided by max |theta| instead), or after steps_per_k * k + 100 steps
    (then converged=False). With `steps`, runs exactly that many steps (SLQ) and reports the
    residual estimates of the top-k Ritz pairs then.
    """
    max_steps = min(n, steps or steps_for(k, steps_per_k))
    check_every = check_every or max(10, k // 20)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    basis = torch.empty(n, max_steps, dtype=dtype, device=device)
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(device, dtype)
    q /= torch.linalg.vector_norm(q)
    alphas, betas = [], []
    converged, theta, s, top = False, None, None, None
    bar = _bar(max_steps, f"lanczos top-{k}", progress)
    start = time.perf_counter()
    for j in range(max_steps):
        basis[:, j] = q
        w = matmat(q[:, None])[:, 0].to(dtype)
        alpha = float(torch.dot(w, q))
        w -= alpha * q
        if j > 0:
            w -= betas[-1] * basis[:, j - 1]
        for _ in range(2):  # "twice is enough"
            w -= basis[:, : j + 1] @ (basis[:, : j + 1].T @ w)
        beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)
        betas.append(beta)
        if bar:
            bar.update(1)
        invariant = beta <= 1e-10 * max(abs(a) for a in alphas)
        if (j + 1 >= k and (j + 1) % check_every == 0) or invariant or j + 1 == max_steps:
            theta, s = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas[:-1]))
            top = np.argsort(theta)[::-1][:k]
            norm = np.abs(theta[top]) if relative_to == "value" else np.abs(theta).max()
            estimates = np.abs(beta * s[-1, top]) / norm
            converged = len(top) == k and bool(np.all(estimates < tol))
            if bar:
                bar.set_postfix(worst=f"{estimates.max():.1e}")
            if (converged and not steps) or invariant:
                break
        q = w / beta
    if bar:
        bar.close()
    return _ritz_result(basis[:, : len(alphas)], theta, s, top, estimates, converged, start)


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
):
    """Top-k eigenpairs by block Lanczos with full reorthogonalisation (see the module doc)."""
    max_cols = min(n, steps_for(k, steps_per_k))
    block = min(block, max(1, k // 4), max_cols)  # a block much wider than K wastes products
    gen = torch.Generator(device="cpu").manual_seed(seed)
    basis = torch.empty(n, max_cols, dtype=dtype, device=device)
    t = np.zeros((max_cols, max_cols))
    q, _ = torch.linalg.qr(torch.randn(n, block, generator=gen, dtype=torch.float64).to(device, dtype))
    bar = _bar(max_cols, f"block lanczos top-{k} (b={block})", progress)
    start, j, b_prev, checked = time.perf_counter(), 0, None, 0
    converged, estimates, theta, s, top = False, None, None, None, None
    while j + q.shape[1] <= max_cols:
        width = q.shape[1]
        basis[:, j : j + width] = q
        w = matmat(q).to(dtype)
        a = q.T @ w
        a = (a + a.T) / 2
        t[j : j + width, j : j + width] = a.double().cpu().numpy()
        w -= q @ a
        if b_prev is not None:
            w -= basis[:, j - b_prev.shape[1] : j] @ b_prev.T
        j += width
        for _ in range(2):  # "twice is enough"
            w -= basis[:, :j] @ (basis[:, :j].T @ w)
        q, r = torch.linalg.qr(w)
        if bar:
            bar.update(width)
        if j >= k and (j - checked >= max(width, k // 10) or j + width > max_cols):
            checked = j
            theta, s = scipy.linalg.eigh(t[:j, :j])
            top = np.argsort(theta)[::-1][:k]
            residual = np.linalg.norm(r.double().cpu().numpy() @ s[j - width : j, top], axis=0)
            estimates = residual / np.abs(theta[top])
            converged = bool(np.all(estimates < tol))
            if bar:
                bar.set_postfix(worst=f"{estimates.max():.1e}")
            if converged:
                break
        cols = min(width, max_cols - j)
        if cols <= 0 or float(torch.linalg.matrix_norm(r)) <= 1e-10 * np.abs(t[:j, :j]).max():
            break
        q, r = q[:, :cols], r[:cols]
        t[j : j + cols, j - width : j] = r.double().cpu().numpy()
        t[j - width : j, j : j + cols] = t[j : j + cols, j - width : j].T
        b_prev = r
    if bar:
        bar.close()
    if theta is None:
        raise SolverError(f"block Lanczos stopped after {j} columns, before K={k}")
    return _ritz_result(basis[:, :j], theta, s, top, estimates, converged, start, block)


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
    matmat = op.matmat if which == "LA" else (lambda v: -op.matmat(v))
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
