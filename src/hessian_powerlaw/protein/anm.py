"""C-alpha Anisotropic Network Model: Hessian assembly and its eigenvalues."""

import numpy as np
import numpy.typing as npt
import scipy.linalg
from scipy.spatial import cKDTree


def contact_pairs(coords: npt.ArrayLike, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of atoms within `cutoff` Angstrom (inclusive).

    Parameters
    ----------
    coords : array_like
        Shape (N, 3), float, Angstrom.
    cutoff : float
        Contact distance in Angstrom.

    Returns
    -------
    i, j : numpy.ndarray
        Two int arrays of shape (P,), one entry per contact, i < j.
    """
    pairs = cKDTree(coords).query_pairs(cutoff, output_type="ndarray")
    return pairs[:, 0], pairs[:, 1]


def anm_hessian(coords: npt.ArrayLike, cutoff: float = 9.0, gamma: float = 1.0) -> np.ndarray:
    """Dense ANM Hessian (identical in convention to ProDy's ANM.buildHessian).

    Off-diagonal block (i, j) = -gamma * r r^T / |r|^2 for every pair within the cutoff;
    diagonal block i = minus the sum of its row's off-diagonal blocks.

    Parameters
    ----------
    coords : array_like
        Shape (N, 3), C-alpha coordinates in Angstrom, all finite, no two equal within the cutoff.
    cutoff : float, default 9.0
        Contact distance in Angstrom, positive.
    gamma : float, default 1.0
        Spring constant, positive.

    Returns
    -------
    numpy.ndarray
        Shape (3N, 3N), float64, symmetric, in units of gamma / Angstrom^2.

    Raises
    ------
    ValueError
        Coordinates of the wrong shape or not finite, a cutoff or gamma not positive and
        finite, or two atoms at the same position.
    """
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coordinates must have shape (N, 3), got {coords.shape}")
    if not (np.isfinite(cutoff) and cutoff > 0 and np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"cutoff and gamma must be positive and finite, got {cutoff}, {gamma}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coordinates must be finite")
    n = len(coords)
    i, j = contact_pairs(coords, cutoff)
    r = coords[j] - coords[i]
    d2 = np.einsum("pk,pk->p", r, r)
    if np.any(d2 <= 0):
        p = int(np.argmin(d2))
        raise ValueError(f"atoms {i[p]} and {j[p]} are at the same position: the ANM is undefined")
    blocks = (-gamma / d2)[:, None, None] * (r[:, :, None] * r[:, None, :])
    hessian = np.zeros((n, 3, n, 3))
    hessian[i, :, j, :] = blocks
    hessian[j, :, i, :] = blocks
    diagonal = np.zeros((n, 3, 3))
    np.add.at(diagonal, i, -blocks)
    np.add.at(diagonal, j, -blocks)
    idx = np.arange(n)
    hessian[idx, :, idx, :] = diagonal
    return hessian.reshape(3 * n, 3 * n)


def eigenvalues(hessian: np.ndarray) -> np.ndarray:
    """All eigenvalues, shape (M,) ascending, of a symmetric (M, M) float64 matrix (LAPACK
    divide and conquer, no vectors; the matrix is overwritten)."""
    return scipy.linalg.eigh(hessian, eigvals_only=True, driver="evd", overwrite_a=True, check_finite=False)


RIGID_BODY_MODES = 6


def count_zero_modes(eigvals: npt.ArrayLike, tol: float) -> int:
    """Number of eigenvalues (shape (M,)) at or below `tol` times the largest (round-off zeros)."""
    ev = np.asarray(eigvals, dtype=float)
    return int(np.count_nonzero(ev <= tol * ev.max()))


def inverted_spectrum(eigvals: npt.ArrayLike, tol: float) -> tuple[int, np.ndarray]:
    """The inverted spectrum sigma = 1 / lambda over the non-zero modes.

    Every near-zero mode is dropped, never inverted; the caller decides what more than
    six of them (a disconnected network) means for the entry.

    Parameters
    ----------
    eigvals : array_like
        Shape (M,), ANM eigenvalues in any order.
    tol : float
        An eigenvalue at or below `tol` times the largest is a zero mode.

    Returns
    -------
    n_zero : int
        Number of zero modes dropped (6 for one connected network).
    sigma : numpy.ndarray
        Shape (M - n_zero,), float64, descending.
    """
    ev = np.sort(np.asarray(eigvals, dtype=float))
    n_zero = count_zero_modes(ev, tol)
    return n_zero, 1.0 / ev[n_zero:]
