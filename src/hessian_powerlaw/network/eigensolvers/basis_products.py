"""The products that read a Lanczos basis: coefficients (basis @ w) and updates (w - basis.T @ c).

Each reads the whole basis (m rows of n parameters) once, and on a large model they set a
single-vector Lanczos step's pace as much as the Hessian product does (ResNet18's `layer3`, 2.1M
parameters, 344 steps: 34 s of reorthogonalisation beside 27 s of products). On a CPU they run
through NumPy on the same memory when NumPy's BLAS is OpenBLAS, held to one thread while a solver
runs (`one_blas_thread`): measured on 2 cores (benchmarks/measured/basis_products.txt), OpenBLAS
on one thread reads the basis faster than torch's MKL on two, for one vector and more so for
blocks; on two threads its idle threads spin and slow the Hessian product that follows. On CUDA,
or where NumPy's BLAS is another (MKL in some conda builds, which torch may share), torch's own
products.
"""

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
import torch


@functools.cache
def numpy_openblas() -> bool:
    """Whether NumPy's matrix products run on OpenBLAS (its wheels' BLAS)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        return False
    return "openblas" in str(blas.get("name", "")).lower()


def _numpy(basis: torch.Tensor) -> bool:
    return basis.device.type == "cpu" and numpy_openblas()


def coefficients(basis: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The components of w along the orthonormal rows of the basis.

    Parameters
    ----------
    basis : torch.Tensor
        Shape (m, n), orthonormal rows.
    w : torch.Tensor
        Shape (n, b).

    Returns
    -------
    torch.Tensor
        ``basis @ w``, shape (m, b).
    """
    if not _numpy(basis):
        return basis @ w
    return torch.from_numpy(basis.numpy() @ w.detach().numpy())


def subtract(w: torch.Tensor, basis: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """w less its components c along the basis.

    Parameters
    ----------
    w : torch.Tensor
        Shape (n, b).
    basis : torch.Tensor
        Shape (m, n).
    c : torch.Tensor
        Shape (m, b).

    Returns
    -------
    torch.Tensor
        ``w - basis.T @ c``, shape (n, b).
    """
    if not _numpy(basis):
        return torch.addmm(w, basis.T, c, alpha=-1)
    return torch.from_numpy(w.detach().numpy() - basis.numpy().T @ c.detach().numpy())


@contextlib.contextmanager
def one_blas_thread(device: str | torch.device) -> Iterator[None]:
    """Hold OpenBLAS to one thread while a solver on `device` runs (a CPU with NumPy on
    OpenBLAS; nothing elsewhere); the caller's setting is restored after."""
    if torch.device(device).type != "cpu" or not numpy_openblas():
        yield
        return
    from threadpoolctl import ThreadpoolController

    with ThreadpoolController().select(internal_api="openblas").limit(limits=1):
        yield
