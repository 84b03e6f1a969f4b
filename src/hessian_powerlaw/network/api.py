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

import copy
import fnmatch
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from hessian_powerlaw.network.arguments import check_arguments, check_data
from hessian_powerlaw.network.device import pick_device
from hessian_powerlaw.network.eigensolvers import FIXED_BUDGET, SolverCheckpoint, top_eigenpairs
from hessian_powerlaw.network.operators import distributed
from hessian_powerlaw.network.operators.gauss_newton import CURVATURES
from hessian_powerlaw.network.operators.generic import LossHessian, is_pair

__all__ = ["Spectrum", "parameter_blocks", "top_spectrum"]


@dataclass
class Spectrum:
    """The result of `top_spectrum`.

    Attributes
    ----------
    eigenvalues : numpy.ndarray
        Shape (K,), float64, descending, in the loss's units.
    residuals : numpy.ndarray
        Shape (K,): ``||H v - lambda v|| / |lambda|`` of each Ritz pair (explicit for arpack and
        power, the Lanczos estimate otherwise).
    converged : bool
        Every pair passed its solver's test (see `eigensolvers.top_eigenpairs`).
    hvp_count, data_passes : int
        Hessian-vector products, and passes over the data they took.
    seconds : float
        Wall time of the solve.
    device, solver : str
        Where and how the products ran.
    n_params : int
        Parameters of the Hessian (of the block, for block spectra).
    products : str
        ``"sequential"`` (exact hand-arranged products for ReLU/max-pool chains) or
        ``"autograd"`` (torch.func, any model).
    note : str or None
        Why the sequential products did not apply to a cross-entropy model, where they were
        considered.
    vectors : torch.Tensor or None
        With ``vectors=True``: the Ritz vectors, shape (n_params, K), orthonormal columns in
        the order of the eigenvalues, on the CPU; parameters in ``model.named_parameters()``
        order (trainable ones), each flattened.
    curvature : str
        ``"hessian"``, ``"ggn"`` or ``"fisher"``.
    choice : str or None
        With ``solver="auto"``: the solver chosen and the measured costs behind the choice.
    """

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
    note: str | None = None  # why the fast products were not used, where they were considered
    vectors: torch.Tensor | None = None  # (n_params, K) Ritz vectors, with vectors=True
    curvature: str = "hessian"
    choice: str | None = None  # solver="auto": what it chose and the timings behind it


def parameter_blocks(model: torch.nn.Module, blocks: str) -> dict[str, list[str]]:
    """The parameter groups of a block spectrum.

    Parameters
    ----------
    model : torch.nn.Module
        The network; only its trainable parameters are grouped.
    blocks : str
        ``"layer"`` groups the parameters of each module (``features.0`` holds
        ``features.0.weight`` and ``features.0.bias``); any other string is a comma-separated
        list of glob patterns over parameter names, one block per pattern.

    Returns
    -------
    dict of str to list of str
        Block name -> the names of its parameters, in the model's order.

    Raises
    ------
    ValueError
        A pattern that matches no trainable parameter.
    """
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


def _parallel(op):
    """The operator over every rank's data under torch.distributed; `op` itself otherwise."""
    return distributed.DataParallel(op) if distributed.active() else op


def _device_copy(model, device):
    """A copy of the caller's model on `device` (the caller's model is never moved)."""
    try:
        return copy.deepcopy(model).to(device)
    except RuntimeError as err:  # e.g. torch.nn.utils.weight_norm: its weights are not graph leaves
        raise ValueError(f"model cannot be copied ({str(err).splitlines()[0][:200]})") from None


def _fast_operator(model, loss_fn, data, dtype):
    """(the sequential block-product operator, None) when it applies exactly, else (None, why
    not, or None when the loss or data alone rule it out)."""
    from hessian_powerlaw.network.operators import make_operator
    from hessian_powerlaw.network.operators.sequential import UnsupportedModel

    is_ce = type(loss_fn) is torch.nn.CrossEntropyLoss
    if not (is_ce and loss_fn.reduction == "mean" and loss_fn.weight is None):
        return None, None
    if not is_pair(data) or data[1].dtype != torch.long or data[1].ndim != 1 or int(data[1].min()) < 0:
        return None, None
    try:
        op = make_operator(model, *data, "sequential", dtype=dtype, label_smoothing=loss_fn.label_smoothing)
    except UnsupportedModel as err:
        return None, str(err)
    return op, None


