"""The study's optimizers by name, with their learning rates, and its learning-rate schedule."""

from collections.abc import Iterable

import torch

from hessian_powerlaw.network.errors import TrainingError

# name -> (factory(params, lr, weight_decay), the study's learning rate). Weight decay takes the
# form of each optimizer's reference implementation (WEIGHT_DECAY_FORM): pytorch-optimizer
# defaults to decoupled decay, which only PNM's and RAdam's authors use, so the L2 form is asked
# for explicitly where the authors' code adds the decay to the gradient.
OPTIMIZERS = {
    "sgd": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1),
    "vanilla-sgd": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd), 0.1),
    "adam": (lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd), 0.001),
    "amsgrad": (lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd, amsgrad=True), 0.001),
    "radam": (
        lambda p, lr, wd: torch.optim.RAdam(p, lr=lr, weight_decay=wd, decoupled_weight_decay=True),
        0.001,
    ),
    "adabound": (lambda p, lr, wd: _po().AdaBound(p, lr=lr, weight_decay=wd, weight_decouple=False), 0.001),
    "yogi": (lambda p, lr, wd: _po().Yogi(p, lr=lr, weight_decay=wd, weight_decouple=False), 0.001),
    "adai": (lambda p, lr, wd: _po().Adai(p, lr=lr, weight_decay=wd, weight_decouple=False), 0.1),
    "pnm": (lambda p, lr, wd: _po().PNM(p, lr=lr, weight_decay=wd, weight_decouple=True), 0.1),
    "lookahead": (
        lambda p, lr, wd: _po().Lookahead(torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd)),
        0.1,
    ),
    "diffgrad": (lambda p, lr, wd: _po().DiffGrad(p, lr=lr, weight_decay=wd, weight_decouple=False), 0.001),
    # Full-batch gradient descent (momentum 0.9 like 'sgd', same number of steps per epoch),
    # alone or plus isotropic Gaussian noise whose expected squared norm equals that of the SGD
    # noise ||g_batch - g_full||^2 measured at the same step (the noise comparison).
    "gd": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1),
    "gd-noise": (lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1),
}
# "l2": the decay is added to the gradient (p.grad + wd * p) before the optimizer's own update;
# "decoupled": the weights shrink by lr * wd each step, apart from the update (AdamW's form).
WEIGHT_DECAY_FORM = {name: "l2" for name in OPTIMIZERS} | {"radam": "decoupled", "pnm": "decoupled"}
FULL_BATCH = ("gd", "gd-noise")
SCHEDULES = ("step", "constant")


def _po():
    try:
        import pytorch_optimizer
    except ImportError:
        raise TrainingError("this optimizer needs the pytorch-optimizer package") from None
    return pytorch_optimizer


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float | None = None, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    """The optimizer `name` over params, at the study's learning rate for it unless lr is given."""
    if name not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
    factory, default_lr = OPTIMIZERS[name]
    return factory(params, default_lr if lr is None else lr, weight_decay)


def base_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that holds the parameter groups (Lookahead's inner one)."""
    return getattr(optimizer, "optimizer", optimizer)  # Lookahead wraps its base


def lr_schedule(optimizer: torch.optim.Optimizer, spec: dict) -> torch.optim.lr_scheduler.MultiStepLR:
    """The study's step schedule (x0.1 at 40% and 80% of the epochs) or a constant rate."""
    epochs = spec["epochs"]
    milestones = [m for m in (round(0.4 * epochs), round(0.8 * epochs)) if m > 0]
    if spec["schedule"] == "constant":
        milestones = []
    return torch.optim.lr_scheduler.MultiStepLR(base_optimizer(optimizer), milestones, gamma=0.1)
