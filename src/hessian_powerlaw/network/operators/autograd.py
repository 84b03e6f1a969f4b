"""The training-loss Hessian of a network as a linear operator (Hessian-vector products).

The loss is the mean cross-entropy over an evaluation set (label-smoothed with
`label_smoothing`, torch's definition), without the weight-decay term
unless `shift` adds it (wd * I: every eigenvalue + wd), with the model in eval mode (BatchNorm
uses its running statistics). Products are computed forward-over-reverse with torch.func,
summed over chunks of the data, on the model's device; a block of vectors shares one pass over
the data (vmap).
"""

import torch
from torch.func import functional_call, grad, jvp, vmap

from hessian_powerlaw.network.operators.base import own_copy


class HessianOperator:
    """H = d^2/dtheta^2 mean_i CE(f(x_i; theta), y_i) at the model's current parameters."""

    def __init__(self, model, x, y, chunk_size=2000, dtype=torch.float32, shift=0.0, label_smoothing=0.0):
        self.model = model = own_copy(model, dtype)
        self.device = next(model.parameters()).device
        self.dtype = dtype
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.shapes = [self.params[n].shape for n in self.names]
        self.sizes = [self.params[n].numel() for n in self.names]
        self.n = sum(self.sizes)
        self.x = x.to(self.device, dtype) if x.is_floating_point() else x.to(self.device)  # token ids stay
        self.y = y.to(self.device)
        self.chunk_size = chunk_size
        self.shift = shift
        self.label_smoothing = label_smoothing
        self.hvp_count = 0
        self.data_passes = 0

    def _unflatten(self, flat):
        parts = torch.split(flat, self.sizes)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def _flatten(self, tensors):
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def _loss_sum(self, params, x, y):
        out = functional_call(self.model, {**params, **self.buffers}, (x,))
        return torch.nn.functional.cross_entropy(
            out, y, reduction="sum", label_smoothing=self.label_smoothing
        )

    def _hvp_chunk(self, v, x, y):
        tangent = self._unflatten(v)
        _, hv = jvp(lambda p: grad(self._loss_sum)(p, x, y), (self.params,), (tangent,))
        return self._flatten(hv)

    def matmat(self, vectors):
        """H @ V for V of shape (n, b): b products in one pass over the data."""
        vectors = vectors.to(self.device, self.dtype)
        out = torch.zeros_like(vectors)
        batched = vmap(self._hvp_chunk, in_dims=(1, None, None), out_dims=1)
        for i in range(0, len(self.x), self.chunk_size):
            x, y = self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size]
            out += (
                batched(vectors, x, y)
                if vectors.shape[1] > 1
                else self._hvp_chunk(vectors[:, 0], x, y)[:, None]
            )
        self.hvp_count += vectors.shape[1]
        self.data_passes += 1
        return out / len(self.x) + self.shift * vectors

    def matvec(self, vector):
        return self.matmat(vector.reshape(-1, 1))[:, 0]

    def loss(self):
        with torch.no_grad():
            total = sum(
                self._loss_sum(self.params, self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size])
                for i in range(0, len(self.x), self.chunk_size)
            )
        return float(total) / len(self.x)

    def dense(self):
        """The full Hessian matrix (small networks only: tests and references)."""
        flat = self._flatten(self.params)

        def loss(theta):
            params = self._unflatten(theta)
            return sum(
                self._loss_sum(params, self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size])
                for i in range(0, len(self.x), self.chunk_size)
            ) / len(self.x)

        return torch.autograd.functional.hessian(loss, flat)
