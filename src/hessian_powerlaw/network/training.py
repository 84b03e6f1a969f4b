"""Training with the study's recipe: resumable per epoch, metrics to JSON, atomic outputs."""

import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from hessian_powerlaw.io import write_json
from hessian_powerlaw.network import datasets
from hessian_powerlaw.network.device import machine, pick_device
from hessian_powerlaw.network.errors import DIVERGED, TrainingError, diverged
from hessian_powerlaw.network.model_files import save_atomic
from hessian_powerlaw.network.models import build, n_params
from hessian_powerlaw.network.optimizers import (
    FULL_BATCH,
    OPTIMIZERS,
    SCHEDULES,
    base_optimizer,
    lr_schedule,
    make_optimizer,
)
from hessian_powerlaw.network.progress import epoch_bar, epoch_report


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, label_smoothing: float = 0.0
) -> tuple[float, float]:
    """(mean cross-entropy, label-smoothed as in training, and accuracy) on (x, y), eval mode."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i : i + batch_size])
            loss += nn.functional.cross_entropy(
                out, y[i : i + batch_size], reduction="sum", label_smoothing=label_smoothing
            ).item()
            correct += (out.argmax(1) == y[i : i + batch_size]).sum().item()
    return loss / len(x), correct / len(x)


SPEC_KEYS = (
    "model",
    "dataset",
    "data_root",
    "n_train",
    "normalization",
    "label_noise",
    "labels",
    "label_smoothing",
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "epochs",
    "schedule",
    "seed",
    "depth",
    "width",
)


# The study's LeNet/MNIST recipe on the bundled subset (lr None = the optimizer's study rate).
STUDY_SPEC = {
    "model": "lenet",
    "dataset": "mnist",
    "data_root": "",
    "n_train": 0,
    "normalization": "pixel",
    "label_noise": 0.0,
    "labels": "true",
    "label_smoothing": 0.0,
    "optimizer": "sgd",
    "lr": None,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "epochs": 50,
    "schedule": "step",
    "seed": 0,
    "depth": 2,
    "width": 100,
}


def data_for(spec: dict, data_root: str | None = None) -> dict:
    """The data set of a run: its training subset is seeded with the run's seed."""
    root = data_root if data_root is not None else spec["data_root"]
    return datasets.load(
        spec["dataset"],
        root or None,
        spec["n_train"],
        spec["seed"],
        spec["normalization"],
        spec["label_noise"],
        pool=spec.get("pool", 1),
        labels=spec.get("labels", "true"),
    )


