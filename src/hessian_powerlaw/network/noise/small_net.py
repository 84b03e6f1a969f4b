"""The noise study's network at its own scale: 500 MNIST images average-pooled to 14 x 14, one
hidden layer of 30 ReLU units (196*30 + 30 + 30*10 + 10 = 6220 parameters), label-smoothed
cross-entropy, no weight decay.

- `minimum`: full-batch gradient descent from a seeded initialisation (the paper: lr 0.1,
  10,000 epochs), saved as an ordinary model file (`training.load_model`, `dnn-spectrum` read it).
- `descend`: from such a state, constant-rate noisy descent with one of NOISES, the full-batch
  loss (and optionally the exact Hessian trace) measured every `every` steps:
  ``sgd`` (mini-batches of S drawn without replacement), ``gd`` (full batch),
  ``isotropic`` (full batch plus Gaussian noise over all parameters with E||xi||^2 =
  ||g_S - g||^2, the SGD noise's size at that step), ``isotropic-topk`` (the same size, but
  confined to the span of the top-k Hessian eigenvectors, recomputed every `refresh` steps:
  the paper's noise in the non-degenerate subspace).
"""

import math
import sys
import time
from pathlib import Path

import torch
from numpy.typing import ArrayLike
from torch import nn

from hessian_powerlaw.network import datasets
from hessian_powerlaw.network.errors import TrainingError, diverged
from hessian_powerlaw.network.model_files import save_atomic
from hessian_powerlaw.network.models import build, n_params
from hessian_powerlaw.network.noise import DESCENT_NOISES
from hessian_powerlaw.network.training import evaluate

SMALL_NET = {
    "dataset": "mnist",
    "n_train": 500,
    "pool": 2,
    "width": 30,
    "label_smoothing": 0.1,
    "normalization": "global",
    "data_seed": 0,
}
NOISES = DESCENT_NOISES


def smoothing_floor(label_smoothing: float, classes: int) -> float:
    """The least label-smoothed cross-entropy, the entropy of the smoothed targets: the loss of
    a genuine minimum that fits every image."""
    on = 1 - label_smoothing + label_smoothing / classes
    off = label_smoothing / classes
    return -on * math.log(on) - ((classes - 1) * off * math.log(off) if off > 0 else 0.0)


def load_data(settings: dict, data_root: str | None = None) -> dict:
    """{'train': (x, y), 'test': (x, y), 'classes'} of the study's seeded, pooled subset."""
    return datasets.load(
        settings["dataset"],
        data_root or None,
        settings["n_train"],
        settings["data_seed"],
        settings["normalization"],
        pool=settings["pool"],
    )


def data_of(meta: dict) -> dict:
    """The data a saved small-network state was trained on (its metadata's settings)."""
    settings = {k: meta.get(k, SMALL_NET[k]) for k in SMALL_NET if k != "data_seed"}
    return load_data({**settings, "data_seed": meta["seed"]}, meta.get("data_root") or None)


def _meta(settings, model, data, init_seed, phase, data_root=None):
    """Model-file metadata that `training.load_model` and `spectrum.eval_data` understand."""
    dtype = next(model.parameters()).dtype
    (x, y), (x_test, y_test) = data["train"], data["test"]
    smoothing = settings["label_smoothing"]
    train_loss, train_acc = evaluate(model, x.to(dtype), y, label_smoothing=smoothing)
    test_loss, test_acc = evaluate(model, x_test.to(dtype), y_test, label_smoothing=smoothing)
    return {
        "model": "fcn",
        "dataset": settings["dataset"],
        "data_root": str(data_root or ""),
        "n_train": settings["n_train"],
        "normalization": settings["normalization"],
        "label_noise": 0.0,
        "label_smoothing": smoothing,
        "pool": settings["pool"],
        "seed": settings["data_seed"],
        "init_seed": init_seed,
        "depth": 1,
        "width": settings["width"],
        "weight_decay": 0.0,
        "schedule": "constant",
        **phase,
        "n_params": n_params(model),
        "n_train_used": len(x),
        "train_loss": train_loss,
        "excess_loss": train_loss - smoothing_floor(smoothing, data["classes"]),
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "device": "cpu",
        "in_shape": list(x.shape[1:]),
        "classes": data["classes"],
    }


