"""Reaching a minimum, not approaching it: damped Newton-CG on the exact Hessian.

Gradient descent on the noise study's network stops 0.0125 above the loss floor after 10,000
epochs: the small curvature directions converge as (1 - lr lambda)^t. Newton steps do not care
about conditioning. Each step solves (H + mu I) d = -g by conjugate gradients on exact
Hessian-vector products, with the Levenberg-type damping mu = c ||g|| (superlinear near a
minimum, also where H is singular, as in a valley of degenerate minima: Li, Fukushima, Qi & Yamashita,
2004), stops CG at negative curvature, and backtracks along d until the loss falls.

Numpy over flat vectors and callables (like `projection`), so that a toy loss with a known
minimum set tests it and a network (`flat.FlatLoss`) uses it.
"""

from collections.abc import Callable

import numpy as np

__all__ = ["NewtonError", "newton_minimum"]


class NewtonError(ValueError):
    """Bad settings, or a loss that stops being finite."""


def _cg(hvp, g, mu, max_iter, rtol):
    """An approximate solution of (H + mu I) d = -g (d = -g if the first direction already has
    negative curvature), and the products used."""
    d = np.zeros_like(g)
    r = -g.copy()
    p = r.copy()
    rr = float(r @ r)
    stop = rtol * np.sqrt(rr)
    for i in range(max_iter):
        hp = hvp(p) + mu * p
        curvature = float(p @ hp)
        if curvature <= 0:
            return (d if i else -g), i + 1
        alpha = rr / curvature
        d = d + alpha * p
        r = r - alpha * hp
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= stop:
            return d, i + 1
        p = r + (rr_new / rr) * p
        rr = rr_new
    return d, max_iter


def newton_minimum(
    theta: np.ndarray,
    loss: Callable[[np.ndarray], float],
    gradient: Callable[[np.ndarray], np.ndarray],
    hvp: Callable[[np.ndarray, np.ndarray], np.ndarray],
    gtol: float = 1e-9,
    max_steps: int = 100,
    max_cg: int = 500,
    damping: float = 1.0,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """Damped Newton-CG from theta until the gradient's norm is below `gtol`.

    Parameters
    ----------
    theta : numpy.ndarray, shape (n,)
        Starting point (not changed).
    loss, gradient : callable
        theta -> float and theta -> (n,) array.
    hvp : callable
        (theta, v) -> H(theta) v, shape (n,).
    gtol : float
        Stop when ||g|| < gtol.
    max_steps, max_cg : int
        Newton steps, and CG iterations per step, at most.
    damping : float
        c in mu = c ||g||.
    progress : callable, optional
        Called with (step, loss, gradient norm) after every step.

    Returns
    -------
    theta : numpy.ndarray, shape (n,)
    info : dict
        ``steps``, ``hvps``, ``loss``, ``grad_norm``, ``converged`` and ``history`` (a list of
        [step, loss, gradient norm]).
    """
    if not (gtol > 0 and max_steps >= 1 and max_cg >= 1 and damping > 0):
        raise NewtonError(
            f"need gtol, damping > 0 and max_steps, max_cg >= 1 (got {gtol}, {damping}, "
            f"{max_steps}, {max_cg})"
        )
    theta = np.array(theta, dtype=float)
    value, g = float(loss(theta)), np.asarray(gradient(theta), dtype=float)
    history, hvps = [[0, value, float(np.linalg.norm(g))]], 0
    for step in range(1, max_steps + 1):
        norm = float(np.linalg.norm(g))
        if not (np.isfinite(value) and np.isfinite(norm)):
            raise NewtonError(f"the loss or its gradient became non-finite at Newton step {step - 1}")
        if norm < gtol:
            return theta, _info(step - 1, hvps, value, norm, True, history)
        d, used = _cg(lambda v, t=theta: hvp(t, v), g, damping * norm, max_cg, min(0.5, np.sqrt(norm)))
        hvps += used
        t, slope = 1.0, float(g @ d)
        while True:
            trial = theta + t * d
            trial_value = float(loss(trial))
            if np.isfinite(trial_value) and trial_value <= value + 1e-4 * t * slope:
                break
            t /= 2
            if t < 1e-10:
                return theta, _info(step - 1, hvps, value, norm, False, history)
        theta, value = trial, trial_value
        g = np.asarray(gradient(theta), dtype=float)
        history.append([step, value, float(np.linalg.norm(g))])
        if progress:
            progress(*history[-1])
    norm = float(np.linalg.norm(g))
    return theta, _info(max_steps, hvps, value, norm, norm < gtol, history)


def _info(steps, hvps, value, norm, converged, history):
    return {
        "steps": steps,
        "hvps": hvps,
        "loss": value,
        "grad_norm": norm,
        "converged": bool(converged),
        "history": history,
    }
