"""Exact loss-Hessian products in blocks for piecewise-linear sequential networks
(Conv2d, Linear, ReLU, non-overlapping MaxPool2d, Flatten: LeNet, fcn, lnn, lnn-relu).

At fixed parameters such a network is linear between its ReLU masks and max-pool choices, so
forward-over-reverse differentiation with the masks held fixed is the exact Hessian (what
autograd computes, ReLU'' = 0). Arranged by hand, a block of b tangent vectors shares one
primal pass (kept between products), a convolution with b tangent kernels runs as one
convolution with b times the channels, and a convolution followed by ReLU and max-pool is
evaluated only where the pool selected: its kernel-tangent terms are one batched matmul with the
selected input patches. On 2 CPU cores this is about six times faster per vector than torch.func
products (benchmarks/dnn_solvers.py). Tangents are laid out (N, b, ...) so that no step needs a
transposed copy.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from hessian_powerlaw.network.device import available_bytes
from hessian_powerlaw.network.operators.base import cache_budget, own_copy
from hessian_powerlaw.network.operators.chain import UnsupportedModel, pair, plan
from hessian_powerlaw.network.operators.conv_products import (
    input_products,
    kernel_on_tangent,
    outer_with_tangent,
    tangent_kernel_on_input,
    tangent_outer,
)


class _Phi:
    """The fixed linear map after an affine layer (ReLU masks and pool choices of the primal).
    A max-pool is a gather of the chosen positions; its adjoint scatters back."""

    def __init__(self, ops, z):
        self.steps = []
        t = z
        for op in ops:
            if isinstance(op, nn.ReLU):
                self.steps.append(("mask", t > 0))
                t = torch.relu(t)
            elif isinstance(op, nn.MaxPool2d):
                k = pair(op.kernel_size)
                out, idx = F.max_pool2d(t, k, k, return_indices=True)
                self.steps.append(("pool", (idx.flatten(2), t.shape[2:], out.shape[2:])))
                t = out
            else:  # Flatten
                self.steps.append(("flatten", t.shape[1:]))
                t = t.flatten(1)
        self.out = t

    def forward(self, t):
        """Apply to tangents of shape (N, b, ...)."""
        for kind, arg in self.steps:
            if kind == "mask":
                t = t * arg.unsqueeze(1)
            elif kind == "pool":
                idx, _, out_shape = arg
                n, b, c = t.shape[:3]
                t = t.flatten(3).gather(3, idx.unsqueeze(1).expand(n, b, c, -1)).unflatten(3, out_shape)
            else:
                t = t.flatten(2)
        return t

    def transpose(self, g, batched=True):
        """The adjoint map, for (N, b, ...) tangents or (N, ...) primal gradients."""
        lead = 2 if batched else 1
        for kind, arg in reversed(self.steps):
            if kind == "mask":
                g = g * (arg.unsqueeze(1) if batched else arg)
            elif kind == "pool":
                idx, in_shape, _ = arg
                if batched:
                    idx = idx.unsqueeze(1).expand(*g.shape[:3], -1)
                flat = g.flatten(lead + 1)
                full = flat.new_zeros(*flat.shape[:-1], in_shape[0] * in_shape[1])
                g = full.scatter_(-1, idx, flat).unflatten(-1, in_shape)
            else:
                g = g.unflatten(lead, arg)
        return g


class _PooledConv:
    """A convolution followed by ReLU and a non-overlapping max-pool (either order), evaluated only
    at the positions the pool selected: each is a product of the kernel with the input patch there,
    so the kernel-tangent terms are one batched matmul with the selected patches of the (fixed)
    input instead of a full convolution. A last patch column of ones (where active) carries the
    bias."""

    def __init__(self, module, pool, a, z, bias):
        k = pair(pool.kernel_size)
        pooled, idx = F.max_pool2d(z, k, k, return_indices=True)
        n, o, ho, wo = pooled.shape
        self.out = torch.relu(pooled)
        self.idx = idx.flatten(2)  # (N, O, Q) positions in the conv output's H*W grid
        self.active = (pooled > 0).flatten(2)
        self.in_shape, self.full = z.shape[2:], z.shape[2] * z.shape[3]
        # im2col rows (N*L, C*kh*kw [+1 for the bias]) in the weight's (C, kh, kw) order; each
        # selection picks its row, straight into the (O, N*Q, ...) layout of the products
        cols = F.unfold(a, module.kernel_size, padding=module.padding).transpose(1, 2)
        cols = torch.cat([cols, cols.new_ones(*cols.shape[:2], 1)], 2) if bias else cols.contiguous()
        rows = self.idx + torch.arange(n, device=a.device).view(n, 1, 1) * self.full
        patches = cols.view(n * self.full, -1).index_select(0, rows.transpose(0, 1).flatten())
        mask = self.active.transpose(0, 1).reshape(o, n * ho * wo, 1).to(patches.dtype)
        self.patches = patches.view(o, n * ho * wo, -1).mul_(mask)
        self.bias = bias
        self.shape = (n, o, ho, wo)

    def forward(self, dw, db):
        """Tangent at the pooled output from the kernel and bias tangents, (N, b, O, Q)."""
        n, o, ho, wo = self.shape
        b = dw.shape[0]
        kernels = dw.flatten(2) if db is None else torch.cat([dw.flatten(2), db.unsqueeze(2)], 2)
        t = torch.bmm(self.patches, kernels.permute(1, 2, 0))  # (O, N*Q, b)
        return t.view(o, n, ho * wo, b).permute(1, 3, 0, 2)

    def select(self, t):
        """(N, b, O, H, W) tangents of the conv output -> (N, b, O, Q) at the active selections."""
        n, b, o = t.shape[:3]
        return t.flatten(3).gather(3, self.idx.unsqueeze(1).expand(n, b, o, -1)) * self.active.unsqueeze(1)

    def scatter(self, g, batched=True):
        """Adjoint of select, for (N, b, O, Q) tangents or (N, O, Q) primal gradients."""
        idx, active = (
            (self.idx.unsqueeze(1).expand_as(g), self.active.unsqueeze(1))
            if batched
            else (self.idx, self.active)
        )
        full = g.new_zeros(*g.shape[:-1], self.full)
        return full.scatter_(-1, idx, g * active).unflatten(-1, self.in_shape)

    def backward(self, dd):
        """Kernel products (b, O, C*kh*kw) and bias products (b, O) (or None) from (N, b, O, Q)."""
        n, o, ho, wo = self.shape
        b = dd.shape[1]
        h = torch.bmm(dd.permute(2, 1, 0, 3).reshape(o, b, n * ho * wo), self.patches).transpose(0, 1)
        return (h[..., :-1], h[..., -1]) if self.bias else (h, None)


def _pooled(module, ops):
    """The max-pool right after a convolution's ReLU (or before it), else None."""
    kinds = [type(op).__name__ for op in ops[:2]]
    if isinstance(module, nn.Conv2d) and sorted(kinds) == ["MaxPool2d", "ReLU"]:
        return ops[kinds.index("MaxPool2d")]
    return None


