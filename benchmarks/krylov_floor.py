"""Products per eigenvalue that top-K methods need on a network Hessian's spectrum: this
project's (block) Lanczos, the oracle floor of unrestarted Krylov methods, ARPACK's implicit
(thick) restart, LOBPCG and Chebyshev-filtered subspace iteration, each run to a largest
relative eigenvalue error of 1e-3.

A Krylov or block method's products and accuracy depend only on the operator's spectrum and on
the start block (random, so Gaussian in any basis): a diagonal matrix with a measured spectrum
behaves as the Hessian itself does, at no cost per product. The spectrum: measured top values (a
spectrum record's `.npy`, row 0, or the reference of a `block_width.py` JSON), continued beyond
them as a power law fitted to their last half, and a negative side (`--bottom`: measured lowest
values, `--negatives N`: how many negative values in all, continued as a power law fitted to the
measured ones; a Krylov method's top-K converges more slowly the further the spectrum reaches
below them). The header prints what the real runs on that operator spent, to compare with this
project's rows: where they differ, the unmeasured part of the spectrum (its tail, its negative
side) is not the real one.

Each method's product count is the fewest at which its top K are all within 1e-3 of the true
values: our solver stops on its own residual test (tol 1e-3, as the pipeline runs it); the
oracle rows take the Ritz values of one long run after every block step (every K/50 columns
above K = 50) and report the first at which all K are within 1e-3 (no stopping test does
better); ARPACK stops on its own test (tol 1e-3); LOBPCG and the Chebyshev filter are checked
against the truth after every iteration.

    python benchmarks/krylov_floor.py --record benchmarks/measured/block_width_k1000_n6000.json --k 100 \\
        --bottom -0.00807 -0.00591 -0.00575 -0.00534 -0.00497 --negatives 1000
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from hessian_powerlaw.network.eigensolvers import block_lanczos

ACCURACY = 1e-3


def measured(path):
    """(top eigenvalues descending, lines saying what the real runs on them spent): from a
    spectrum record's .npy (row 0; its .json beside it) or a `block_width.py` JSON (the largest
    K's reference and every row)."""
    path = Path(path)
    if path.suffix == ".npy":
        meta = json.loads(path.with_suffix(".json").read_text())
        real = [
            f"{meta['hvp_count']} HVPs at K = {meta['n_modes']} (b = {meta['block_size']}, tol {meta['tol']})"
        ]
        return np.load(path, allow_pickle=False)[0].astype(float), real
    data = json.loads(path.read_text())
    k = max(data["references"], key=int)
    real = [
        f"{r['hvps']} HVPs at K = {r['k']} (b = {r['width']}, "
        + (
            f"tol {r['tol']:g})"
            if r.get("tol")
            else f"{r['fixed_steps']} steps, error {r['max_rel_error']:.1e})"
        )
        for r in data["rows"]
        if not r.get("reference")
    ]
    return np.asarray(data["references"][k], dtype=float), real


