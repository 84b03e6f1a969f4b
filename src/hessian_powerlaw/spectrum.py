"""From ANM eigenvalues to the inverted vibrational spectrum sigma = 1/lambda."""

import numpy as np

RIGID_BODY_MODES = 6


def count_zero_modes(eigvals, tol):
    """Number of eigenvalues at or below `tol` times the largest (round-off zeros)."""
    ev = np.asarray(eigvals, dtype=float)
    return int(np.count_nonzero(ev <= tol * ev.max()))


def inverted_spectrum(eigvals, tol):
    """(n_zero_modes, sigma) with sigma = 1/lambda over the non-zero modes, descending.

    Every near-zero mode is dropped, never inverted; the caller decides what more than
    six of them (a disconnected network) means for the entry.
    """
    ev = np.sort(np.asarray(eigvals, dtype=float))
    n_zero = count_zero_modes(ev, tol)
    return n_zero, 1.0 / ev[n_zero:]