def minimum(
    settings: dict,
    init_seed: int,
    out: str | Path,
    epochs: int = 10000,
    lr: float = 0.1,
    data_root: str | None = None,
    progress: bool = True,
    refine_steps: int = 0,
) -> dict:
    """Train the study's small network to a minimum and save it.

    Full-batch GD from the seeded initialisation for `epochs` steps, then (`refine_steps` > 0)
    up to that many Levenberg-Marquardt steps on the Gauss-Newton matrix
    (`newton.newton_minimum`, float64: the saved model is then float64).

    Parameters
    ----------
    settings : dict
        The small network's settings (SMALL_NET: data set, training size, pooling, width, label
        smoothing, normalisation, data seed).
    init_seed : int
        Seed of the initialisation.
    out : str or Path
        The model file to write (atomically).
    epochs : int, default 10000
        Full-batch gradient steps.
    lr : float, default 0.1
        Their learning rate.
    data_root : str, optional
        Where the data sets lie.
    progress : bool, default True
        Progress on stderr.
    refine_steps : int, default 0
        Levenberg-Marquardt steps after the descent.

    Returns
    -------
    dict
        The model file's metadata, with the loss every epochs/100 steps as 'history' and the
        refinement's as 'refine' and 'refine_history'.
    """
    settings = {**SMALL_NET, **settings}
    data = load_data(settings, data_root)
    x, y = data["train"]
    torch.manual_seed(init_seed)
    model = build("fcn", tuple(x.shape[1:]), data["classes"], depth=1, width=settings["width"])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    history, every, clock = [], max(epochs // 100, 1), time.perf_counter()
    for epoch in range(epochs):
        loss = nn.functional.cross_entropy(model(x), y, label_smoothing=settings["label_smoothing"])
        if diverged(loss.item(), data["classes"]):
            raise TrainingError(
                f"gradient descent diverged at epoch {epoch} (lr {lr:g}, loss {loss.item():.4g})"
            )
        if epoch % every == 0:
            history.append([epoch, loss.item()])
            if progress:
                print(f"noise-minimum: epoch {epoch}/{epochs}, loss {loss.item():.5f}", file=sys.stderr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    phase = {"optimizer": "gd", "lr": lr, "batch_size": len(x), "epochs": epochs}
    refined = (
        _refine(model, x, y, settings["label_smoothing"], refine_steps, progress) if refine_steps else {}
    )
    if refined:
        model = refined.pop("model")
        phase["refine"] = {k: v for k, v in refined.items() if k != "history"}
    meta = _meta(settings, model, data, init_seed, phase, data_root)
    if diverged(meta["train_loss"], data["classes"]):
        raise TrainingError(f"gradient descent diverged (lr {lr:g}, final loss {meta['train_loss']:.4g})")
    meta["seconds"] = round(time.perf_counter() - clock, 2)
    save_atomic({"state_dict": model.state_dict(), "meta": meta}, out)
    return {**meta, "history": history, **({"refine_history": refined["history"]} if refined else {})}


def _refine(model, x, y, smoothing, steps, progress):
    """Levenberg-Marquardt (Gauss-Newton) steps from the model's parameters: a float64 copy of the
    model at the point reached, and the solver's summary."""
    from hessian_powerlaw.network.noise.flat import FlatLoss
    from hessian_powerlaw.network.noise.newton import newton_minimum

    flat = FlatLoss(model, x, y, smoothing)

    def report(step, loss, norm):
        if progress and step % 10 == 0:
            print(
                f"noise-minimum: Gauss-Newton step {step}, loss {loss:.6f}, |g| {norm:.2e}", file=sys.stderr
            )

    theta, info = newton_minimum(
        flat.theta0,
        flat.loss,
        flat.gradient,
        flat.ggn_vp,
        max_steps=steps,
        damping=1e-2,
        max_cg=2000,
        progress=report,
    )
    return {"model": flat.module(theta), "method": "gauss-newton", **info}


def _flat_grad(model, x, y, smoothing):
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y, label_smoothing=smoothing)
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]), loss.item()


def _top_vectors(model, x, y, smoothing, k, seed):
    from hessian_powerlaw.network.eigensolvers import top_eigenpairs
    from hessian_powerlaw.network.operators import make_operator

    op = make_operator(model, x, y, label_smoothing=smoothing, check=False)
    return top_eigenpairs(op, k, solver="block", seed=seed, progress=False).vectors


