"""Curvature measurements along training: trace, extreme eigenvalues and loss of the
training-loss Hessian over the first `n_eval` training images (weight decay excluded, eval
mode), like the spectrum step."""

import time

import numpy as np
import torch

from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.operators import make_operator
from hessian_powerlaw.network.trace import estimate_trace

DEFAULTS = {
    "every": 0,
    "n_eval": 1000,
    "estimator": "hutchpp",
    "n_hvps": 30,
    "top_k": 5,
    "bottom_k": 5,
    "tol": 1e-3,
}


def measure(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: dict,
    seed: int = 0,
    label_smoothing: float = 0.0,
) -> dict:
    """One measurement at the model's current parameters (a record of plain numbers)."""
    start = time.perf_counter()
    op = make_operator(model, x, y, label_smoothing=label_smoothing)
    trace = estimate_trace(op, settings["estimator"], settings["n_hvps"], seed=seed)
    top = top_eigenpairs(op, settings["top_k"], tol=settings["tol"], seed=seed, progress=False)
    bottom = top_eigenpairs(
        op, settings["bottom_k"], tol=settings["tol"], seed=seed, progress=False, which="SA"
    )
    top_values = [float(v) for v in top.eigenvalues]
    bottom_values = [float(v) for v in bottom.eigenvalues]
    negative = [v for v in bottom_values if v < 0]
    return {
        "train_loss": op.loss(),
        "trace": trace["trace"],
        "trace_stderr": trace["stderr"],
        "trace_estimator": trace["estimator"],
        "trace_hvps": trace["hvps"],
        "top": top_values,
        "lambda_max": top_values[0],
        "logdet_top": float(np.sum(np.log(top_values))) if min(top_values) > 0 else None,
        "top_converged": bool(top.converged),
        "bottom": bottom_values,
        "lambda_min": bottom_values[0],
        "n_negative": len(negative),
        "neg_sum": float(sum(negative)),
        "bottom_converged": bool(bottom.converged),
        "n_eval": len(x),
        "hvps": op.hvp_count,
        "seconds": round(time.perf_counter() - start, 3),
    }
