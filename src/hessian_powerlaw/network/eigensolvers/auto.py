"""solver='auto': block or single-vector Lanczos, chosen by measuring the user's model and data.

A block of b products costs more per vector than b single products on some models (vmapped
BatchNorm, GELU or convolution backward passes) and less on others (the sequential products of
LeNet), and single-vector Lanczos pays a BLAS-2 reorthogonalisation that a block run does as
BLAS-3. So the choice measures, on the operator itself, the seconds per vector of one product
alone and of one block, and the seconds per basis entry of reorthogonalising one vector and one
block against a basis of this size, then predicts each solver's wall time from the products per
eigenvalue that each needs on a measured power-law spectrum (benchmarks/measured/krylov_floor*:
K = 100: b = 1 2.20, b = 16 3.36; K = 1000: b = 1 2.75, b = 16 2.91; linear in log K between,
constant outside) and picks the faster. The products of the measurement count in the result.
"""

import math
import time

import torch

# products per eigenvalue of plain (b = 1) and block (b = 16) Lanczos at tol 1e-3, by K
PER_EIGENVALUE = {1: {100: 2.20, 1000: 2.75}, 16: {100: 3.36, 1000: 2.91}}
BASIS_PROBE = 256  # basis vectors of the reorthogonalisation timing


def per_eigenvalue(block, k):
    """Products per eigenvalue of Lanczos with this block width at top-k (table above)."""
    table = PER_EIGENVALUE[1 if block == 1 else 16]
    t = min(max((math.log10(max(k, 1)) - 2.0), 0.0), 1.0)
    return table[100] + t * (table[1000] - table[100])


def _seconds(work, repeat=1):
    start = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - start) / repeat


def _orthogonalisation_rate(n, block, dtype, device, generator):
    """Seconds per (vector x basis vector x parameter) of two Gram-Schmidt passes of `block`
    vectors at once."""
    basis = torch.randn(n, BASIS_PROBE, generator=generator, dtype=dtype).to(device)
    vectors = torch.randn(n, block, generator=generator, dtype=dtype).to(device)

    def twice():
        v = vectors
        for _ in range(2):
            v = v - basis @ (basis.T @ v)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    twice()  # warm-up
    return _seconds(twice, repeat=3) / (BASIS_PROBE * n * block)


def choose(matmat, n, k, block, dtype, device, seed=0):
    """('block' or 'lanczos', block width, one line saying why) from timings on the operator."""
    block = min(block, max(1, k // 4))
    if block == 1:
        return "lanczos", 1, f"K = {k} allows no block wider than 1"
    generator = torch.Generator().manual_seed(seed + 7)
    single = torch.randn(n, 1, generator=generator, dtype=dtype).to(device)
    several = torch.randn(n, block, generator=generator, dtype=dtype).to(device)
    matmat(single)  # warm-up (first-call allocations)
    product = {1: _seconds(lambda: matmat(single)), block: _seconds(lambda: matmat(several)) / block}
    predicted = {}
    for width in (1, block):
        steps = per_eigenvalue(width, k) * k
        orthogonalise = _orthogonalisation_rate(n, width, dtype, device, generator) * n * steps**2 / 2
        predicted[width] = steps * product[width] + orthogonalise
    choice = block if predicted[block] <= predicted[1] else 1
    reason = (
        f"products {product[1]:.3g} s alone, {product[block]:.3g} s per vector in blocks of {block}; "
        f"predicted {predicted[1]:.3g} s for lanczos, {predicted[block]:.3g} s for block"
    )
    return ("block" if choice > 1 else "lanczos"), choice, reason