class _Noise:
    """The step direction of each noise model: g (+ xi), or the mini-batch gradient."""

    def __init__(self, kind, model, x, y, smoothing, batch_size, seed, top_k, refresh):
        if kind not in NOISES:
            raise TrainingError(f"unknown noise {kind!r} (choose from {', '.join(NOISES)})")
        if not 1 <= batch_size <= len(x):
            raise TrainingError(f"batch size {batch_size} must be between 1 and the {len(x)} images")
        self.kind, self.model, self.x, self.y, self.smoothing = kind, model, x, y, smoothing
        self.batch_size, self.top_k, self.refresh, self.seed = batch_size, top_k, refresh, seed
        self.gen = torch.Generator().manual_seed(seed)
        self.basis = None

    def _batch(self):
        idx = torch.randperm(len(self.x), generator=self.gen)[: self.batch_size]
        return _flat_grad(self.model, self.x[idx], self.y[idx], self.smoothing)[0]

    def direction(self, step):
        if self.kind == "sgd":
            return self._batch()
        g, _ = _flat_grad(self.model, self.x, self.y, self.smoothing)
        if self.kind == "gd":
            return g
        size = float(((self._batch() - g) ** 2).sum())  # ||g_S - g||^2 at this step
        if self.kind == "isotropic":
            return g + math.sqrt(size / g.numel()) * torch.randn(g.numel(), generator=self.gen)
        if self.basis is None or step % self.refresh == 0:
            self.basis = _top_vectors(
                self.model, self.x, self.y, self.smoothing, self.top_k, self.seed + step
            )
        z = torch.randn(self.top_k, generator=self.gen, dtype=self.basis.dtype)
        return g + math.sqrt(size / self.top_k) * (self.basis @ z).to(g.dtype)


def descend(
    model_path: str | Path,
    noise: str,
    lr: float,
    steps: int,
    batch_size: int = 25,
    every: int = 100,
    seed: int = 0,
    top_k: int = 20,
    refresh: int = 500,
    trace: bool = False,
) -> tuple[nn.Module, dict, dict, dict]:
    """Constant-rate noisy descent from a saved state: (model, meta, history, data) with the
    full-batch loss (and with `trace` the exact Hessian trace) at step 0 and every `every` steps;
    `data` is the state's data set (`data_of`)."""
    from hessian_powerlaw.network.model_files import load_model
    from hessian_powerlaw.network.trace import exact_trace

    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise TrainingError(f"lr must be a positive finite number, got {lr}")
    for name, value in (("steps", steps), ("every", every), ("top_k", top_k), ("refresh", refresh)):
        if not (isinstance(value, int) and value >= 1):
            raise TrainingError(f"{name} must be a positive integer, got {value}")
    model, meta = load_model(model_path)
    if "init_seed" not in meta:
        raise TrainingError(
            f"{model_path}: not a model file of noise-minimum (its settings and data are unknown here)"
        )
    data = data_of(meta)
    x, y = data["train"]
    x = x.to(next(model.parameters()).dtype)
    smoothing = meta.get("label_smoothing", 0.0)
    floor = smoothing_floor(smoothing, data["classes"])
    step_noise = _Noise(noise, model, x, y, smoothing, batch_size, seed, top_k, refresh)
    history = {"step": [], "loss": [], "excess_loss": [], **({"trace": []} if trace else {})}
    params = list(model.parameters())
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            loss, _ = evaluate(model, x, y, label_smoothing=smoothing)
            if diverged(loss, data["classes"]):
                raise TrainingError(f"{noise} at lr {lr:g} diverged by step {step} (loss {loss:.4g})")
            history["step"].append(step)
            history["loss"].append(loss)
            history["excess_loss"].append(loss - floor)
            if trace:
                history["trace"].append(exact_trace(model, x))
        if step == steps:
            break
        model.train()
        direction = step_noise.direction(step)
        with torch.no_grad():
            offset = 0
            for p in params:
                p -= lr * direction[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
    model.eval()
    return model, meta, history, data


def flatness(losses: ArrayLike, tolerance: float = 0.05) -> tuple[float, bool]:
    """(relative change of the mean loss between the last two quarters of a run, flat?): flat
    when that change is within `tolerance` or within 3 standard errors of the fluctuation."""
    n = len(losses)
    if n < 8:
        raise TrainingError(f"need at least 8 loss measurements to judge equilibrium, got {n}")
    q3, q4 = torch.tensor(losses[n // 2 : 3 * n // 4]), torch.tensor(losses[3 * n // 4 :])
    change = float(q4.mean() - q3.mean())
    se = math.sqrt(float(q3.var()) / len(q3) + float(q4.var()) / len(q4))
    scale = abs(float(q4.mean())) or 1.0
    return change / scale, abs(change) <= max(tolerance * scale, 3 * se)
