"""Your own model and data from import paths ('package.module:function'), never from pickles.

`dnn-spectrum --model-factory pkg.mod:build [--state-dict w.pt] --data-factory pkg.data:loader`
imports `build` and calls it with no arguments for the `torch.nn.Module`, loads the weights
with `torch.load(..., weights_only=True)` (tensors only: no code runs), calls `loader` for an
(x, y) pair of tensors or an iterable of (x, y) batches, and hands both to `api.top_spectrum`.
"""

import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hessian_powerlaw.fit import FitError, power_law_fit
from hessian_powerlaw.network.api import Spectrum, top_spectrum
from hessian_powerlaw.network.vectors import RitzVectors, layout_of

LOSSES = {"cross-entropy": torch.nn.CrossEntropyLoss, "mse": torch.nn.MSELoss}


class FactoryError(ValueError):
    """A factory that cannot be imported or does not return what it must, in one line."""


def load_callable(path: str) -> Callable:
    """The function named by 'package.module:function' (the working directory is importable)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise FactoryError(f"{path!r} is not of the form package.module:function")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        target = importlib.import_module(module_name)
    except ImportError as err:
        raise FactoryError(f"cannot import {module_name!r} for {path}: {err}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise FactoryError(f"{module_name} has no attribute {attribute!r} ({path})")
        target = getattr(target, part)
    if not callable(target):
        raise FactoryError(f"{path} is not callable")
    return target


def build_model(model_factory: str, state_dict: str | os.PathLike | None = None) -> torch.nn.Module:
    """The factory's module, with the weights of `state_dict` (a tensor-only file) loaded."""
    model = load_callable(model_factory)()
    if not isinstance(model, torch.nn.Module):
        raise FactoryError(f"{model_factory} returned {type(model).__name__}, not a torch.nn.Module")
    if state_dict:
        try:
            weights = torch.load(state_dict, map_location="cpu", weights_only=True)
        except Exception as err:  # a pickle with code, a truncated file: refused, never run
            raise FactoryError(
                f"{state_dict}: not a tensor-only state dict ({' '.join(str(err).split())[:200]})"
            ) from None
        if isinstance(weights, dict) and "state_dict" in weights:
            weights = weights["state_dict"]
        try:
            model.load_state_dict(weights)
        except (RuntimeError, TypeError) as err:
            raise FactoryError(
                f"{state_dict} does not fit {model_factory}: {' '.join(str(err).split())[:300]}"
            ) from None
    return model


def spectrum_record(
    model_factory: str,
    data_factory: str,
    state_dict: str | os.PathLike | None = None,
    loss: str = "cross-entropy",
    k: int = 100,
    bootstrap: int = 0,
    seed: int = 0,
    **options: object,
) -> tuple:
    """The top-K spectrum of a model your own factory builds, as a record.

    Parameters
    ----------
    model_factory : str
        ``package.module:function`` returning a ``torch.nn.Module``.
    data_factory : str
        ``package.module:function`` returning (x, y) tensors or an iterable of (x, y) batches.
    state_dict : str or os.PathLike, optional
        Weights to load into the model (``torch.load(weights_only=True)``).
    loss : str, default "cross-entropy"
        A name of LOSSES.
    k : int, default 100
        Eigenvalues.
    bootstrap : int, default 0
        Bootstrap draws of the fit's KS p-value.
    seed : int, default 0
        Seed of the solver and the bootstrap.
    **options
        Passed to `top_spectrum` (solver, tol, dtype, blocks, ...).

    Returns
    -------
    tuple
        (record, eigenvalues (K,), residuals (K,), `vectors.RitzVectors` or None); with
        options['blocks'] (a list of block records, one per parameter group, None, None, None).

    Raises
    ------
    FactoryError
        One line naming the factory that cannot be imported, called or used.
    """
    if loss not in LOSSES:
        raise FactoryError(f"unknown loss {loss!r} (choose from {', '.join(LOSSES)})")
    start = time.perf_counter()
    model = build_model(model_factory, state_dict)
    data = load_callable(data_factory)()
    result = top_spectrum(model, LOSSES[loss](), data, k, **options)
    base = {
        "model_factory": model_factory,
        "data_factory": data_factory,
        "state_dict": state_dict,
        "loss": loss,
    }
    record, values, residuals = summarise(result, base, bootstrap, seed, start)
    if isinstance(result, dict) or result.vectors is None:
        return record, values, residuals, None
    return record, values, residuals, RitzVectors(result.vectors, layout_of(model))


def summarise(
    result: Spectrum | dict, base: dict, bootstrap: int = 0, seed: int = 0, start: float | None = None
) -> tuple:
    """Records of a `top_spectrum` result.

    Parameters
    ----------
    result : Spectrum or dict
        One spectrum, or {block name: Spectrum} of a per-block run.
    base : dict
        The keys every record starts with.
    bootstrap : int, default 0
        Bootstrap draws of the fit's KS p-value.
    seed : int, default 0
        Seed of the bootstrap.
    start : float, optional
        A ``time.perf_counter()`` reading: the record's 'seconds' are counted from it.

    Returns
    -------
    tuple
        (record, eigenvalues (K,), residuals (K,)) of a Spectrum, or (block rows, None, None).
    """
    if isinstance(result, dict):
        rows = [{**base, "block": name, **_summary(s, bootstrap, seed)} for name, s in result.items()]
        return rows, None, None
    record = {**base, **_summary(result, bootstrap, seed)}
    if start is not None:
        record["seconds"] = round(time.perf_counter() - start, 2)
    return record, result.eigenvalues, result.residuals


def _summary(spectrum, bootstrap, seed):
    out = {
        "n_params": spectrum.n_params,
        "k": len(spectrum.eigenvalues),
        "solver": spectrum.solver,
        "products": spectrum.products,
        "products_note": spectrum.note,
        "curvature": spectrum.curvature,
        "solver_choice": spectrum.choice,
        "device": spectrum.device,
        "converged": spectrum.converged,
        "lambda_max": float(spectrum.eigenvalues[0]),
        "max_residual": float(np.max(spectrum.residuals)),
        "hvp_count": spectrum.hvp_count,
        "data_passes": spectrum.data_passes,
        "seconds": spectrum.seconds,
    }
    try:
        out.update(
            power_law_fit(spectrum.eigenvalues, len(spectrum.eigenvalues), bootstrap=bootstrap, seed=seed)
        )
        out.update(status="ok", reason=None)
    except FitError as err:
        out.update(status="skipped", reason=str(err))
    return out
