"""The covariance of mini-batch gradients: the gradient-noise matrix of SGD at batch size B.

C = (1/m) sum_b (g_b - g_bar)(g_b - g_bar)^T, with g_b the gradient of the mean cross-entropy over
the b-th of m = N // B disjoint batches of B consecutive samples (B = 1: per-sample gradients)
and g_bar their mean, the full-batch gradient. Its rank is at most m - 1. The m x n matrix of
centred gradients is computed once (torch.func, vmapped over batches) and kept, so a product
C V = G^T (G V) / m costs two matrix products and no pass over the data.
"""

import torch
from torch.func import functional_call, grad, vmap

from hessian_powerlaw.network.device import available_bytes
from hessian_powerlaw.network.operators.base import own_copy


class GradientCovariance:
    """C over (x, y) at batch size `batch`, implementing `operators.base.Operator`."""

    def __init__(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int = 1,
        dtype: torch.dtype = torch.float32,
        label_smoothing: float = 0.0,
    ):
        model = own_copy(model, dtype)
        self.dtype, self.batch = dtype, int(batch)
        self.device = next(model.parameters()).device
        self.m = len(x) // self.batch
        if self.m < 2:
            raise ValueError(
                f"gradient covariance at batch size {batch} needs at least 2 batches, "
                f"but there are {len(x)} samples"
            )
        params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        self.n = sum(p.numel() for p in params.values())
        need = self.m * self.n * torch.tensor([], dtype=dtype).element_size()
        if need > 0.8 * available_bytes(self.device):
            raise ValueError(
                f"the {self.m} x {self.n} matrix of batch gradients needs {need / 2**30:.1f} GiB, more "
                f"than is free on {self.device}: use fewer samples (--n-eval) or a larger batch"
            )
        buffers = {n: b.detach() for n, b in model.named_buffers()}
        used = self.m * self.batch
        xb = x[:used].to(self.device, dtype).reshape(self.m, self.batch, *x.shape[1:])
        yb = y[:used].to(self.device).reshape(self.m, self.batch)

        def batch_loss(p, xs, ys):
            out = functional_call(model, {**p, **buffers}, (xs,))
            return torch.nn.functional.cross_entropy(out, ys, label_smoothing=label_smoothing)

        per_batch = vmap(grad(batch_loss), in_dims=(None, 0, 0))
        chunk = max(1, 512 // self.batch)
        rows = []
        for i in range(0, self.m, chunk):
            grads = per_batch(params, xb[i : i + chunk], yb[i : i + chunk])
            rows.append(torch.cat([grads[name].flatten(1) for name in params], dim=1))
        gradients = torch.cat(rows)
        if not bool(torch.isfinite(gradients).all()):
            raise ValueError("the batch gradients hold NaN or inf: the model's loss is not finite here")
        self.mean_gradient = gradients.mean(0)
        self.centred = gradients - self.mean_gradient
        with torch.no_grad():
            logits = functional_call(model, {**params, **buffers}, (x[:used].to(self.device, dtype),))
            self._loss = float(
                torch.nn.functional.cross_entropy(
                    logits, y[:used].to(self.device), label_smoothing=label_smoothing
                )
            )
        self.hvp_count = 0
        self.data_passes = 1  # the gradients, once

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """C @ V for V of shape (n, b)."""
        self.hvp_count += vectors.shape[1]
        return self.centred.T @ (self.centred @ vectors.to(self.dtype)) / self.m

    def trace(self) -> float:
        """tr C = mean squared norm of the centred batch gradients (exact)."""
        return float((self.centred.double() ** 2).sum() / self.m)

    def loss(self) -> float:
        """The mean loss over the data (computed with the batch gradients)."""
        return self._loss
