"""Per-network analysis: top-K loss-Hessian eigenvalues, the shared power-law fit, eigengaps."""

import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from hessian_powerlaw.fit import FitError, gap_fit, power_law_fit
from hessian_powerlaw.network.device import machine, pick_device
from hessian_powerlaw.network.eigensolvers import FIXED_BUDGET, SolverCheckpoint, top_eigenpairs
from hessian_powerlaw.network.eigensolvers.dense import check_size
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.operators import distributed
from hessian_powerlaw.network.training import data_for, learned
from hessian_powerlaw.network.vectors import RitzVectors, layout_of, vector_megabytes
from hessian_powerlaw.records import GAP_FIT_KEYS, NETWORK_KEYS, RUN_KEYS

DTYPES = {"float32": torch.float32, "float64": torch.float64}
EVAL_SPLITS = ("train", "test")
OPERATORS = ("hessian", "ggn", "fisher", "gradient-covariance")


def eval_data(
    meta: dict,
    n_eval: int = 0,
    data_root: str | None = None,
    split: str = "train",
    dataset: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The data of the Hessian of a trained model.

    By default the training images the model was trained on (the first `n_eval` of them), with
    its training labels (noisy or shuffled ones too).

    Parameters
    ----------
    meta : dict
        The model file's metadata (data set, subset seed, normalisation, labels).
    n_eval : int, default 0
        Images kept; 0 keeps all.
    data_root : str, optional
        Where the data sets lie (default: the metadata's, then the package's own).
    split : str, default "train"
        'test': the test images of that data set, with true labels.
    dataset : str, optional
        Another data set of the same image shape (its own normalisation, true labels; Table 7's
        CIFAR-100 model on CIFAR-10), its training or test split.

    Returns
    -------
    x : torch.Tensor
        Images, shape (N, C, H, W), float32.
    y : torch.Tensor
        Labels, shape (N,), int64.
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown eval split {split!r} (choose from {', '.join(EVAL_SPLITS)})")
    spec = meta
    if dataset and dataset != meta["dataset"]:
        spec = {**meta, "dataset": dataset, "n_train": 0, "label_noise": 0.0, "labels": "true"}
    data = data_for(spec, data_root)
    x, y = data[split]
    if list(x.shape[1:]) != list(meta["in_shape"]):
        raise ValueError(
            f"{spec['dataset']} images have shape {tuple(x.shape[1:])} "
            f"but the model takes {tuple(meta['in_shape'])}"
        )
    if data["classes"] > meta["classes"]:
        raise ValueError(f"{spec['dataset']} has {data['classes']} classes, the model {meta['classes']}")
    if n_eval:
        if n_eval > len(x):
            raise ValueError(
                f"n_eval={n_eval} but the {split} split of {spec['dataset']} has {len(x)} images"
            )
        x, y = x[:n_eval], y[:n_eval]
    return x, y


@dataclass(frozen=True)
class SpectrumSettings:
    """The settings of one network spectrum.

    The dnn-spectrum options of the option table (`options.COMMANDS['dnn-spectrum']`, with `k`
    for spectrum_k) and the command's own flags.

    operator 'hessian' is the loss Hessian (with weight_decay_term, of the loss plus the
    training's weight-decay term wd/2 ||theta||^2); 'ggn' the generalised Gauss-Newton matrix
    and 'fisher' the empirical Fisher of the same loss (`operators.gauss_newton`);
    'gradient-covariance' the covariance of the batch gradients at batch size gradient_batch.

    Attributes
    ----------
    k, n_eval, solver, tol, dtype, device, verify, steps_per_k, seed, memory_limit : various
        The dnn-spectrum options of these names (the configuration reference; `k` is spectrum_k).
    slq_steps, block_size, weight_decay_term, hessian, bootstrap, bootstrap_seed : various
        Likewise.
    eval_split, eval_dataset, operator, gradient_batch, gap_k, cache_gib : various
        Likewise.
    data_root : str or None
        Where the data sets lie.
    progress : bool
        Progress on stderr.
    variant : str
        The record's name for this spectrum ('spectrum', or a fidelity variant).
    trace_probes : int
        Products of the deflated trace estimate (exact for the dense solver and the gradient
        covariance).
    vectors : bool
        Also return the Ritz vectors (`vectors.RitzVectors`).
    checkpoint : str, SolverCheckpoint or None
        Where the Lanczos solvers save their state (a path: every ten minutes) and resume from
        (`eigensolvers.checkpoint`; removed when the solve ends).
    """

    k: int = 1000
    n_eval: int = 0
    solver: str = "block"
    tol: float = 1e-3
    dtype: str = "float32"
    device: str = "auto"
    verify: bool = False
    data_root: str | None = None
    steps_per_k: float | None = None
    seed: int = 0
    progress: bool = True
    memory_limit: int | None = None
    slq_steps: int | None = None
    block_size: int = 16
    weight_decay_term: bool = False
    variant: str = "spectrum"
    hessian: str = "auto"
    bootstrap: int = 0
    bootstrap_seed: int = 0
    eval_split: str = "train"
    eval_dataset: str | None = None
    operator: str = "hessian"
    gradient_batch: int = 1
    gap_k: int = 0
    cache_gib: float | None = None
    trace_probes: int = 32
    vectors: bool = False
    checkpoint: "str | SolverCheckpoint | None" = None


SOLVER_OPTIONS = (
    "tol",
    "steps_per_k",
    "seed",
    "verify",
    "memory_limit",
    "progress",
    "slq_steps",
    "block_size",
    "checkpoint",
)


def spectrum(
    model_path: str | os.PathLike, settings: "SpectrumSettings | None" = None
) -> tuple[dict, np.ndarray, np.ndarray, RitzVectors | None]:
    """Top-K spectrum and power-law fit of a saved model's curvature operator.

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file written by `train` (loaded without unpickling).
    settings : SpectrumSettings, optional
        The operator (loss Hessian, GGN, Fisher or gradient covariance), its data, K, solver,
        precision and device (the defaults when not given).

    Returns
    -------
    tuple of (dict, numpy.ndarray, numpy.ndarray, RitzVectors or None)
        The NETWORK_KEYS record (run, solver costs and checks, fit, verdict); eigenvalues (K,)
        descending and residuals (K,), float64; the Ritz vectors when the settings ask for them.

    Raises ValueError for settings no operator can serve, SolverError for a failed solve.
    """
    s = settings or SpectrumSettings()
    start = time.perf_counter()
    if s.operator not in OPERATORS:
        raise ValueError(f"unknown operator {s.operator!r} (choose from {', '.join(OPERATORS)})")
    if s.operator != "hessian" and s.weight_decay_term:
        raise ValueError(
            f"--weight-decay-term is for the Hessian; the {s.operator} operator has no such term"
        )
    device = pick_device(s.device)
    model, meta = load_model(model_path, device)
    if s.solver == "dense":  # refused before any data is read
        check_size(sum(p.numel() for p in model.parameters() if p.requires_grad), DTYPES[s.dtype], device)
    x, y = eval_data(meta, s.n_eval, s.data_root, s.eval_split, s.eval_dataset)
    n_eval = len(x)
    if distributed.active() and s.operator == "gradient-covariance":
        raise ValueError(
            "data-parallel runs take the Hessian, GGN or Fisher (the gradient covariance is not a data mean)"
        )
    x, y = distributed.shard((x, y))
    shift = meta["weight_decay"] if s.weight_decay_term else 0.0
    smoothing = meta.get("label_smoothing", 0.0)
    op, described = _operator(model, x, y, s, shift, smoothing)
    op = distributed.DataParallel(op) if distributed.active() else op
    if s.vectors and s.progress:
        print(
            f"dnn-spectrum: the {s.k} Ritz vectors of {op.n} parameters take "
            f"{vector_megabytes(op.n, s.k, DTYPES[s.dtype]):.1f} MB",
            file=sys.stderr,
        )
    result = top_eigenpairs(op, s.k, solver=s.solver, **{name: getattr(s, name) for name in SOLVER_OPTIONS})
    where = f"{n_eval} {s.eval_split} images" + (f" of {s.eval_dataset}" if s.eval_dataset else "")
    hessian = (
        f"{described} over {where}; "
        + (f"label smoothing {smoothing:g}; " if smoothing else "")
        + (f"plus weight decay ({shift:g} I)" if shift else "weight decay excluded")
        + "; eval mode"
    )
    record = _record(s, meta, n_eval, hessian, device, result)
    if result.full is not None:  # every eigenvalue (dense): exact sums over the spectrum
        record.update(spectrum_sums(result.full), trace_estimator="exact", trace_stderr=0.0, trace_hvps=0)
    else:
        record.update(_trace(op, result, s.trace_probes, s.seed))
    values = np.asarray(result.eigenvalues, dtype=float)
    fit_record(
        record,
        values,
        s.k,
        chance=1 / meta["classes"],
        bootstrap=s.bootstrap,
        seed=s.bootstrap_seed,
        gap_k=s.gap_k,
    )
    record["spectrum_seconds"] = round(time.perf_counter() - start + result.earlier_seconds, 2)
    record["train_seconds"] = meta.get("train_seconds")
    record["seconds"] = round(record["spectrum_seconds"] + (record["train_seconds"] or 0.0), 2)
    record["train_command"] = meta.get("command")
    record["peak_mb"] = peak_memory_mb(device)
    vectors = RitzVectors(result.vectors.detach().cpu(), layout_of(model)) if s.vectors else None
    return record, values, result.residuals, vectors


def _record(s, meta, n_eval, hessian, device, result):
    """The record's run, data and solver keys (NETWORK_KEYS; fit and trace keys come later)."""
    record = dict.fromkeys(NETWORK_KEYS)
    record.update({key: meta.get(key) for key in RUN_KEYS})
    record["n_train"] = meta["n_train_used"]
    solver = result.choice.split(":")[0] if result.choice else s.solver  # auto: the one it chose
    record.update(
        variant=s.variant,
        n_eval=n_eval,
        eval_split=s.eval_split,
        eval_dataset=s.eval_dataset or meta["dataset"],
        operator=s.operator,
        gradient_batch=s.gradient_batch if s.operator == "gradient-covariance" else None,
        hessian=hessian,
        solver=solver,
        solver_choice=result.choice,
        slq_steps=s.slq_steps if s.solver == "slq" else None,
        weight_decay_term=bool(s.weight_decay_term),
        tol=s.tol,
        dtype=s.dtype,
        device=device,
        threads=torch.get_num_threads(),
        machine=machine(device),
        **_solver_keys(result, solver),
    )
    return record


def _solver_keys(result, solver):
    """The record keys that describe a solver's run (SolverResult)."""
    return {
        "block_size": result.block if solver == "block" else None,
        "n_modes": len(result.eigenvalues),
        "lambda_max": float(result.eigenvalues[0]),
        "noise_floor": float(result.noise_floor),
        "converged": bool(result.converged),
        "max_residual": float(np.max(result.residuals)),
        "residual_kind": result.residual_kind,
        "orthogonality": float(result.orthogonality),
        "replaced": int(result.replaced),
        "steps": result.steps,
        "hvp_count": result.hvp_count,
        "data_passes": result.data_passes,
    }


def peak_memory_mb(device: str | torch.device) -> float:
    """Peak resident memory of this process so far (MB), or the peak CUDA allocation on a GPU."""
    if str(device).startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _operator(model, x, y, s, shift, smoothing):
    """(the operator of the record, a few words saying what it is) for the settings `s`."""
    from hessian_powerlaw.network.operators import HessianOperator, make_operator
    from hessian_powerlaw.network.operators.gradient_covariance import GradientCovariance

    operator, dtype = s.operator, DTYPES[s.dtype]
    if operator == "gradient-covariance":
        op = GradientCovariance(model, x, y, s.gradient_batch, dtype, smoothing)
        return op, f"covariance of {op.m} batch gradients of batch size {s.gradient_batch}"
    if operator in ("ggn", "fisher"):
        from hessian_powerlaw.network.operators.gauss_newton import CURVATURES

        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
        op = CURVATURES[operator](model, loss_fn, (x, y), dtype=dtype)
        name = "generalised Gauss-Newton matrix" if operator == "ggn" else "empirical Fisher"
        return op, f"{name} of the mean cross-entropy (autograd products)"
    cache = None if s.cache_gib is None else int(s.cache_gib * 2**30)
    op = make_operator(model, x, y, s.hessian, dtype, shift, label_smoothing=smoothing, cache_bytes=cache)
    kind = "autograd" if isinstance(op, HessianOperator) else "sequential"
    note = f"; {op.note}" if op.note else ""
    return op, f"mean cross-entropy Hessian ({kind} products{note})"


def _trace(op, result, probes, seed):
    """The record's trace keys: exact where the operator knows it, else deflated Hutchinson."""
    from hessian_powerlaw.network.trace import deflated_trace

    if hasattr(op, "trace"):
        return {"trace": op.trace(), "trace_stderr": 0.0, "trace_estimator": "exact", "trace_hvps": 0}
    estimate = deflated_trace(op.matmat, result.vectors, result.eigenvalues, probes, seed)
    return {
        "trace": estimate["trace"],
        "trace_stderr": estimate["stderr"],
        "trace_estimator": estimate["estimator"],
        "trace_hvps": estimate["hvps"],
    }


def spectrum_sums(values: np.ndarray) -> dict:
    """Trace, smallest eigenvalue and the count and sum of the negative eigenvalues of a full
    spectrum (n,)."""
    values = np.asarray(values, dtype=float)
    negative = values[values < 0]
    return {
        "trace": float(values.sum()),
        "lambda_min": float(values.min()),
        "n_negative": int(negative.size),
        "negative_sum": float(negative.sum()),
    }


def fit_record(
    record: dict,
    values: np.ndarray,
    k: int,
    chance: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    gap_k: int = 0,
) -> None:
    """Fill the fit and eigengap-fit keys; no verdict unless the solver converged (except for
    the fixed-budget methods, SLQ and power iteration, whose values are fitted as they come:
    that is the method; `converged` and `max_residual` say how good they are), and none when
    fewer than K eigenvalues lie above the solver's noise floor (a Hessian of rank below K)."""
    if not record["converged"] and record["solver"] not in FIXED_BUDGET:
        record.update(
            status="not_converged",
            reason=f"{record['solver']} did not converge to tol {record['tol']} in {record.get('steps')} "
            f"columns (worst residual {record.get('max_residual', float('nan')):.2g}); "
            "try a larger --steps-per-k or a looser --tol",
        )
        return
    floor = record.get("noise_floor") or 0.0
    above = int(np.count_nonzero(np.asarray(values) > floor))
    if above < k:
        record.update(
            status="skipped",
            reason=f"only {above} of the top-{k} eigenvalues exceed the noise floor {floor:.2g} "
            f"(zero to working precision): the Hessian's rank is below K{_collapse_hint(record, chance)}",
        )
        return
    try:
        record.update(power_law_fit(values, k, bootstrap=bootstrap, seed=seed))
    except FitError as err:
        record.update(status="skipped", reason=str(err))
        return
    record["gap_beta_expected"] = 1.0 + 1.0 / (record["s"] + 1.0)
    try:
        gap = gap_fit(values[:k], gap_k)
        record.update({f"gap_{key}": gap[key] for key in GAP_FIT_KEYS})
    except FitError as err:
        record["reason"] = f"eigengap fit: {err}"
    record["status"] = "ok"


def _collapse_hint(record, chance):
    """'; the network did not learn (...)' when a trained run ended at chance accuracy."""
    acc = record.get("train_acc")
    if record.get("epochs") and acc is not None and chance and not learned(acc, 1 / chance):
        return f"; the network did not learn (training accuracy {acc:.3f}, chance {chance:.3f})"
    return ""
