"""The training-loss Hessian of a network as a linear operator (Hessian-vector products).

The loss is the mean cross-entropy over an evaluation set (label-smoothed with
`label_smoothing`, torch's definition), without the weight-decay term unless `shift` adds it
(wd * I: every eigenvalue + wd), with the model in eval mode (BatchNorm uses its running
statistics): `generic.LossHessian` with that loss, over chunks of `chunk_size` images. A block of
vectors shares one pass over the data (vmap).
"""

import functools

import torch
from torch import nn

from hessian_powerlaw.network.operators.base import cache_budget
from hessian_powerlaw.network.operators.generic import LossHessian


class HessianOperator(LossHessian):
    """H = d^2/dtheta^2 mean_i CE(f(x_i; theta), y_i) at the model's current parameters.

    The chunks' gradient graphs are kept between products where they fit `cache_bytes`
    (default: a quarter of the device's free memory; `generic.LossHessian`).
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        chunk_size: int = 2000,
        dtype: torch.dtype = torch.float32,
        shift: float = 0.0,
        label_smoothing: float = 0.0,
        cache_bytes: int | None = None,
    ):
        loss = functools.partial(torch.nn.functional.cross_entropy, label_smoothing=label_smoothing)
        cache_bytes = cache_budget(cache_bytes)
        super().__init__(model, loss, (x, y), dtype=dtype, chunk_size=chunk_size, cache_limit=cache_bytes)
        self.x, self.y = self.data
        self.shift = shift
        self.label_smoothing = label_smoothing

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ V (+ shift V) for V of shape (n, b): b products in one pass over the data."""
        return super().matmat(vectors) + self.shift * vectors.to(self.device, self.dtype)

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H v for one vector (n,)."""
        return self.matmat(vector.reshape(-1, 1))[:, 0]

    def dense(self) -> torch.Tensor:
        """The full Hessian matrix (small networks only: tests and references)."""
        flat = self._flatten(self.params)
        return torch.autograd.functional.hessian(lambda theta: self._mean_loss(self._unflatten(theta)), flat)
