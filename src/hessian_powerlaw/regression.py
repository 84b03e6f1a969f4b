"""Straight-line fits with standard errors (the noise study's rates and the curvature tables)."""

import math

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

__all__ = ["linear_fit"]


def linear_fit(x: ArrayLike, y: ArrayLike) -> dict:
    """Least-squares line y = slope x + intercept over (n,) arrays: {'n_points', 'slope',
    'slope_se', 'intercept', 'intercept_se', 'r2'}. NaN where no line is defined (fewer than 3
    points or x constant); R^2 is NaN when y is constant (nothing to explain)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"n_points": len(x)}
    if len(x) < 3 or np.ptp(x) == 0:
        return {**out, **dict.fromkeys(("slope", "slope_se", "intercept", "intercept_se", "r2"), math.nan)}
    if np.ptp(y) == 0:
        return {
            **out,
            "slope": 0.0,
            "slope_se": 0.0,
            "intercept": float(y[0]),
            "intercept_se": 0.0,
            "r2": math.nan,
        }
    res = scipy.stats.linregress(x, y)
    return {
        **out,
        "slope": float(res.slope),
        "slope_se": float(res.stderr),
        "intercept": float(res.intercept),
        "intercept_se": float(res.intercept_stderr),
        "r2": float(res.rvalue**2),
    }