def _nbytes(obj):
    """Bytes held by the tensors in an object tree (an estimate for the primal cache)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(item) for item in obj)
    return _nbytes(list(vars(obj).values())) if hasattr(obj, "__dict__") else 0


class _Primal:
    """One chunk's forward and backward pass: layer inputs, fixed linear maps, softmax, gradients."""

    def __init__(self, prefix, layers, slots, params, x, y, label_smoothing=0.0):
        for op in prefix:
            x = op(x)
        self.inputs, self.pools, self.phis, a = [], [], [], x
        for (module, ops), (w, b) in zip(layers, slots, strict=True):
            self.inputs.append(a)
            bias = params[b] if b else None
            if isinstance(module, nn.Conv2d):
                z = F.conv2d(a, params[w], bias, module.stride, module.padding)
            else:
                z = F.linear(a, params[w], bias)
            pool = _pooled(module, ops)
            self.pools.append(pool and _PooledConv(module, pool, a, z, bias is not None))
            self.phis.append(_Phi(ops[2:], self.pools[-1].out) if pool else _Phi(ops, z))
            a = self.phis[-1].out
        self.p = torch.softmax(a, dim=1)
        self.deltas = [None] * len(layers)
        classes = self.p.shape[1]
        target = F.one_hot(y, classes).to(self.p.dtype) * (1 - label_smoothing) + label_smoothing / classes
        g = self.p - target
        for i in reversed(range(len(layers))):
            g = self.phis[i].transpose(g, batched=False)
            self.deltas[i] = self.pools[i].scatter(g.flatten(2), batched=False) if self.pools[i] else g
            if i:
                module, w = layers[i][0], params[slots[i][0]]
                if isinstance(module, nn.Conv2d):
                    g = conv2d_input(self.inputs[i].shape, w, self.deltas[i], module.stride, module.padding)
                else:
                    g = self.deltas[i] @ w


