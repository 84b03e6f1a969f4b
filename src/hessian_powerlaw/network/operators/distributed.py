"""Data-parallel products over torch.distributed (NCCL on GPUs, gloo on CPUs).

Under `torchrun` (or any initialised process group of several ranks) each rank holds a shard of
the data: a rank-strided split of the tensors it was given, or its own DataLoader as given (e.g.
with a DistributedSampler). Every product is its rank's data mean times the rank's sample count,
all-reduced and divided by the total count, so every rank gets the product over all the data;
every rank then runs the same solver from the same seed and returns the same spectrum. Before
each reduction the ranks exchange their status: a rank whose product raised or is not finite
stops every rank with that rank's message (no rank waits in a collective for one that failed).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from hessian_powerlaw.network.operators.base import Operator


def active() -> bool:
    """Whether this process is one rank of an initialised group of more than one."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the group.

    Returns
    -------
    int
        0 when not distributed.
    """
    return dist.get_rank() if active() else 0


def init_from_environment(device: str | torch.device, timeout_s: float = 600) -> None:
    """Initialise the process group that `torchrun` describes; nothing outside torchrun.

    Under torchrun (WORLD_SIZE > 1 in the environment): NCCL on CUDA devices, gloo otherwise.

    Parameters
    ----------
    device : str or torch.device
        The device of this rank ('cuda' picks the rank's local GPU).
    timeout_s : float, default 600
        Seconds a collective may wait for the other ranks.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def shard(data: object) -> object:
    """This rank's part of an (x, y) pair of tensors (rows rank, rank + W, ...); any other data
    (each rank's own DataLoader) as given."""
    if active() and isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        step, start = dist.get_world_size(), dist.get_rank()
        if len(data[0]) < step:
            raise ValueError(f"data: {len(data[0])} samples cannot be shared by {step} ranks")
        return data[0][start::step], data[1][start::step]
    return data


def agree(error: str | None) -> None:
    """Raise on every rank when any rank reports an error (a one-line text), naming the first."""
    errors = [None] * dist.get_world_size()
    dist.all_gather_object(errors, error)
    failed = [(r, e) for r, e in enumerate(errors) if e]
    if failed:
        raise RuntimeError(f"rank {failed[0][0]} of {len(errors)} failed: {failed[0][1]}")


def everyone(flag: bool) -> bool:
    """Whether `flag` holds on every rank of the group.

    Parameters
    ----------
    flag : bool
        This rank's answer.

    Returns
    -------
    bool
        True only when every rank answered True (this rank's answer when not distributed).
    """
    if not active():
        return bool(flag)
    flags = [None] * dist.get_world_size()
    dist.all_gather_object(flags, bool(flag))
    return all(flags)


def _text(err):
    return " ".join(f"{type(err).__name__}: {err}".split())[:500]


@contextmanager
def together() -> Iterator[None]:
    """A block every rank runs: when it raises on any rank, it raises on all (one exchange at
    its end), so that no rank goes on to a collective the failed one will never join."""
    if not active():
        yield
        return
    try:
        yield
    except Exception as err:
        agree(_text(err))
        raise
    agree(None)


class DataParallel:
    """An operator over every rank's data from one whose matmat is the mean over this rank's
    samples (it exposes their number as `n_samples` after a product); `operators.base.Operator`."""

    def __init__(self, op: Operator):
        self.op = op
        self.n, self.dtype, self.device = op.n, op.dtype, op.device
        self.curvature = getattr(op, "curvature", "hessian")

    @property
    def hvp_count(self) -> int:
        """Products of this rank's operator so far."""
        return self.op.hvp_count

    @property
    def data_passes(self) -> int:
        """Passes over this rank's data so far."""
        return self.op.data_passes

    def _reduce(self, local, count):
        total = local * count
        counts = torch.tensor([float(count)], dtype=torch.float64, device=total.device)
        dist.all_reduce(total)
        dist.all_reduce(counts)
        return total / counts.to(total.dtype)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ V over all ranks' samples, V of shape (n, b)."""
        local, error = None, None
        try:
            local = self.op.matmat(vectors)
            if not bool(torch.isfinite(local).all()):
                error = "the product holds NaN or inf (the loss is not finite on this rank's data)"
        except Exception as err:  # every rank must hear of it, or the others wait in a collective
            error = _text(err)
        agree(error)
        return self._reduce(local, self.op.n_samples)

    def loss(self) -> float:
        """The mean loss over every rank's data (weighted by sample counts)."""
        local = torch.tensor([self.op.loss()], dtype=torch.float64, device=self.device)
        return float(self._reduce(local, self.op.n_samples)[0])
