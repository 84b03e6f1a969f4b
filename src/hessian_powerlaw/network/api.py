"""The Python API for your own network: the top-K loss-Hessian spectrum of any `torch.nn.Module`.

    import hessian_powerlaw as hp
    spectrum = hp.top_spectrum(model, torch.nn.CrossEntropyLoss(), (x, y), k=300)
    fit = hp.power_law_fit(spectrum.eigenvalues, k=300, bootstrap=200)

`model` is any module (copied, in eval mode: BatchNorm uses its running statistics and dropout
is off; the caller's model is left alone), `loss_fn(outputs, targets)` any callable with mean
reduction, `data` an (x, y) pair of tensors (x of shape (N, ...), y of shape (N, ...)) or an
iterable of such batches (a `DataLoader`, read once per block of products: data larger than
memory stream). The fast block products (`operators.sequential`) are used when the loss is a
plain `CrossEntropyLoss`, the data are tensors and the model is a ReLU/max-pool sequential
network; autograd products (`operators.generic`) everywhere else.
"""

import fnmatch
import time
from dataclasses import dataclass

import numpy as np
import torch

from hessian_powerlaw.network.device import pick_device
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.operators.generic import LossHessian, batches

__all__ = ["Spectrum", "parameter_blocks", "top_spectrum"]


@dataclass
class Spectrum:
    """Top-K eigenvalues (K,) descending, their residuals (K,) ||H v - lambda v|| / |lambda|,
    and what they cost."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: bool
    hvp_count: int
    data_passes: int
    seconds: float
    device: str
    solver: str
    n_params: int
    products: str


def parameter_blocks(model, blocks):
    """{block name: [parameter names]}: 'layer' groups the parameters of each module (e.g.
    'features.0' holds 'features.0.weight' and 'features.0.bias'); any other string is a
    comma-separated list of glob patterns over parameter names, one block per pattern."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if blocks == "layer":
        groups = {}
        for name in names:
            groups.setdefault(name.rpartition(".")[0] or name, []).append(name)
        return groups
    groups = {}
    for pattern in (p.strip() for p in blocks.split(",")):
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ValueError(f"blocks pattern {pattern!r} matches no parameter of the model")
        groups[pattern] = matched
    return groups


def _fast_operator(model, loss_fn, data, dtype):
    """The sequential block-product operator when it applies exactly, else None."""
    from hessian_powerlaw.network.operators import make_operator
    from hessian_powerlaw.network.operators.sequential import UnsupportedModel, plan

    is_ce = type(loss_fn) is torch.nn.CrossEntropyLoss
    if not (is_ce and loss_fn.reduction == "mean" and loss_fn.weight is None and loss_fn.ignore_index < 0):
        return None
    if not (isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data)):
        return None
    if data[1].dtype != torch.long:
        return None
    try:
        plan(model)
    except UnsupportedModel:
        return None
    return make_operator(model, *data, "sequential", dtype=dtype, label_smoothing=loss_fn.label_smoothing)


def _solve(op, k, solver, tol, seed, progress, device, products):
    start = time.perf_counter()
    result = top_eigenpairs(op, k, solver=solver, tol=tol, seed=seed, progress=progress)
    return Spectrum(
        eigenvalues=np.asarray(result.eigenvalues, dtype=float),
        residuals=np.asarray(result.residuals, dtype=float),
        converged=bool(result.converged),
        hvp_count=result.hvp_count,
        data_passes=result.data_passes,
        seconds=round(time.perf_counter() - start, 3),
        device=str(device),
        solver=solver,
        n_params=op.n,
        products=products,
    )


def top_spectrum(
    model,
    loss_fn,
    data,
    k,
    solver="block",
    device="cpu",
    blocks=None,
    tol=1e-3,
    dtype=torch.float32,
    seed=0,
    progress=False,
):
    """Top-k eigenvalues of the loss Hessian of `model` over `data` (see the module docstring).

    Returns a Spectrum; with `blocks` ('layer', or glob patterns), a dict from block name to
    the Spectrum of that diagonal block of the Hessian (its parameters varied, all others
    fixed), k capped at the block's size - 1. `solver`: block, lanczos, arpack, dense (exact,
    small models), power, slq (see eigensolvers). `device`: cpu, cuda, cuda:N or auto."""
    device = pick_device(device)
    model = model.to(device)
    if not hasattr(batches(data), "__iter__"):
        raise TypeError("data must be an (x, y) tuple of tensors or an iterable of (x, y) batches")
    if blocks is None:
        op = _fast_operator(model, loss_fn, data, dtype)
        products = "sequential" if op is not None else "autograd"
        op = op or LossHessian(model, loss_fn, data, dtype=dtype)
        return _solve(op, k, solver, tol, seed, progress, device, products)
    out = {}
    for name, names in parameter_blocks(model, blocks).items():
        op = LossHessian(model, loss_fn, data, names=names, dtype=dtype)
        if op.n < 2:
            continue  # a one-parameter block has no spectrum to fit
        out[name] = _solve(op, min(k, op.n - 1), solver, tol, seed, progress, device, "autograd")
    return out