def _check_products(op, seed):
    """ValueError unless the products are fixed and symmetric, from three products: Hv twice
    (two passes over the data must agree: data or a forward that change from pass to pass, by
    random augmentation, a random subset or noise, have no single Hessian, and a solver run on
    them returns confident noise) and H(Hv), whose inner product with v must equal |Hv|^2 (a
    model whose second derivatives torch does not compute exactly gives a non-symmetric H)."""
    v = torch.randn(op.n, 1, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    first = op.matmat(v.to(op.dtype)).double()
    second = op.matmat(v.to(op.dtype)).double()
    if not (bool(torch.isfinite(first).all()) and bool(torch.isfinite(second).all())):
        raise ValueError("the Hessian product is not finite: the model's loss is not finite on these data")
    scale = float(torch.linalg.vector_norm(first))
    if scale == 0:
        return
    loose = op.dtype == torch.float32
    change = float(torch.linalg.vector_norm(first - second)) / scale
    if change > (1e-4 if loose else 1e-9):
        raise ValueError(
            f"the Hessian product changed by {change:.1e} (relative) between two passes over the same "
            "data: the data or the model's forward are random (random augmentation, a random subset, "
            "noise or dropout in forward()); make them fixed before taking a spectrum"
        )
    twice = op.matmat((first / scale).to(op.dtype)).double()
    asymmetry = abs(float(v[:, 0] @ twice[:, 0]) - scale) / scale
    if asymmetry > (1e-3 if loose else 1e-8):
        raise ValueError(
            f"the Hessian products are not symmetric (v.H(Hv) and |Hv|^2 differ by {asymmetry:.1e}, "
            "relative): torch does not compute this model's second derivatives exactly (e.g. "
            "parametrizations.weight_norm), so no spectrum of it can be trusted"
        )


def _solve(op, k, solver, tol, seed, progress, device, products, options, note=None):
    if not 1 <= k < op.n:
        raise ValueError(f"k={k} must be below the number of parameters ({op.n})")
    slq_steps, block_size, keep, checkpoint = options[0], options[1] or 16, options[2], options[3]
    if solver == "slq":
        slq_steps = slq_steps or min(op.n, max(3 * k, k + 100))
    start = time.perf_counter()
    result = top_eigenpairs(
        op,
        k,
        solver=solver,
        tol=tol,
        seed=seed,
        progress=progress,
        slq_steps=slq_steps,
        block_size=block_size,
        checkpoint=checkpoint and SolverCheckpoint.for_group(checkpoint),
    )
    if not result.converged and solver not in FIXED_BUDGET:
        name = result.choice.split(":")[0] if result.choice else solver
        warnings.warn(
            f"top_spectrum: {name} stopped after {result.steps} Krylov vectors without reaching tol "
            f"{tol} (worst residual {float(np.max(result.residuals)):.2g}); Spectrum.converged is False "
            "and the values near the K-th may be too low: loosen tol or try another solver",
            RuntimeWarning,
            stacklevel=4,
        )
    return Spectrum(
        eigenvalues=np.asarray(result.eigenvalues, dtype=float),
        residuals=np.asarray(result.residuals, dtype=float),
        converged=bool(result.converged),
        hvp_count=result.hvp_count,
        data_passes=result.data_passes,
        seconds=round(time.perf_counter() - start + result.earlier_seconds, 3),
        device=str(device),
        solver=result.choice.split(":")[0] if result.choice else solver,
        choice=result.choice,
        n_params=op.n,
        products=products,
        note=note,
        vectors=result.vectors.detach().cpu() if keep else None,
        curvature=getattr(op, "curvature", "hessian"),
    )


def top_spectrum(
    model: torch.nn.Module,
    loss_fn: Callable,
    data: tuple[torch.Tensor, torch.Tensor] | Iterable,
    k: int,
    solver: str = "auto",
    device: str | torch.device = "cpu",
    blocks: str | None = None,
    tol: float = 1e-3,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    progress: bool = False,
    slq_steps: int | None = None,
    block_size: int | None = None,
    curvature: str = "hessian",
    vectors: bool = False,
    checkpoint: str | os.PathLike | None = None,
) -> "Spectrum | dict[str, Spectrum]":
    """Top-k eigenvalues of the Hessian of the data mean of ``loss_fn(model(x), y)`` in the
    trainable parameters, in eval mode on a copy of the model (never changed or moved).

    Parameters
    ----------
    model : torch.nn.Module
        Any network with trainable parameters.
    loss_fn : callable
        ``loss_fn(outputs, targets) -> scalar tensor``, with mean reduction.
    data : tuple of (torch.Tensor, torch.Tensor) or iterable of such pairs
        ``(x, y)`` with x of shape (N, ...) and y of shape (N, ...), or a re-iterable of batches
        (a list, a ``DataLoader``) that is the same on every pass (two passes are compared).
    k : int
        Number of top eigenvalues, 1 <= k < number of parameters.
    solver : {"auto", "block", "lanczos", "arpack", "dense", "power", "slq"}, default "auto"
        Block or single-vector Lanczos (auto: whichever the operator's measured costs favour),
        ARPACK, the dense Hessian (small models), power iteration, or slq's Ritz values.
    device : str or torch.device, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU when there is one).
    blocks : str, optional
        ``"layer"`` or globs over parameter names: one spectrum per diagonal block.
    tol : float, default 1e-3
        Relative residual of a converged Ritz pair, in (0, 1).
    dtype : {torch.float32, torch.float64}, default torch.float32
        Precision of the products.
    seed : int, default 0
        Seed of the start vectors and of the data check.
    progress : bool, default False
        A progress bar on stderr.
    slq_steps : int, optional
        Lanczos steps of slq (default max(3k, k + 100)).
    block_size : int, optional
        Vectors per product of block Lanczos (default 16).
    curvature : {"hessian", "ggn", "fisher"}, default "hessian"
        The loss Hessian, the generalised Gauss-Newton matrix or the empirical Fisher.
    vectors : bool, default False
        Keep the Ritz vectors in ``Spectrum.vectors``, shape (n_params, k).
    checkpoint : str or os.PathLike, optional
        A file where the Lanczos solvers save their state every ten minutes: a call killed
        mid-solve and repeated resumes from it (removed at the end; whole spectra only).

    Returns
    -------
    Spectrum or dict of str to Spectrum
        Eigenvalues (k,) descending with residuals and costs; per block with ``blocks``.

    Raises
    ------
    TypeError, ValueError, DeviceError, SolverError
        One line naming the argument no spectrum can be computed from; data that change
        between passes; a non-symmetric Hessian; a missing device; a basis too large for memory.

    Warns
    -----
    RuntimeWarning
        When an iterative solver stops before its tolerance (``Spectrum.converged`` is False).

    Examples
    --------
    >>> import torch, hessian_powerlaw as hp
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> spectrum = hp.top_spectrum(model, torch.nn.CrossEntropyLoss(), (x, y), k=5, solver="dense")
    >>> spectrum.eigenvalues.shape, bool(spectrum.converged), spectrum.products
    ((5,), True, 'autograd')
    """
    with distributed.together():  # under torch.distributed: every rank checks its own shard
        check_arguments(
            model,
            loss_fn,
            k,
            solver,
            tol,
            dtype,
            seed,
            blocks,
            (slq_steps, block_size, checkpoint),
            curvature,
        )
        check_data(data)
        data = distributed.shard(data)
        model = _device_copy(model, pick_device(device))
    options = (slq_steps, block_size, bool(vectors), checkpoint)  # checked with the arguments
    solve = (solver, tol, seed, progress, str(next(model.parameters()).device), options)
    if blocks is None:
        return _whole_spectrum(model, loss_fn, data, (k, curvature, dtype), solve)
    return _block_spectra(CURVATURES[curvature], model, loss_fn, data, (k, blocks, dtype), solve)


def _block_spectra(operator, model, loss_fn, data, request, solve):
    """{block name: Spectrum} of the diagonal blocks of the curvature (`top_spectrum`'s blocks)."""
    (k, blocks, dtype), (solver, tol, seed, progress, device, options) = request, solve
    out = {}
    for name, names in parameter_blocks(model, blocks).items():
        with distributed.together():
            op = operator(model, loss_fn, data, names=names, dtype=dtype)
        op = _parallel(op)
        if op.n < 2:
            continue  # a one-parameter block has no spectrum to fit
        if not out:
            _check_products(op, seed)
        out[name] = _solve(op, min(k, op.n - 1), solver, tol, seed, progress, device, "autograd", options)
    return out


def _whole_spectrum(model, loss_fn, data, request, solve):
    """The Spectrum of the whole curvature matrix: the sequential products where they apply
    (the Hessian of a cross-entropy ReLU chain), autograd products checked first otherwise."""
    (k, curvature, dtype), (solver, tol, seed, progress, device, options) = request, solve
    with distributed.together():
        op, why = _fast_operator(model, loss_fn, data, dtype) if curvature == "hessian" else (None, None)
        op = op or CURVATURES[curvature](model, loss_fn, data, dtype=dtype)
    products = "autograd" if isinstance(op, LossHessian) else "sequential"
    op = _parallel(op)
    if products == "autograd":
        _check_products(op, seed)
    return _solve(op, k, solver, tol, seed, progress, device, products, options, why)
