"""All eigenvalues of a symmetric matrix by LAPACK's two-stage tridiagonal reduction
(dsyevd_2stage), which scipy does not wrap.

The first stage reduces the matrix to a band with matrix-matrix products, the second chases
the band down to a tridiagonal matrix; for eigenvalues only this is about 1.5x faster than
dsyevd from order ~2000 on one core here (README, Benchmarks). The routine is called in the
OpenBLAS that the scipy (or numpy) wheel bundles, whose LAPACKE symbols and integer width are
known; elsewhere (conda's scipy, Apple's Accelerate) `two_stage_eigenvalues` returns None and
the caller uses scipy's dsyevd. A first call checks the routine on a small matrix against
numpy before trusting it.
"""

import ctypes
import functools

import numpy as np

__all__ = ["two_stage_eigenvalues"]

COL_MAJOR = 102
# symbol -> LAPACK integer of the scipy-openblas builds: 32-bit, and 64-bit with the 64_ suffix
SYMBOLS = {"scipy_LAPACKE_dsyevd_2stage": ctypes.c_int32, "scipy_LAPACKE_dsyevd_2stage64_": ctypes.c_int64}


def two_stage_eigenvalues(matrix: np.ndarray) -> np.ndarray | None:
    """Eigenvalues, shape (M,) ascending, of the symmetric (M, M) float64 C-contiguous
    `matrix` (overwritten), or None where the routine is not available or fails."""
    routine = _routine()
    if routine is None:
        return None
    return _call(routine, matrix)


def _call(routine, matrix):
    function, integer = routine
    if matrix.dtype != np.float64 or not matrix.flags.c_contiguous or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("two_stage_eigenvalues needs a square C-contiguous float64 matrix")
    n = len(matrix)
    values = np.empty(n)
    # A symmetric matrix reads the same in either layout: column-major avoids LAPACKE's copy.
    info = function(
        COL_MAJOR, b"N", b"L", integer(n), matrix.ctypes.data, integer(max(n, 1)), values.ctypes.data
    )
    if info != 0 or not np.all(np.isfinite(values)):
        return None
    return values


@functools.cache
def _routine():
    """(function, LAPACK integer type) of LAPACKE_dsyevd_2stage in a loaded scipy-openblas
    library that passes a check against numpy, or None."""
    import scipy.linalg.lapack  # noqa: F401  (loads scipy's OpenBLAS)
    from threadpoolctl import threadpool_info

    for library in threadpool_info():
        if library.get("internal_api") != "openblas":
            continue
        try:
            handle = ctypes.CDLL(library["filepath"])
        except OSError:
            continue
        for symbol, integer in SYMBOLS.items():
            function = getattr(handle, symbol, None)
            if function is None:
                continue
            function.restype = ctypes.c_int
            function.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, integer]
            function.argtypes += [ctypes.c_void_p, integer, ctypes.c_void_p]
            if _passes_check((function, integer)):
                return function, integer
    return None


def _passes_check(routine):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((60, 60))
    a = np.ascontiguousarray(a + a.T)
    expected = np.linalg.eigvalsh(a)
    got = _call(routine, a.copy())
    return got is not None and bool(np.allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max()))
