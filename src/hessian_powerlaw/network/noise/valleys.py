"""Toy valleys of minima (the noise study's Fig. 2b-d): exact curvature, noise models, descent.

A valley is ``L(theta) = u(phi) theta1^2 + v(phi) theta2^2`` with non-degenerate theta1, theta2
and degenerate ``phi = (theta3, theta4)``, ``u = |p . phi + p0|``, ``v = |q . phi + q0|``. Every
point with theta1 = theta2 = 0 is a minimum; there the Hessian is diag(2u, 2v, 0, 0), its
trace 2(u + v) and the determinant of its non-degenerate block 4uv. While the signs of the two
arguments hold, the eigenvalues are linear in phi (constant gradients).

- ``trace``: the paper's valley, u = |theta3 + theta4|, v = |theta3 + 2 theta4|, started at
  theta = (0.1, 0.1, 0.5, 0.5) (u = 1, v = 1.5).
- ``anticorrelated`` (designed here; the paper prints no formula): u = |s|, v = |1 - 2s| with
  s = theta3 + theta4, started at theta = (0.1, 0.1, 0.1, 0.1) (s = 0.2). The trace 2(1 - s)
  falls with s while the log-determinant log 4s(1 - 2s) rises with s for s < 1/4, so a drift
  that lowers the trace raises the determinant and the reverse.

Why noise moves phi: with noise of variance c_i on theta_i, the discrete Ornstein-Uhlenbeck
process theta_i <- (1 - eta lambda_i) theta_i - eta xi_i has E theta_i^2 = eta c_i /
(lambda_i (2 - eta lambda_i)), and phi drifts by -eta/2 sum_i E theta_i^2 grad lambda_i per step.
SGD-like noise (c_i = c lambda_i) makes E theta_i^2 ~ eta c / 2 alike for every direction: the
drift is gradient descent on the trace, -(eta^2 c / 4) grad tr H. Isotropic noise (c_i = sigma^2)
makes E theta_i^2 ~ eta sigma^2 / (2 lambda_i): descent on log det, -(eta^2 sigma^2 / 4)
grad log det H. In the anticorrelated valley the two therefore move s in opposite directions.

Noise models, at the current point (all zero on the degenerate directions):

- ``sgd``: Gaussian with covariance c H_nd, H_nd = diag(2u, 2v) the Hessian's non-degenerate
  block at the nearest minimum, c = (1/S)(1 - S/M) for a batch of S out of M samples.
- ``isotropic``: Gaussian with covariance sigma^2 I on (theta1, theta2), sigma^2 = c tr(H_nd) / 2
  at the start: the same total variance as the SGD noise there, spread evenly.
- ``none``: gradient descent.

Numpy only; the repeats of one experiment run as one vectorised array.
"""

import math
import time

import numpy as np

VALLEYS = {
    # name: (p, p0, q, q0, start theta)
    "trace": ((1.0, 1.0), 0.0, (1.0, 2.0), 0.0, (0.1, 0.1, 0.5, 0.5)),
    "anticorrelated": ((1.0, 1.0), 0.0, (-2.0, -2.0), 1.0, (0.1, 0.1, 0.1, 0.1)),
}
NOISES = ("sgd", "isotropic", "none")
DEFAULTS = {
    "repeats": 100,
    "equilibrate_steps": 1000,
    "measure_steps": 1000,
    "batch_size": 50,
    "data_size": 1000,
    "trajectory_points": 50,
}


class ValleyError(ValueError):
    """Settings no toy experiment can use, with a one-line reason."""


def _coefficients(model):
    if model not in VALLEYS:
        raise ValleyError(f"unknown toy valley {model!r} (choose from {', '.join(VALLEYS)})")
    p, p0, q, q0, start = VALLEYS[model]
    return np.array(p), p0, np.array(q), q0, np.array(start)


def start(model: str) -> np.ndarray:
    """The starting point (4,) of a valley: off the valley by 0.1 in theta1 and theta2, so that
    the first (equilibration) steps fall into it."""
    return _coefficients(model)[4]


def _uv(model, theta):
    """Signed arguments (a, b) of u = |a| and v = |b|, shape theta.shape[:-1]."""
    p, p0, q, q0, _ = _coefficients(model)
    phi = theta[..., 2:]
    return phi @ p + p0, phi @ q + q0


def loss(model: str, theta: np.ndarray) -> np.ndarray:
    """L(theta) for theta of shape (..., 4)."""
    a, b = _uv(model, theta)
    return np.abs(a) * theta[..., 0] ** 2 + np.abs(b) * theta[..., 1] ** 2


