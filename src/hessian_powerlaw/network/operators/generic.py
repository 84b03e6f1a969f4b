"""The Hessian of any model under any loss, over tensors or a DataLoader (autograd products).

H = d^2/dtheta^2 L(theta) for L the data mean of `loss_fn(model(x), y)`: `loss_fn` has mean
reduction, so a batch of n_b of N samples enters with weight n_b / N. The model is copied in
eval mode (BatchNorm on its running statistics, dropout off). `names` restricts theta to a
subset of the parameters (a block of the Hessian: the other parameters held fixed). A block
of b vectors costs one pass over the data (forward-over-reverse, vmapped over the vectors), so
data larger than memory stream once per block of products.

Chunks: a batch is cut into chunks of about CHUNK_BUDGET / b samples for a block of b vectors
(unless `chunk_size` fixes it), where the loss is known to be a plain mean over samples
(`plain_mean`: then chunk means weighted by their sizes give the batch's mean exactly). On a
BatchNorm/residual CNN the working set, not the arithmetic, sets a product's cost on a CPU:
`benchmarks/measured/generic_chunks.md` compares whole-batch and chunked products.

Cached products: with in-memory data, each chunk's gradient graph is built once and kept, and a
product is one reverse pass through it (the pullback of the gradient: reverse-over-reverse
without recomputing the forward and backward passes), 1.3-2x cheaper per vector than recomputing
them on the peer benchmark's models (one-off timings; the end-to-end effect is in
benchmarks/measured/dnn_peers_generic.md). The graph holds the chunk's activations and
their gradients, so the cache is built only where its size, estimated from the tensors one chunk
saves (twice that, for what the estimate misses), is at most `cache_limit` bytes (default:
CACHE_SHARE of the device's free memory); `cache=False` never builds it, `cache=True` always
(an error where it cannot be).

Uncached products are forward-over-reverse; where torch's forward mode fails on the first product
(nn.MSELoss: "ZeroTensors are immutable", weight_norm, operations without a forward-mode rule)
the operator switches to reverse-over-reverse, which gives the same products.
"""

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from hessian_powerlaw.network.device import available_bytes
from hessian_powerlaw.network.operators.base import cache_budget, own_copy

CACHE_SHARE = 0.25  # the cached gradient graphs may take this share of the free memory


def is_pair(data: object) -> bool:
    """Whether data is an in-memory (inputs, targets) pair of tensors."""
    return isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data)


# samples x vectors per chunk of a block product: CPU caches favour small working sets (measured,
# see the module docstring); a GPU wants large ones
CHUNK_BUDGET = {"cpu": 256, "cuda": 8192}
_MEAN_LOSSES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCEWithLogitsLoss,
    nn.CrossEntropyLoss,
    nn.NLLLoss,
)


def plain_mean(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y: torch.Tensor) -> bool:
    """Whether loss_fn(outputs, y) is the plain mean over samples of a per-sample loss (a known
    torch loss, mean reduction, no class weights, no ignored targets in y), so that the data
    may be cut into chunks weighted by their sizes."""
    if type(loss_fn) not in _MEAN_LOSSES or loss_fn.reduction != "mean":
        return False
    if getattr(loss_fn, "weight", None) is not None:
        return False
    ignored = getattr(loss_fn, "ignore_index", None)
    return ignored is None or not bool((y == ignored).any())


def _to(x, device, dtype):
    """Inputs on the device; floating ones at the operator's dtype (token ids stay integers)."""
    return x.to(device, dtype) if x.is_floating_point() else x.to(device)


