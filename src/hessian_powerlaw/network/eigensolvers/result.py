"""What every solver shares: its result, its errors, the memory check, explicit residuals and
the progress bar."""

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from hessian_powerlaw.network.device import available_bytes

if TYPE_CHECKING:
    from tqdm import tqdm

Matmat = Callable[[torch.Tensor], torch.Tensor]  # (n, b) block -> H @ block, (n, b)


class SolverError(RuntimeError):
    """A run that cannot start (memory) or was asked something impossible."""


@dataclass
class SolverResult:
    """What every solver returns: eigenvalues (k,), vectors (n, k), residuals (k,), counts, flags."""

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
    full: np.ndarray | None = field(default=None, repr=False)  # every eigenvalue (dense solver)
    choice: str | None = None  # solver='auto': what it chose and why
    earlier_seconds: float = 0.0  # spent before the kill that this run resumed after (in `seconds`)


def basis_bytes(n: int, k: int, steps_per_k: float, element_size: int) -> int:
    """Memory of the Krylov basis (n x steps) plus the K Ritz vectors."""
    return n * (steps_for(k, steps_per_k) + k) * element_size


def steps_for(k: int, steps_per_k: float) -> int:
    """Krylov steps for k eigenpairs at `steps_per_k` steps each, plus 100."""
    return int(math.ceil(steps_per_k * k)) + 100


def check_memory(
    n: int,
    k: int,
    steps_per_k: float,
    element_size: int,
    device: str | torch.device,
    limit: int | None = None,
) -> None:
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


def explicit_residuals(
    matmat: Matmat, vectors: torch.Tensor, values: np.ndarray, block: int = 32, scale: float | None = None
) -> np.ndarray:
    """||H v_i - lambda_i v_i|| / |lambda_i| (or / `scale`) with products in blocks of `block`."""
    out = []
    for i in range(0, vectors.shape[1], block):
        v = vectors[:, i : i + block]
        lam = torch.as_tensor(values[i : i + block], dtype=v.dtype, device=v.device)
        r = matmat(v) - v * lam
        norm = lam.abs() if scale is None else scale
        out.append((torch.linalg.vector_norm(r, dim=0) / norm).cpu().numpy())
    return np.concatenate(out).astype(float)


def progress_bar(total: int, desc: str, enabled: bool) -> "tqdm | None":
    """A tqdm bar on stderr over `total` items, or None when not enabled."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="hvp", file=sys.stderr, mininterval=2.0, leave=False)