def gradient(model: str, theta: np.ndarray) -> np.ndarray:
    """dL/dtheta, shape (..., 4) (away from the kinks a = 0, b = 0)."""
    p, _, q, _, _ = _coefficients(model)
    a, b = _uv(model, theta)
    t1, t2 = theta[..., 0], theta[..., 1]
    g = np.empty_like(theta)
    g[..., 0] = 2 * np.abs(a) * t1
    g[..., 1] = 2 * np.abs(b) * t2
    g[..., 2:] = (np.sign(a) * t1**2)[..., None] * p + (np.sign(b) * t2**2)[..., None] * q
    return g


def hessian(model: str, theta: np.ndarray) -> np.ndarray:
    """The exact 4 x 4 Hessian at one point theta (4,)."""
    p, _, q, _, _ = _coefficients(model)
    a, b = _uv(model, theta)
    h = np.zeros((4, 4))
    h[0, 0], h[1, 1] = 2 * abs(a), 2 * abs(b)
    h[0, 2:] = h[2:, 0] = 2 * theta[0] * np.sign(a) * p
    h[1, 2:] = h[2:, 1] = 2 * theta[1] * np.sign(b) * q
    return h


def trace(model: str, theta: np.ndarray) -> np.ndarray:
    """tr H = 2(u + v): it depends on phi only. Shape theta.shape[:-1]."""
    a, b = _uv(model, theta)
    return 2 * (np.abs(a) + np.abs(b))


def logdet(model: str, theta: np.ndarray) -> np.ndarray:
    """log det of the non-degenerate block, log(4 u v). Shape theta.shape[:-1]."""
    a, b = _uv(model, theta)
    return np.log(4 * np.abs(a) * np.abs(b))


def noise_scale(batch_size: int, data_size: int) -> float:
    """c = (1/S)(1 - S/M): the SGD noise covariance per unit of Hessian for a batch of S of M."""
    if not (isinstance(batch_size, int) and isinstance(data_size, int) and 1 <= batch_size <= data_size):
        raise ValleyError(f"need integers 1 <= batch size <= data size, got {batch_size} and {data_size}")
    return (1 - batch_size / data_size) / batch_size


def noise_covariance(model: str, noise: str, theta: np.ndarray, c: float, sigma2: float) -> np.ndarray:
    """The 4 x 4 covariance of the noise model at theta (4,)."""
    cov = np.zeros((4, 4))
    a, b = _uv(model, theta)
    if noise == "sgd":
        cov[0, 0], cov[1, 1] = c * 2 * abs(a), c * 2 * abs(b)
    elif noise == "isotropic":
        cov[0, 0] = cov[1, 1] = sigma2
    elif noise != "none":
        raise ValleyError(f"unknown noise model {noise!r} (choose from {', '.join(NOISES)})")
    return cov


def noise_draws(
    model: str, noise: str, theta: np.ndarray, c: float, sigma2: float, rng: np.random.Generator
) -> np.ndarray:
    """One draw of the noise per row of theta (R, 4): shape (R, 4)."""
    xi = np.zeros_like(theta)
    if noise == "none":
        return xi
    z = rng.standard_normal((theta.shape[0], 2))
    if noise == "sgd":
        a, b = _uv(model, theta)
        xi[:, 0] = np.sqrt(2 * c * np.abs(a)) * z[:, 0]
        xi[:, 1] = np.sqrt(2 * c * np.abs(b)) * z[:, 1]
    else:
        xi[:, :2] = math.sqrt(sigma2) * z
    return xi


def isotropic_variance(model: str, c: float) -> float:
    """sigma^2 = c tr(H_nd) / 2 at the start: the SGD noise's total variance, spread evenly."""
    return c * float(trace(model, start(model))) / 2


def predicted_rates(
    model: str, noise: str, lr: float, c: float, sigma2: float, theta: np.ndarray | None = None
) -> tuple[float, float]:
    """(trace change, log-det change) per step at the valley point below theta (default the
    start), from the stationary E theta_i^2 of the discrete process (the drift formula above)."""
    theta = start(model) if theta is None else np.asarray(theta)
    p, _, q, _, _ = _coefficients(model)
    a, b = _uv(model, theta)
    lam = np.array([2 * abs(a), 2 * abs(b)])
    grads = np.array([2 * np.sign(a) * p, 2 * np.sign(b) * q])  # grad_phi lambda_i, (2, 2)
    variance = {"sgd": c * lam, "isotropic": np.array([sigma2, sigma2]), "none": np.zeros(2)}[noise]
    second_moment = lr * variance / (lam * (2 - lr * lam))
    drift = -lr / 2 * second_moment @ grads
    return float(grads.sum(0) @ drift), float((grads / lam[:, None]).sum(0) @ drift)