def batches(
    data: tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) pairs of `data`: an (x, y) tuple of tensors is one batch; an iterable of
    (x, y) pairs (a DataLoader) is read as it is."""
    return [data] if is_pair(data) else data


class LossHessian:
    """H over `data` (see the module docstring), implementing `operators.base.Operator`."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]],
        names: list[str] | None = None,
        dtype: torch.dtype = torch.float32,
        chunk_size: int | None = None,
        cache: bool | None = None,
        cache_limit: int | None = None,
    ):
        self.cache_limit = cache_budget(cache_limit, "cache_limit")  # None: CACHE_SHARE of the free memory
        self.model = model = own_copy(model, dtype)
        self.cache, self._pullbacks, self.cache_bytes = cache, None, 0
        self.loss_fn, self.dtype, self.chunk_size = loss_fn, dtype, chunk_size
        first = next(model.parameters(), None)
        if first is None:
            raise ValueError("the model has no parameters: no Hessian to take")
        self.device = first.device
        if is_pair(data):  # in-memory data move to the device once
            data = (_to(data[0], self.device, dtype), data[1].to(self.device))
        self.data = data
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.names = list(names) if names is not None else trainable
        unknown = sorted(set(self.names) - set(trainable))
        if unknown or not self.names:
            raise ValueError(f"no such trainable parameters: {', '.join(unknown) or '(none given)'}")
        named = dict(model.named_parameters())
        self.params = {n: named[n].detach() for n in self.names}
        self.fixed = {n: p.detach() for n, p in named.items() if n not in self.params}
        self.fixed.update({n: b.detach() for n, b in model.named_buffers()})
        self.shapes = [self.params[n].shape for n in self.names]
        self.sizes = [self.params[n].numel() for n in self.names]
        self.n = sum(self.sizes)
        self.forward_mode = True
        self.hvp_count = 0
        self.data_passes = 0

    def _unflatten(self, flat):
        parts = torch.split(flat, self.sizes)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def _flatten(self, tensors):
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def _loss(self, params, x, y):
        out = functional_call(self.model, {**params, **self.fixed}, (x,))
        return self.loss_fn(out, y)

    def _hvp(self, v, x, y):
        gradient = lambda p: grad(self._loss)(p, x, y)  # noqa: E731
        if self.forward_mode:
            _, hv = jvp(gradient, (self.params,), (self._unflatten(v),))
        else:
            _, pullback = vjp(gradient, self.params)
            (hv,) = pullback(self._unflatten(v))
        return self._flatten(hv)

    def _budget(self):
        """Samples x vectors per chunk on this operator's device (CHUNK_BUDGET)."""
        return CHUNK_BUDGET["cuda" if self.device.type == "cuda" else "cpu"]

    def _chunks(self, vectors=1):
        budget = self._budget()
        for x, y in batches(self.data):
            x, y = _to(x, self.device, self.dtype), y.to(self.device)
            step = self.chunk_size
            if step is None and plain_mean(self.loss_fn, y):
                step = max(8, budget // vectors)
                step = -(-len(x) // -(-len(x) // step))  # equal chunks: 265 -> 133 + 132, not 256 + 9
            step = step or len(x)
            for i in range(0, len(x), step):
                yield x[i : i + step], y[i : i + step]

    @property
    def cached(self) -> bool:
        """Whether products run through the cached gradient graphs (decided on the first one)."""
        return bool(self._pullbacks)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ V for V of shape (n, b): b products in one pass over the data."""
        if self._pullbacks is None:
            self._pullbacks = self._build_cache() if self.cache is not False else []
        if self._pullbacks:
            return self._cached_matmat(vectors)
        try:
            return self._matmat(vectors)
        except (RuntimeError, NotImplementedError):
            if not (self.forward_mode and self.hvp_count == 0):
                raise
            self.forward_mode = False  # forward mode unsupported here (weight_norm, MSELoss, ...)
            return self._matmat(vectors)

    def _chunk_product(self, vectors, x, y):
        """The chunk's mean curvature times V (n, b): b products vmapped over the vectors."""
        if vectors.shape[1] == 1:
            return self._hvp(vectors[:, 0], x, y)[:, None]
        return vmap(self._hvp, in_dims=(1, None, None), out_dims=1)(vectors, x, y)

    def _matmat(self, vectors):
        vectors = vectors.to(self.device, self.dtype)
        out, count = torch.zeros_like(vectors), 0
        for x, y in self._chunks(vectors.shape[1]):
            part = self._chunk_product(vectors, x, y)
            out += len(x) * part
            count += len(x)
        if count == 0:
            raise ValueError(self._no_samples())
        self.n_samples = count
        self.hvp_count += vectors.shape[1]
        self.data_passes += 1
        return out / count

    def _build_cache(self):
        """[(samples, pullback)] per chunk, the pullback u -> H_chunk u of the chunk's gradient
        graph; [] where the cache is not allowed (see the module docstring)."""
        own = type(self)._hvp is LossHessian._hvp and type(self)._chunk_product is LossHessian._chunk_product
        if not (own and is_pair(self.data)):
            if self.cache:
                raise ValueError(
                    "cache=True needs the data as an (x, y) pair of tensors and Hessian products"
                )
            return []
        chunks = list(self._chunks())
        if not chunks:
            raise ValueError(self._no_samples())
        estimate = 2 * self._graph_bytes(*chunks[0]) * len(self.data[0]) / len(chunks[0][0])
        limit = CACHE_SHARE * available_bytes(self.device) if self.cache_limit is None else self.cache_limit
        if self.cache is None and estimate > limit:
            return []
        try:
            pullbacks = [
                (len(x), vjp(lambda p, x=x, y=y: grad(self._loss)(p, x, y), self.params)[1])
                for x, y in chunks
            ]
        except (RuntimeError, NotImplementedError):  # an operation without a double-backward rule
            if self.cache:
                raise
            return []
        self.cache_bytes = int(estimate)
        return pullbacks

    def _graph_bytes(self, x, y):
        """Bytes of the tensors that the loss's gradient graph on (x, y) saves (each storage once)."""
        saved = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        params = {n: p.detach().clone().requires_grad_() for n, p in self.params.items()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            torch.autograd.grad(self._loss(params, x, y), list(params.values()), create_graph=True)
        return sum(saved.values())

    def _cached_matmat(self, vectors):
        """H @ V through the cached graphs, vmapped over groups of vectors sized so that a group
        times a chunk's samples stays within CHUNK_BUDGET (the working set of the uncached path)."""
        vectors = vectors.to(self.device, self.dtype)
        budget = self._budget()
        out, count = torch.zeros_like(vectors), 0
        for size, pullback in self._pullbacks:
            product = lambda v, pullback=pullback: self._flatten(pullback(self._unflatten(v))[0])  # noqa: E731
            group = max(1, budget // size)
            for i in range(0, vectors.shape[1], group):
                part = vectors[:, i : i + group]
                if part.shape[1] == 1:
                    out[:, i] += size * product(part[:, 0])
                else:
                    out[:, i : i + group] += size * vmap(product, in_dims=1, out_dims=1)(part)
            count += size
        self.n_samples = count
        self.hvp_count += vectors.shape[1]
        self.data_passes += 1
        return out / count

    def _mean_loss(self, params):
        """The data mean of the loss at `params` (differentiable), weighting batches by size."""
        total, count = 0.0, 0
        for x, y in self._chunks():
            total = total + self._loss(params, x, y) * len(x)
            count += len(x)
        if count == 0:
            raise ValueError(self._no_samples())
        self.n_samples = count
        return total / count

    def _no_samples(self):
        if self.data_passes:
            return (
                f"the data yielded no samples on pass {self.data_passes + 1}: they can be read only once "
                "(an iterator or generator?); pass a list of (x, y) batches or a DataLoader"
            )
        return "the data hold no samples"

    def loss(self) -> float:
        """The mean loss over the data at the model's parameters."""
        with torch.no_grad():
            return float(self._mean_loss(self.params))
