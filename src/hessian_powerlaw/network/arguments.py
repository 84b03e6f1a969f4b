"""The checks of `top_spectrum`'s arguments: one clear error naming the argument, before any
product is taken."""

import numbers
import os

import torch

from hessian_powerlaw.network.eigensolvers import NAMES, RESUMABLE
from hessian_powerlaw.network.operators.gauss_newton import CURVATURES
from hessian_powerlaw.network.operators.generic import is_pair

DTYPES = (torch.float32, torch.float64)


def check_data(data: object) -> None:
    """One clear error for data no Hessian can be taken over (before any product).

    Parameters
    ----------
    data : object
        What the caller passed as `top_spectrum`'s data.

    Raises
    ------
    TypeError, ValueError
        Naming what is wrong with it.
    """
    if is_pair(data):
        x, y = data
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"data: x holds no samples (shape {tuple(x.shape)})")
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"data: x has {len(x)} samples but y has shape {tuple(y.shape)}")
        return
    if isinstance(data, tuple | list) and len(data) == 2 and any(torch.is_tensor(t) for t in data):
        raise TypeError("data: an (x, y) pair must be a tuple of two tensors")
    if not hasattr(data, "__iter__") or isinstance(data, str | bytes | dict):
        raise TypeError("data must be an (x, y) tuple of tensors or an iterable of (x, y) batches")
    if iter(data) is data:
        raise TypeError(
            "data is an iterator (a generator?), which can be read only once; the solver reads the "
            "data once per block of products: pass a list of (x, y) batches or a DataLoader"
        )


def _integer(value, least):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_arguments(
    model: object,
    loss_fn: object,
    k: object,
    solver: object,
    tol: object,
    dtype: object,
    seed: object,
    blocks: object,
    solver_options: tuple,
    curvature: object,
) -> None:
    """One ValueError/TypeError naming the argument, for every argument top_spectrum takes.

    Parameters
    ----------
    model, loss_fn, k, solver, tol, dtype, seed, blocks, curvature : object
        `top_spectrum`'s arguments of these names.
    solver_options : tuple
        (slq_steps, block_size, checkpoint).

    Raises
    ------
    TypeError, ValueError
        Naming the first argument no spectrum can be computed from.
    """
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {', '.join(CURVATURES)}, got {curvature!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (requires_grad=True): no Hessian to take")
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable (outputs, targets) -> scalar, got {type(loss_fn).__name__}"
        )
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(
            f"loss_fn has reduction={reduction!r}; the Hessian of the data mean needs reduction='mean'"
        )
    if not _integer(k, 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if solver not in NAMES:
        raise ValueError(f"solver must be one of {', '.join(NAMES)}, got {solver!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if not _integer(seed, 0):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if blocks is not None and not isinstance(blocks, str):
        raise ValueError(f"blocks must be 'layer' or comma-separated glob patterns, got {blocks!r}")
    for name, value, least in zip(("slq_steps", "block_size"), solver_options[:2], (2, 1), strict=True):
        if value is not None and not _integer(value, least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    _check_checkpoint(solver_options[2], solver, blocks)


def _check_checkpoint(checkpoint, solver, blocks):
    """ValueError/TypeError for a checkpoint top_spectrum cannot keep."""
    if checkpoint is None:
        return
    if not isinstance(checkpoint, str | os.PathLike):
        raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
    if not os.fspath(checkpoint):
        raise ValueError("checkpoint must be a file path, got ''")
    if blocks is not None:
        raise ValueError("checkpoint is for the whole spectrum; per-block spectra (blocks=) keep none")
    if solver not in (*RESUMABLE, "auto"):
        raise ValueError(f"checkpoint is for the solvers that resume ({', '.join(RESUMABLE)}), not {solver}")
