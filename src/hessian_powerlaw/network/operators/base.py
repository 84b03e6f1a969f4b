"""The interface every Hessian operator offers to the solvers, and what they share."""

import copy
import numbers
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Operator(Protocol):
    """A symmetric n x n operator H given by products (a loss Hessian over fixed data).

    Attributes: `n` (int, the number of parameters), `dtype` and `device` (of the vectors it
    takes and returns), `hvp_count` and `data_passes` (products and passes over the data so far).
    """

    n: int
    dtype: torch.dtype
    device: torch.device
    hvp_count: int
    data_passes: int

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ V for V of shape (n, b); returns shape (n, b)."""

    def loss(self) -> float:
        """The loss at the current parameters (mean over the data)."""


def own_copy(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of `model` in eval mode at `dtype`: operators never change the caller's model."""
    return copy.deepcopy(model).eval().to(dtype)


def cache_budget(budget: int | None, name: str = "cache_bytes") -> int | None:
    """`budget` (the argument `name`) checked: None (the operator's default) or the bytes >= 0
    that products may keep."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(f"{name} must be a number of bytes or None, got {type(budget).__name__}")
    if not budget >= 0:
        raise ValueError(f"{name} must be None or at least 0 bytes, got {budget}")
    return budget