def _check(lr, repeats, steps):
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValleyError(f"lr must be a positive finite number, got {lr}")
    if not (isinstance(repeats, int) and repeats >= 2):
        raise ValleyError(f"repeats must be an integer >= 2 (for a standard error), got {repeats}")
    for name, value in steps.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValleyError(f"{name} must be a positive integer, got {value}")


def _stable(model, lr):
    """Refuse a learning rate at which the non-degenerate directions diverge (eta lambda >= 2)."""
    lam_max = float(np.max(np.diag(hessian(model, start(model)))))
    if lr * lam_max >= 1.0:
        raise ValleyError(
            f"lr {lr:g} times the largest curvature {lam_max:g} of the {model} valley is >= 1: "
            f"noisy descent is not near a minimum there; use lr < {1 / lam_max:g}"
        )


def run(model: str, noise: str, lr: float, repeats: int = 100, seed: int = 0, **settings: int) -> dict:
    """One toy experiment: `repeats` noisy descents from the valley's start.

    Each descent takes `equilibrate_steps` steps, then `measure_steps` more over which the
    trace and log-det changes are measured.

    Parameters
    ----------
    model : str
        A valley of VALLEYS.
    noise : str
        A noise model of NOISES.
    lr : float
        The learning rate.
    repeats : int, default 100
        Independent descents.
    seed : int, default 0
        Seed of the noise.
    **settings
        equilibrate_steps, measure_steps, trajectory_points, batch_size and data_size (the SGD
        noise scale c = (1/S)(1 - S/M)).

    Returns
    -------
    dict
        A record of plain numbers: means and standard errors over the repeats of the changes over
        the measurement window and the rates per step, beside the predicted rates.
    """
    settings = {**DEFAULTS, **settings, "repeats": repeats}
    _check(lr, repeats, {k: settings[k] for k in ("equilibrate_steps", "measure_steps", "trajectory_points")})
    if noise not in NOISES:
        raise ValleyError(f"unknown noise model {noise!r} (choose from {', '.join(NOISES)})")
    _stable(model, lr)
    c = noise_scale(settings["batch_size"], settings["data_size"])
    sigma2 = isotropic_variance(model, c)
    clock = time.perf_counter()
    rng = np.random.default_rng(seed)
    theta = np.tile(start(model), (repeats, 1))
    signs = np.sign(_uv(model, theta))
    left = np.zeros(repeats, dtype=bool)
    total = settings["equilibrate_steps"] + settings["measure_steps"]
    every = max(total // settings["trajectory_points"], 1)
    trajectory = {"step": [], "trace": [], "logdet": [], "loss": []}
    marks = {}
    for step in range(total + 1):
        if step in (settings["equilibrate_steps"], total):
            marks[step] = (trace(model, theta), logdet(model, theta))
        if step % every == 0 or step == total:
            trajectory["step"].append(step)
            trajectory["trace"].append(float(trace(model, theta).mean()))
            trajectory["logdet"].append(float(logdet(model, theta).mean()))
            trajectory["loss"].append(float(loss(model, theta).mean()))
        if step == total:
            break
        xi = noise_draws(model, noise, theta, c, sigma2, rng)
        theta = theta - lr * (gradient(model, theta) + xi)
        left |= (np.sign(_uv(model, theta)) != signs).any(axis=0)
    if not np.isfinite(theta).all():
        raise ValleyError(f"the {model} valley run diverged at lr {lr:g}")
    (tr0, ld0), (tr1, ld1) = marks[settings["equilibrate_steps"]], marks[total]
    trace_change, logdet_change = tr1 - tr0, ld1 - ld0
    n = settings["measure_steps"]
    predicted_trace, predicted_logdet = predicted_rates(model, noise, lr, c, sigma2)
    return {
        "experiment": "toy-valley",
        "model": model,
        "noise": noise,
        "lr": float(lr),
        "seed": seed,
        **settings,
        "noise_scale": c,
        "isotropic_variance": sigma2,
        "start": start(model).tolist(),
        "trace_change": float(trace_change.mean()),
        "trace_change_se": _se(trace_change),
        "logdet_change": float(logdet_change.mean()),
        "logdet_change_se": _se(logdet_change),
        "trace_rate": float(trace_change.mean()) / n,
        "trace_rate_se": _se(trace_change) / n,
        "predicted_trace_rate": predicted_trace,
        "predicted_logdet_rate": predicted_logdet,
        "left_region": int(left.sum()),
        "trajectory": trajectory,
        "seconds": round(time.perf_counter() - clock, 3),
    }


def _se(samples):
    return float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
