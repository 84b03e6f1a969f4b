"""Training with the study's recipe: resumable per epoch, metrics to JSON, atomic outputs."""

import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from . import datasets
from .atomic import atomic_path, write_json
from .models import build, n_params

# name -> (factory(params, lr, weight_decay), the study's learning rate)
OPTIMIZERS = {
    "sgd": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1),
    "vanilla-sgd": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd), 0.1),
    "adam": (lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd), 0.001),
    "amsgrad": (lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd, amsgrad=True), 0.001),
    "radam": (lambda p, lr, wd: torch.optim.RAdam(p, lr=lr, weight_decay=wd), 0.001),
    "adabound": (lambda p, lr, wd: _po().AdaBound(p, lr=lr, weight_decay=wd), 0.001),
    "yogi": (lambda p, lr, wd: _po().Yogi(p, lr=lr, weight_decay=wd), 0.001),
    "adai": (lambda p, lr, wd: _po().Adai(p, lr=lr, weight_decay=wd), 0.1),
    "pnm": (lambda p, lr, wd: _po().PNM(p, lr=lr, weight_decay=wd), 0.1),
    "lookahead": (
        lambda p, lr, wd: _po().Lookahead(torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd)),
        0.1,
    ),
    "diffgrad": (lambda p, lr, wd: _po().DiffGrad(p, lr=lr, weight_decay=wd), 0.001),
}


class TrainingError(RuntimeError):
    """Training that cannot go on (NaN loss, bad options)."""


def _po():
    try:
        import pytorch_optimizer
    except ImportError:
        raise TrainingError("this optimizer needs the pytorch-optimizer package") from None
    return pytorch_optimizer


def pick_device(device="auto"):
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {device!r} requested but CUDA is not available")
    return device


def make_optimizer(name, params, lr=None, weight_decay=5e-4):
    if name not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
    factory, default_lr = OPTIMIZERS[name]
    return factory(params, default_lr if lr is None else lr, weight_decay)


def _base_optimizer(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # Lookahead wraps its base


def evaluate(model, x, y, batch_size=1000):
    """(mean cross-entropy, accuracy) of the model on (x, y), in eval mode."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i : i + batch_size])
            loss += nn.functional.cross_entropy(out, y[i : i + batch_size], reduction="sum").item()
            correct += (out.argmax(1) == y[i : i + batch_size]).sum().item()
    return loss / len(x), correct / len(x)


SPEC_KEYS = (
    "model",
    "dataset",
    "data_root",
    "n_train",
    "normalization",
    "label_noise",
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "epochs",
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
    "optimizer": "sgd",
    "lr": None,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "epochs": 50,
    "seed": 0,
    "depth": 2,
    "width": 100,
}


def data_for(spec, data_root=None):
    """The data set of a run: its training subset is seeded with the run's seed."""
    root = data_root if data_root is not None else spec["data_root"]
    return datasets.load(
        spec["dataset"],
        root or None,
        spec["n_train"],
        spec["seed"],
        spec["normalization"],
        spec["label_noise"],
    )


def train(spec, out, checkpoint=None, metrics=None, device="auto", progress=True, data=None):
    """Train the run `spec` (SPEC_KEYS; lr None = the study's rate for the optimizer) and
    save {'state_dict', 'meta'} to `out` atomically; `epochs` 0 saves the initialisation.

    With `checkpoint`, the state after every epoch is saved there (atomically) and a rerun
    resumes from it; shuffling is seeded per epoch, so a resumed run is bit-identical on CPU.
    """
    missing = set(SPEC_KEYS) - set(spec)
    if missing:
        raise TrainingError(f"run settings lack {', '.join(sorted(missing))}")
    spec = {key: spec[key] for key in SPEC_KEYS}
    if spec["lr"] is None:
        spec["lr"] = OPTIMIZERS[spec["optimizer"]][1] if spec["optimizer"] in OPTIMIZERS else None
    device = pick_device(device)
    data = data if data is not None else data_for(spec)
    torch.manual_seed(spec["seed"])
    x_train, y_train = (t.to(device) for t in data["train"])
    x_test, y_test = (t.to(device) for t in data["test"])
    model = build(spec["model"], tuple(x_train.shape[1:]), data["classes"], spec["depth"], spec["width"])
    model.to(device)
    optimizer = make_optimizer(spec["optimizer"], model.parameters(), spec["lr"], spec["weight_decay"])
    epochs = spec["epochs"]
    milestones = [m for m in (round(0.4 * epochs), round(0.8 * epochs)) if m > 0]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(_base_optimizer(optimizer), milestones, gamma=0.1)
    history, start = [], 0
    if checkpoint and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state["spec"] == spec:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, start = state["history"], state["epoch"]
            print(f"train: resuming after epoch {start} from {checkpoint}", file=sys.stderr)
        else:
            print(f"train: {checkpoint} was made with other settings; starting afresh", file=sys.stderr)
    n = len(x_train)
    for epoch in range(start, epochs):
        model.train()
        lr = _base_optimizer(optimizer).param_groups[0]["lr"]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(spec["seed"] * 100003 + epoch))
        steps = range(0, n, spec["batch_size"])
        bar = _progress(steps, f"epoch {epoch + 1}/{epochs}", progress)
        seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
        for i in bar:
            idx = order[i : i + spec["batch_size"]].to(device)
            logits = model(x_train[idx])
            loss = nn.functional.cross_entropy(logits, y_train[idx])
            if not math.isfinite(loss.item()):
                raise TrainingError(f"loss became {loss.item()} at epoch {epoch + 1}, step {i // len(idx)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_train[idx]).sum().item()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        scheduler.step()
        test_loss, test_acc = evaluate(model, x_test, y_test)
        history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if checkpoint:
            state = {
                "spec": spec,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history,
            }
            _save(state, checkpoint)
        if metrics:
            write_json(metrics, {"spec": spec, "device": device, "history": history})
    train_loss, train_acc = evaluate(model, x_train, y_train)
    test_loss, test_acc = evaluate(model, x_test, y_test)
    meta = {
        **spec,
        "n_params": n_params(model),
        "n_train_used": n,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "device": device,
        "in_shape": list(x_train.shape[1:]),
        "classes": data["classes"],
    }
    _save({"state_dict": model.state_dict(), "meta": meta}, out)
    if metrics:
        write_json(metrics, {"spec": spec, "device": device, "history": history, "final": meta})
    return model, meta


def _save(obj, path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _progress(iterable, desc, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, file=sys.stderr, mininterval=1.0)


def load_model(path, device="cpu"):
    """(model in eval mode, meta) from a file written by train(); never unpickles objects."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        meta = saved["meta"]
        model = build(meta["model"], tuple(meta["in_shape"]), meta["classes"], meta["depth"], meta["width"])
        model.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise
    except Exception as err:
        raise TrainingError(f"{path}: not a model file written by hessian-powerlaw train ({err})") from None
    return model.to(device).eval(), meta