def power_law(values, count):
    """`count` more values continuing |values| (descending in magnitude) as a power law fitted
    on their last half (all of them when fewer than 10), and the exponent s."""
    m = len(values)
    part = slice(m // 2 if m >= 10 else 0, m)
    ranks = np.arange(1, m + 1)
    slope, intercept = np.polyfit(np.log(ranks[part]), np.log(np.abs(values[part])), 1)
    return np.exp(intercept) * np.arange(m + 1, m + count + 1, dtype=float) ** slope, -slope


def spectrum(top, n, bottom=(), negatives=0):
    """n eigenvalues, descending: the measured top values, their power-law continuation, and
    `negatives` negative values continuing the measured bottom ones (most negative first) as a
    power law of their own. Returns (values, s of the top's tail, s of the negative side)."""
    bottom = np.sort(np.asarray(bottom, dtype=float))
    negatives = max(negatives, len(bottom))
    tail, s = power_law(top, n - len(top) - negatives)
    below, s_neg = power_law(bottom, negatives - len(bottom)) if len(bottom) else (np.array([]), None)
    values = np.concatenate([top, tail, -np.concatenate([np.abs(bottom), below])])
    return np.ascontiguousarray(np.sort(values)[::-1]), s, s_neg


class Diagonal:
    """The operator diag(values) with a product counter (columns multiplied)."""

    def __init__(self, values):
        self.values = values
        self.products = 0

    def __call__(self, block):
        self.products += block.shape[1]
        return self.values[:, None] * block


def worst_error(found, truth):
    found = np.sort(np.asarray(found))[::-1][: len(truth)]
    if len(found) < len(truth):
        return np.inf
    return float(np.max(np.abs(found - truth) / np.abs(truth)))


def ours(values, k, block):
    """This project's block_lanczos (tol 1e-3, its own stopping test) on the diagonal matrix."""
    op = Diagonal(torch.as_tensor(values))
    result = block_lanczos(op, len(values), k, tol=1e-3, block=block, dtype=torch.float64, progress=False)
    return op.products, worst_error(result.eigenvalues, values[:k])


def oracle(values, k, block, max_cols, seed=0):
    """Fewest products at which the Ritz values of one unrestarted (block) Krylov run with full
    reorthogonalisation have all top k within ACCURACY: the run's projected matrix judged against
    the truth after every block step (every k/50 columns for K above 50)."""
    n = len(values)
    every = max(block, k // 50)  # judge every step up to K = 50, then to within 2 % of K
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, block)))
    basis = np.empty((n, max_cols))
    t = np.zeros((max_cols, max_cols))
    j, prev = 0, None
    while j + block <= max_cols:
        basis[:, j : j + block] = q
        w = values[:, None] * q
        a = q.T @ w
        t[j : j + block, j : j + block] = (a + a.T) / 2
        w -= q @ a
        if prev is not None:
            w -= basis[:, j - block : j] @ prev.T
        j += block
        for _ in range(2):
            w -= basis[:, :j] @ (basis[:, :j].T @ w)
        if j >= k and (j - k) % every < block:
            ritz = scipy.linalg.eigvalsh(t[:j, :j], subset_by_index=[j - k, j - 1])
            if worst_error(ritz, values[:k]) <= ACCURACY:
                return j
        q, r = np.linalg.qr(w)
        if j + block <= max_cols:
            t[j : j + block, j - block : j] = r
            t[j - block : j, j : j + block] = r.T
        prev = r
    return None


def arpack(values, k, ncv):
    op = Diagonal(values)
    linear = scipy.sparse.linalg.LinearOperator(
        (len(values), len(values)), matvec=lambda v: op(v.reshape(-1, 1)).ravel(), dtype=float
    )
    v0 = np.random.default_rng(0).standard_normal(len(values))
    found = scipy.sparse.linalg.eigsh(
        linear, k=k, which="LA", tol=1e-3, ncv=ncv, v0=v0, return_eigenvectors=False
    )
    return op.products, worst_error(found, values[:k])


def lobpcg(values, k, guard, max_iter):
    """LOBPCG (scipy) with a block of k + guard, judged against the truth after each iteration:
    products at the first iteration whose top k are within ACCURACY."""
    n = len(values)
    x = np.random.default_rng(0).standard_normal((n, k + guard))
    for iterations in range(1, max_iter + 1):
        op = Diagonal(values)
        linear = scipy.sparse.linalg.LinearOperator(
            (n, n), matvec=lambda v, o=op: o(v.reshape(-1, 1)).ravel(), matmat=op, dtype=float
        )
        found, _ = scipy.sparse.linalg.lobpcg(
            linear, x, largest=True, maxiter=iterations, tol=1e-14, retLambdaHistory=False
        )
        if worst_error(found, values[:k]) <= ACCURACY:
            return op.products
    return None


def chebyshev(values, k, guard, degree, max_iter, seed=0):
    """Chebyshev-filtered subspace iteration (Zhou and Saad) for the top: a block of k + guard,
    filtered by the degree-m Chebyshev polynomial that damps [lower end, cut] (cut = the block's
    lowest Ritz value), then Rayleigh-Ritz; the lower end from a 20-step Lanczos run (counted).
    Products at the first iteration whose top k are within ACCURACY."""
    op = Diagonal(values)
    rng = np.random.default_rng(seed)
    low = _lower_end(op, len(values), rng)
    x, _ = np.linalg.qr(rng.standard_normal((len(values), k + guard)))
    theta = np.linalg.eigvalsh(x.T @ op(x))
    for _ in range(max_iter):
        half, centre = (theta[0] - low) / 2, (theta[0] + low) / 2
        previous, y = x, (op(x) - centre * x) / half
        for _ in range(2, degree + 1):
            y, previous = 2 * (op(y) - centre * y) / half - previous, y
        x, _ = np.linalg.qr(y)
        theta, rotation = np.linalg.eigh(x.T @ op(x))
        x = x @ rotation
        if worst_error(theta, values[:k]) <= ACCURACY:
            return op.products
    return None


