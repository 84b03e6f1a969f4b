"""solver='auto': block or single-vector Lanczos, chosen by measuring the user's model and data.

A block of b products costs more per vector than b single products on some models (vmapped
convolution backward passes: 3x on ResNet18) and less on others (the sequential products of
LeNet, a chunked BatchNorm CNN), and each Lanczos step pays a reorthogonalisation and a QR
whose fixed part a block run pays once per b vectors. So the choice measures, on the operator
itself, the seconds per vector of one product alone and of one block, and the seconds of one
real Lanczos step (`lanczos.next_block`) of each width against a short and a longer basis,
then predicts each solver's wall time from the products per eigenvalue that each needs on a
measured power-law spectrum (benchmarks/measured/krylov_floor*: K = 100: b = 1 2.20, b = 16
3.36; K = 1000: b = 1 2.75, b = 16 2.91; linear in log K between, constant outside) and picks
the faster. An operator with two product formulations (`forward_mode`: forward-over-reverse or
reverse-over-reverse; which is faster depends on the model: measured in
benchmarks/measured/dnn_peers_generic.md) then has the chosen width timed in the other one and
keeps the faster (an operator whose products run through cached gradient graphs,
`generic.LossHessian.cached`, has one). The products of the measurement count in the result.
"""

import math
import time

import torch

from hessian_powerlaw.network.eigensolvers.basis_products import one_blas_thread
from hessian_powerlaw.network.eigensolvers.lanczos import next_block
from hessian_powerlaw.network.operators.base import Operator

# products per eigenvalue of plain (b = 1) and block (b = 16) Lanczos at tol 1e-3, by K
PER_EIGENVALUE = {1: {100: 2.20, 1000: 2.75}, 16: {100: 3.36, 1000: 2.91}}
BASIS_PROBE = 64  # basis vectors of the reorthogonalisation timing
LENGTH_PROBE = 1 << 19  # parameters of that timing (memory-bound: its rate holds for larger n)


def per_eigenvalue(block: int, k: int) -> float:
    """Products per eigenvalue of Lanczos with this block width at top-k (table above)."""
    table = PER_EIGENVALUE[1 if block == 1 else 16]
    t = min(max((math.log10(max(k, 1)) - 2.0), 0.0), 1.0)
    return table[100] + t * (table[1000] - table[100])


def _seconds(work, repeat=1):
    """The shortest of `repeat` timings of work(): a scheduling hiccup in one of them (on a
    loaded machine) must not be multiplied into the prediction (the basis term scales the
    per-vector cost by steps^2)."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _step_costs(n, width, dtype, device, generator):
    """(fixed seconds, seconds per basis vector) of one Lanczos step of this width: the real
    `next_block` against bases of `width` and BASIS_PROBE + width vectors, on at most
    LENGTH_PROBE parameters and scaled to n (the step is memory-bound)."""
    length = min(n, LENGTH_PROBE)
    rows = torch.randn(BASIS_PROBE + width, length, generator=generator, dtype=dtype).to(device)
    rows = torch.linalg.qr(rows.T)[0].T.contiguous()
    w = torch.randn(length, width, generator=generator, dtype=dtype).to(device)
    health = {"orthogonality": 0.0, "replaced": 0}

    def step(m):
        next_block(w, rows[:m], generator, 0.0, health)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    with one_blas_thread(device):  # as the solver runs it
        step(width)  # warm-up
        short, long = (
            _seconds(lambda m=m: step(m), repeat=5) * n / length for m in (width, BASIS_PROBE + width)
        )
    return short, max(long - short, 0.0) / BASIS_PROBE


def _time_products(op, width, generator):
    """Seconds per vector of one product of `width` vectors."""
    vectors = torch.randn(op.n, width, generator=generator, dtype=op.dtype).to(op.device)
    return _seconds(lambda: op.matmat(vectors)) / width


def _formulation(op, width, seconds, generator):
    """Time the chosen width in the operator's other product formulation and keep the faster;
    a short phrase for the record."""
    if getattr(op, "cached", False):
        return "cached reverse-over-reverse products"
    if not getattr(op, "forward_mode", False):
        return "reverse-over-reverse products" if hasattr(op, "forward_mode") else "the operator's products"
    op.forward_mode = False
    try:
        reverse = _time_products(op, width, generator)
    except (RuntimeError, NotImplementedError):
        reverse = float("inf")
    op.forward_mode = reverse >= seconds
    kept = "forward-over-reverse" if op.forward_mode else "reverse-over-reverse"
    return f"{kept} products ({seconds:.3g} s forward-over-reverse, {reverse:.3g} s reverse-over-reverse)"


def choose(op: Operator, k: int, block: int, seed: int = 0) -> tuple[str, int, str]:
    """('block' or 'lanczos', block width, one line saying why) from timings on the operator
    `op` (`operators.Operator`); may switch `op.forward_mode` to its faster formulation."""
    block = min(block, max(1, k // 4))
    if block == 1:
        return "lanczos", 1, f"K = {k} allows no block wider than 1"
    generator = torch.Generator().manual_seed(seed + 7)
    op.matmat(torch.randn(op.n, 1, generator=generator, dtype=op.dtype).to(op.device))  # warm-up
    product = {width: _time_products(op, width, generator) for width in (1, block)}
    predicted = {}
    for width in (1, block):
        steps = per_eigenvalue(width, k) * k
        fixed, per_basis_vector = _step_costs(op.n, width, op.dtype, op.device, generator)
        predicted[width] = (
            steps * product[width] + steps / width * fixed + per_basis_vector * steps**2 / (2 * width)
        )
    choice = block if predicted[block] <= predicted[1] else 1
    how = _formulation(op, choice, product[choice], generator)
    reason = (
        f"products {product[1]:.3g} s alone, {product[block]:.3g} s per vector in blocks of {block}; "
        f"predicted {predicted[1]:.3g} s for lanczos, {predicted[block]:.3g} s for block; {how}"
    )
    return ("block" if choice > 1 else "lanczos"), choice, reason