def train(
    spec: dict,
    out: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    metrics: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    data: dict | None = None,
    curvature: dict | None = None,
    command: str | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train one run and save {'state_dict', 'meta'} to `out` atomically.

    Parameters
    ----------
    spec : dict
        The run (SPEC_KEYS); lr None = the study's rate for the optimizer; epochs 0 saves the
        initialisation.
    out, checkpoint, metrics : str or os.PathLike
        The model file; the per-epoch checkpoint a rerun resumes from (bit-identical on a CPU:
        shuffling and noise are seeded per epoch); the metrics JSON. The last two optional.
    device, progress : str, bool
        "cpu", "cuda", "cuda:N" or "auto"; a progress bar or a line per epoch on stderr.
    data, curvature, command : dict, dict, str, optional
        The data set (`datasets.load`'s dict; else read as the spec says); curvature probe
        settings (probe.DEFAULTS, every > 0: trace, top and bottom eigenvalues measured every
        `every` epochs, seeded apart from training); the command line kept in the meta.

    Returns
    -------
    tuple of (torch.nn.Module, dict)
        The trained network on `device`, and the meta saved beside its weights (spec,
        parameters, final losses and accuracies, input shape, classes, command, seconds).

    Raises
    ------
    TrainingError
        Settings no training can use, or a training that diverged (no file is written).
    """
    started = time.perf_counter()
    spec = _run_spec(spec)
    curvature = dict(curvature) if curvature and curvature.get("every", 0) > 0 else None
    device = pick_device(device)
    data = data if data is not None else data_for(spec)
    torch.manual_seed(spec["seed"])
    train_set = tuple(t.to(device) for t in data["train"])
    test_set = tuple(t.to(device) for t in data["test"])
    model = build(spec["model"], tuple(train_set[0].shape[1:]), data["classes"], spec["depth"], spec["width"])
    model.to(device)
    optimizer = make_optimizer(spec["optimizer"], model.parameters(), spec["lr"], spec["weight_decay"])
    scheduler = lr_schedule(optimizer, spec)
    trainer = (model, optimizer, scheduler)
    history, measured, start = _resume(checkpoint, spec, curvature, trainer, device)
    if curvature and start == 0:
        measured.append(_measure(model, *train_set, curvature, spec, 0))
    bar = epoch_bar(spec, len(train_set[0]), start, progress)
    for epoch in range(start, spec["epochs"]):
        history.append(_epoch(trainer, train_set, test_set, spec, epoch, device, bar))
        epoch_report(bar, history[-1], spec, progress)
        if curvature and _due(epoch + 1, spec["epochs"], curvature["every"]):
            measured.append(_measure(model, *train_set, curvature, spec, epoch + 1))
        if checkpoint:
            save_atomic(_checkpoint_state(spec, epoch + 1, trainer, history, measured, curvature), checkpoint)
        if metrics:
            write_json(metrics, _metrics(spec, device, history, curvature, measured))
    if bar is not None:
        bar.close()
    meta = _final_meta(model, spec, data["classes"], device, train_set, test_set)
    meta.update(command=command, train_seconds=round(time.perf_counter() - started, 2))
    save_atomic({"state_dict": model.state_dict(), "meta": meta}, out)
    if metrics:
        write_json(metrics, {**_metrics(spec, device, history, curvature, measured), "final": meta})
    return model, meta


def _run_spec(spec):
    """The run's settings (SPEC_KEYS), checked, with the optimizer's study rate for lr None."""
    missing = set(SPEC_KEYS) - set(spec)
    if missing:
        raise TrainingError(f"run settings lack {', '.join(sorted(missing))}")
    spec = {key: spec[key] for key in SPEC_KEYS}
    _check_spec(spec)
    if spec["lr"] is None:
        spec["lr"] = OPTIMIZERS[spec["optimizer"]][1] if spec["optimizer"] in OPTIMIZERS else None
    if spec["schedule"] not in SCHEDULES:
        raise TrainingError(f"unknown schedule {spec['schedule']!r} (choose from {', '.join(SCHEDULES)})")
    return spec


def _resume(checkpoint, spec, curvature, trainer, device):
    """(history, measurements, first epoch) from a checkpoint made with the same settings."""
    if not (checkpoint and Path(checkpoint).is_file()):
        return [], [], 0
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    if state["spec"] != spec or state.get("curvature_settings") != curvature:
        print(f"train: {checkpoint} was made with other settings; starting afresh", file=sys.stderr)
        return [], [], 0
    model, optimizer, scheduler = trainer
    if _optimizer_settings(state["optimizer"]) != _optimizer_settings(optimizer.state_dict()):
        # e.g. a checkpoint from before the weight decay took each optimizer's reference form
        print(f"train: {checkpoint} has other optimizer settings; starting afresh", file=sys.stderr)
        return [], [], 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    print(f"train: resuming after epoch {state['epoch']} from {checkpoint}", file=sys.stderr)
    return state["history"], state.get("curvature", []), state["epoch"]


def _optimizer_settings(state_dict):
    """The fixed settings of each parameter group (what the rate schedule and steps leave alone)."""
    state_dict = state_dict.get("base_optimizer", state_dict)  # Lookahead keeps its base's groups
    moving = {"params", "lr", "initial_lr", "step"}
    return [{k: v for k, v in group.items() if k not in moving} for group in state_dict["param_groups"]]


def _epoch(trainer, train_set, test_set, spec, epoch, device, bar=None):
    """One epoch of optimizer steps (seeded order and noise), then the schedule step and the
    test evaluation; returns the epoch's history record. `bar` (a tqdm bar or None) advances
    one step per batch."""
    model, optimizer, scheduler = trainer
    x_train, y_train = train_set
    step = _full_batch_step if spec["optimizer"] in FULL_BATCH else _batch_step
    model.train()
    lr = base_optimizer(optimizer).param_groups[0]["lr"]
    n = len(x_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec["seed"] * 100003 + epoch))
    noise = torch.Generator(device=device).manual_seed(spec["seed"] * 100003 + epoch + 7919)
    seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
    for i in range(0, n, spec["batch_size"]):
        idx = order[i : i + spec["batch_size"]].to(device)
        loss, hits = step(
            model, optimizer, x_train, y_train, idx, spec["optimizer"], noise, spec["label_smoothing"]
        )
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} at epoch {epoch + 1}, step {i // len(idx)}")
        seen += len(idx)
        loss_sum += loss * len(idx)
        correct += hits
        if bar is not None:
            bar.update(1)
    scheduler.step()
    test_loss, test_acc = evaluate(model, *test_set, label_smoothing=spec["label_smoothing"])
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum / seen,
        "train_acc": correct / seen,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _checkpoint_state(spec, epoch, trainer, history, measured, curvature):
    model, optimizer, scheduler = trainer
    return {
        "spec": spec,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "curvature": measured,
        "curvature_settings": curvature,
    }


def _final_meta(model, spec, classes, device, train_set, test_set):
    """The model file's metadata: settings, size and final losses; warns when it did not learn."""
    train_loss, train_acc = evaluate(model, *train_set, label_smoothing=spec["label_smoothing"])
    test_loss, test_acc = evaluate(model, *test_set, label_smoothing=spec["label_smoothing"])
    uniform = math.log(classes)  # the loss of a uniform guess
    if spec["epochs"] and diverged(train_loss, classes):
        raise TrainingError(
            f"training diverged: the final training loss {train_loss:.4g} is above {DIVERGED:g} times that "
            f"of a uniform guess ({uniform:.3f}; test accuracy {test_acc:.3f}); no model file written. "
            f"Try --normalization global (per-pixel z-scores explode on near-constant pixels) or a "
            f"lower --lr than {spec['lr']:g}"
        )
    if spec["epochs"] and not learned(train_acc, classes):
        print(
            f"train: warning: training accuracy {train_acc:.3f} is at chance ({1 / classes:.3f}): "
            f"the network did not learn (diverged or dead units); try a lower --lr than {spec['lr']:g} "
            "or another --seed",
            file=sys.stderr,
        )
    return {
        **spec,
        "n_params": n_params(model),
        "n_train_used": len(train_set[0]),
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "device": device,
        "train_threads": torch.get_num_threads(),  # CPU rounding depends on it: reruns need the same
        "train_machine": machine(device),  # and on the instruction set and CPU model
        "in_shape": list(train_set[0].shape[1:]),
        "classes": classes,
    }


def _check_spec(spec):
    """One-line errors for settings no training can use (before any data is loaded)."""
    least = {"batch_size": 1, "epochs": 0, "depth": 0, "width": 1, "n_train": 0, "seed": 0}
    for key, low in least.items():
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TrainingError(f"{key} must be an integer >= {low}, got {value!r}")
    for key in ("lr", "weight_decay", "label_noise", "label_smoothing"):
        value = spec[key]
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise TrainingError(f"{key} must be a finite number >= 0, got {value!r}")
    if spec["labels"] not in datasets.LABELS:
        raise TrainingError(f"labels must be one of {', '.join(datasets.LABELS)}, got {spec['labels']!r}")
    if spec["lr"] is not None and spec["lr"] <= 0:
        raise TrainingError(f"lr must be positive, got {spec['lr']}")


def learned(train_acc: float, classes: int) -> bool:
    """Whether a training accuracy is clearly above chance (1/classes)."""
    return train_acc > 1.5 / classes


def _batch_step(model, optimizer, x, y, idx, name, noise, label_smoothing=0.0):
    """One optimizer step on the mini-batch idx: (batch loss, correct predictions)."""
    logits = model(x[idx])
    loss = nn.functional.cross_entropy(logits, y[idx], label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), (logits.argmax(1) == y[idx]).sum().item()


def _full_batch_step(model, optimizer, x, y, idx, name, noise, label_smoothing=0.0, chunk=2000):
    """One step on the full-batch gradient g ('gd'), plus, for 'gd-noise', isotropic Gaussian
    noise with E||xi||^2 = ||g_batch - g||^2 for the mini-batch idx SGD would have used."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    total, hits = 0.0, 0
    for i in range(0, len(x), chunk):
        logits = model(x[i : i + chunk])
        loss = nn.functional.cross_entropy(
            logits, y[i : i + chunk], reduction="sum", label_smoothing=label_smoothing
        ) / len(x)
        loss.backward()
        total += loss.item()
        hits += (logits.argmax(1) == y[i : i + chunk]).sum().item()
    if name == "gd-noise":
        batch_loss = nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=label_smoothing)
        batch_grads = torch.autograd.grad(batch_loss, params)
        sq = sum(float(((gb - p.grad) ** 2).sum()) for gb, p in zip(batch_grads, params, strict=True))
        scale = math.sqrt(sq / sum(p.numel() for p in params))
        for p in params:
            p.grad += scale * torch.randn(p.shape, generator=noise, device=p.device, dtype=p.dtype)
    optimizer.step()
    return total, round(hits * len(idx) / len(x))


def _due(epoch, epochs, every):
    return epoch % every == 0 or epoch == epochs


def _measure(model, x, y, settings, spec, epoch):
    from hessian_powerlaw.network.probe import measure

    n_eval = settings["n_eval"] or len(x)
    if n_eval > len(x):
        raise TrainingError(f"curvature n_eval={n_eval} but the run has {len(x)} training images")
    record = measure(
        model,
        x[:n_eval],
        y[:n_eval],
        settings,
        seed=spec["seed"] * 1009 + epoch,
        label_smoothing=spec["label_smoothing"],
    )
    print(
        f"curvature epoch {epoch}: trace {record['trace']:.4g} +- {record['trace_stderr']:.2g}, "
        f"lambda_max {record['lambda_max']:.4g}, neg sum {record['neg_sum']:.3g}, "
        f"loss {record['train_loss']:.4g}",
        file=sys.stderr,
    )
    return {"epoch": epoch, **record}


def _metrics(spec, device, history, curvature, measured):
    out = {"spec": spec, "device": device, "history": history}
    if curvature:
        out.update(curvature_settings=curvature, curvature=measured)
    return out