def _lower_end(op, n, rng, steps=20):
    """A lower bound of the spectrum: the lowest Ritz value of a short Lanczos run less its last
    residual norm."""
    q = rng.standard_normal(n)
    basis, alpha, beta = [q / np.linalg.norm(q)], [], []
    for _ in range(steps):
        w = op(basis[-1].reshape(-1, 1)).ravel()
        alpha.append(basis[-1] @ w)
        for b in basis:
            w -= (b @ w) * b
        beta.append(np.linalg.norm(w))
        basis.append(w / beta[-1])
    ritz = scipy.linalg.eigvalsh_tridiagonal(np.array(alpha), np.array(beta[:-1]))
    return ritz[0] - beta[-1]


def methods(values, k):
    """(name, thunk) for every method at this k; a thunk returns (products, error or None)."""
    for block in (1, 8, 16):
        width = min(block, max(1, k // 4))
        name = f"hessian-powerlaw {'lanczos' if width == 1 else 'block'} (b = {width}, tol 1e-3)"
        yield name, lambda b=block: ours(values, k, b)
    for block in (1, min(16, max(1, k // 4))):
        yield (
            f"oracle: unrestarted Krylov, b = {block}, first step within 1e-3",
            lambda b=block: (oracle(values, k, b, 6 * k + 100), None),
        )
    for ncv in (2 * k + 1, int(1.5 * k), 3 * k):
        yield f"ARPACK implicit restart, ncv = {ncv}, tol 1e-3", lambda c=ncv: arpack(values, k, c)
    for guard in (k // 10, k // 2):
        yield f"LOBPCG, block K + {guard}", lambda g=guard: (lobpcg(values, k, g, 40), None)
    for degree in (4, 8, 16):
        yield (
            f"Chebyshev-filtered subspace iteration, block 1.5 K, degree {degree}",
            lambda d=degree: (chebyshev(values, k, k // 2, d, 60), None),
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--record", required=True, help="a spectrum record's .npy, or a block_width.py JSON (its reference)"
    )
    parser.add_argument("--n", type=int, default=61706, help="parameters (matrix order)")
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--bottom", type=float, nargs="*", default=[], help="measured lowest eigenvalues")
    parser.add_argument("--negatives", type=int, default=0, help="negative eigenvalues in all")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out (substrings)")
    parser.add_argument("--json", help="write the rows here (after every row)")
    args = parser.parse_args()
    top, real = measured(args.record)
    values, s, s_neg = spectrum(top, args.n, args.bottom, args.negatives)
    negative = int(np.count_nonzero(values < 0))
    print(
        f"spectrum: {len(values)} values, top {len(top)} measured ({args.record}), tail s {s:.2f}; "
        f"{negative} negative" + (f" (lowest {values[-1]:.3g}, s {s_neg:.2f})" if negative else "")
    )
    print("the real operator's runs: " + "; ".join(real))
    print("| K | method | products | per eigenvalue | max rel. error | s |")
    print("|---:|---|---:|---:|---:|---:|")
    rows = []
    for k in args.k:
        for name, thunk in methods(values, k):
            if any(part in name for part in args.skip):
                continue
            start = time.perf_counter()
            products, error = thunk()
            row = {"k": k, "method": name, "products": products, "max_rel_error": error}
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            per = "–" if products is None else f"{products / k:.2f}"
            cells = [k, name, products or "–", per, "–" if error is None else f"{error:.1e}", row["seconds"]]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
            if args.json:
                Path(args.json).write_text(
                    json.dumps(
                        {
                            "n": len(values),
                            "tail_s": s,
                            "negative_s": s_neg,
                            "negatives": negative,
                            "rows": rows,
                        }
                    )
                )


if __name__ == "__main__":
    main()