class SequentialHessian:
    """H = d^2/dtheta^2 mean_i CE(f(x_i; theta), y_i), like HessianOperator (same interface,
    same parameter order, same label smoothing), for models that plan() accepts.

    Each chunk's primal pass (masks, pool choices, selected patches, gradients) is kept between
    products while the kept chunks fit in `cache_bytes` (default: 4 GiB or a quarter of the
    device's free memory, whichever is less); chunks beyond that are recomputed (the same
    products: the cache changes the time, not the numbers).
    A block runs through each chunk `group_size` vectors at a time: on CPU small steps (128
    images x 16 vectors by default) are fastest, as their tangents stay in the processor's cache.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        chunk_size: int | None = None,
        group_size: int | None = None,
        dtype: torch.dtype = torch.float32,
        shift: float = 0.0,
        cache_bytes: int | None = None,
        label_smoothing: float = 0.0,
    ):
        cache_bytes = cache_budget(cache_bytes)
        plan(model)  # UnsupportedModel before any copy
        self.model = model = own_copy(model, dtype)
        self.prefix, self.layers = plan(model)
        self.device = next(model.parameters()).device
        self.dtype = dtype
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        self.sizes = [self.params[n].numel() for n in self.names]
        self.n = sum(self.sizes)
        owner = {id(p): n for n, p in model.named_parameters()}
        self.slots = [
            (owner[id(m.weight)], owner.get(id(m.bias)) if m.bias is not None else None)
            for m, _ in self.layers
        ]
        if sorted(n for pair in self.slots for n in pair if n) != sorted(self.names):
            raise UnsupportedModel("parameters outside the Conv2d/Linear layers")
        self.x = x.to(self.device, dtype)
        self.n_samples = len(x)
        self.y = y.to(self.device)
        cpu = self.device.type == "cpu"
        self.chunk_size = chunk_size or (128 if cpu else 1024)
        self.group_size = group_size or (16 if cpu else 256)
        self.shift = shift
        self.label_smoothing = label_smoothing
        self.cache_bytes = (
            min(4 << 30, available_bytes(self.device) // 4) if cache_bytes is None else cache_bytes
        )
        self._cache, self._cached_bytes = {}, 0
        self.hvp_count = 0
        self.data_passes = 0

    def _primal(self, start):
        """The primal pass of the chunk starting at `start` (cached while the budget allows)."""
        if start in self._cache:
            return self._cache[start]
        end = start + self.chunk_size
        primal = _Primal(
            self.prefix,
            self.layers,
            self.slots,
            self.params,
            self.x[start:end],
            self.y[start:end],
            self.label_smoothing,
        )
        size = _nbytes(primal)
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[start] = primal
            self._cached_bytes += size
        return primal

    def _chunk(self, tangents, primal):
        """Per-parameter H-products (b, *shape) of the summed loss over one chunk."""
        b = next(iter(tangents.values())).shape[0]
        das = [None]  # tangent of each affine layer's input (the first one's is data: none)
        for i, ((module, _), (w, bn)) in enumerate(zip(self.layers, self.slots, strict=True)):
            dw, db, pool = tangents[w], tangents[bn] if bn else None, primal.pools[i]
            if pool:
                dz = pool.forward(dw, db)
                if das[i] is not None:
                    dz = dz + pool.select(kernel_on_tangent(module, das[i], self.params[w]))
                dz = dz.reshape(*dz.shape[:3], *pool.shape[2:])
            else:
                dz = tangent_kernel_on_input(module, primal.inputs[i], dw)
                if das[i] is not None:
                    dz += kernel_on_tangent(module, das[i], self.params[w])
                if bn:
                    dz += db.view(1, b, -1, *([1] * (dz.dim() - 3)))
            das.append(primal.phis[i].forward(dz))
        logits, p = das.pop(), primal.p.unsqueeze(1)
        dd = p * (logits - (p * logits).sum(-1, keepdim=True))
        out = {}
        for i in reversed(range(len(self.layers))):
            module, (w, bn), pool = self.layers[i][0], self.slots[i], primal.pools[i]
            shape, delta = self.params[w].shape, primal.deltas[i]
            dd = primal.phis[i].transpose(dd)
            if pool:
                dd = dd.flatten(3)
                hw, hb = pool.backward(dd)
                hw = hw.reshape(b, *shape)
                dd = pool.scatter(dd) if i else None
            else:
                hw = tangent_outer(module, primal.inputs[i], dd, shape, b)
                hb = dd.sum(dim=[0, *range(3, dd.dim())]) if bn else None
            if das[i] is not None:
                hw += outer_with_tangent(module, delta, das[i], shape, b)
            out[w] = hw
            if bn:
                out[bn] = hb
            if i:
                dd = input_products(module, primal.inputs[i].shape, self.params[w], dd, delta, tangents[w], b)
        return out

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ V for V of shape (n, b): b products in one pass over the data."""
        vectors = vectors.to(self.device, self.dtype)
        b = vectors.shape[1]
        groups = []
        for block in torch.split(vectors, self.group_size, dim=1):
            parts = torch.split(block.T, self.sizes, dim=1)
            groups.append(
                {
                    n: t.reshape(len(block.T), *self.params[n].shape)
                    for n, t in zip(self.names, parts, strict=True)
                }
            )
        totals = [{} for _ in groups]
        with torch.no_grad():
            for start in range(0, len(self.x), self.chunk_size):
                primal = self._primal(start)
                for tangents, total in zip(groups, totals, strict=True):
                    for name, value in self._chunk(tangents, primal).items():
                        total[name] = total[name].add_(value) if name in total else value
        self.hvp_count += b
        self.data_passes += 1
        out = torch.cat([torch.cat([t[n].flatten(1) for n in self.names], dim=1) for t in totals]).T / len(
            self.x
        )
        return out + self.shift * vectors

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H v for one vector (n,)."""
        return self.matmat(vector.reshape(-1, 1))[:, 0]

    def loss(self) -> float:
        """The mean (label-smoothed) cross-entropy over the data."""
        with torch.no_grad():
            total = sum(
                F.cross_entropy(
                    self.model(self.x[i : i + self.chunk_size]),
                    self.y[i : i + self.chunk_size],
                    reduction="sum",
                    label_smoothing=self.label_smoothing,
                )
                for i in range(0, len(self.x), self.chunk_size)
            )
        return float(total) / len(self.x)
