"""Exact loss-Hessian products in blocks for piecewise-linear sequential networks
(Conv2d, Linear, ReLU, non-overlapping MaxPool2d, Flatten: LeNet, fcn, lnn, lnn-relu).

At fixed parameters such a network is linear between its ReLU masks and max-pool choices, so
forward-over-reverse differentiation with the masks held fixed is the exact Hessian (what
autograd computes, ReLU'' = 0). Arranged by hand, a block of b tangent vectors shares one
primal pass, a convolution with b tangent kernels runs as one convolution with b times the
channels, and the first convolution (of the data) is a product with the input patches its
max-pool selected, so no full-resolution tangent is formed. On 2 CPU cores this is several times
faster per vector than torch.func products (benchmarks/dnn_solvers.py). Tangents are laid out
(N, b, ...) so that no step needs a transposed copy.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight


class UnsupportedModel(ValueError):
    """A model this operator cannot handle (use HessianOperator)."""


def plan(model):
    """(ops before the first affine layer, [(affine module, ops after it)]) or UnsupportedModel."""
    prefix, layers = [], []
    for module in (m for m in model.modules() if not list(m.children())):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d) and (
                module.groups != 1
                or module.stride != (1, 1)
                or module.dilation != (1, 1)
                or module.padding_mode != "zeros"
                or isinstance(module.padding, str)
            ):
                raise UnsupportedModel(f"{module}: only plain stride-1 convolutions")
            layers.append((module, []))
        elif isinstance(module, (nn.ReLU, nn.MaxPool2d, nn.Flatten)):
            if isinstance(module, nn.MaxPool2d) and not _plain_pool(module):
                raise UnsupportedModel(f"{module}: only non-overlapping max-pooling")
            if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
                raise UnsupportedModel(f"{module}: only Flatten(1, -1)")
            (layers[-1][1] if layers else prefix).append(module)
        elif not isinstance(module, (nn.Identity, nn.Dropout)):  # both the identity in eval mode
            raise UnsupportedModel(f"{type(module).__name__} layers are not supported")
    if not layers:
        raise UnsupportedModel("no Conv2d or Linear layer")
    return prefix, layers


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _plain_pool(m):
    return (
        _pair(m.kernel_size) == _pair(m.stride or m.kernel_size)
        and _pair(m.padding) == (0, 0)
        and _pair(m.dilation) == (1, 1)
        and not m.ceil_mode
        and not m.return_indices
    )


class _Phi:
    """The fixed linear map after an affine layer (ReLU masks and pool choices of the primal).
    A max-pool is a gather of the chosen positions (times the ReLU mask there, when a ReLU comes
    just before it); its adjoint scatters back."""

    def __init__(self, ops, z):
        self.steps = []
        t = z
        for op in ops:
            if isinstance(op, nn.ReLU):
                self.steps.append(["mask", t > 0])
                t = torch.relu(t)
            elif isinstance(op, nn.MaxPool2d):
                k = _pair(op.kernel_size)
                out, idx = F.max_pool2d(t, k, k, return_indices=True)
                idx = idx.flatten(2)
                active = None
                if self.steps and self.steps[-1][0] == "mask":  # fold the ReLU into the gather
                    active = self.steps.pop()[1].flatten(2).gather(2, idx)
                self.steps.append(["pool", (idx, active, t.shape[2:], out.shape[2:])])
                t = out
            else:  # Flatten
                self.steps.append(["flatten", t.shape[1:]])
                t = t.flatten(1)
        self.out = t

    def forward(self, t):
        """Apply to tangents of shape (N, b, ...)."""
        for kind, arg in self.steps:
            if kind == "mask":
                t = t * arg.unsqueeze(1)
            elif kind == "pool":
                idx, active, _, out_shape = arg
                n, b, c = t.shape[:3]
                t = t.flatten(3).gather(3, idx.unsqueeze(1).expand(n, b, c, -1))
                if active is not None:
                    t = t * active.unsqueeze(1)
                t = t.unflatten(3, out_shape)
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
                idx, active, in_shape, _ = arg
                if batched:
                    idx = idx.unsqueeze(1).expand(*g.shape[:3], -1)
                    active = None if active is None else active.unsqueeze(1)
                flat = g.flatten(lead + 1)
                if active is not None:
                    flat = flat * active
                full = flat.new_zeros(*flat.shape[:-1], in_shape[0] * in_shape[1])
                g = full.scatter_(-1, idx, flat).unflatten(-1, in_shape)
            else:
                g = g.unflatten(lead, arg)
        return g


class _FirstConv:
    """The first convolution with its ReLU and max-pool, as a gather of input patches: its input
    is data, so the tangent at its pooled output is a product of the kernel tangent with the
    patches the pool selected (no full-resolution tangent is ever formed)."""

    def __init__(self, module, ops, x, z):
        t = z
        for op in ops:
            if isinstance(op, nn.ReLU):
                t = torch.relu(t)
            else:
                k = _pair(op.kernel_size)
                t, idx = F.max_pool2d(t, k, k, return_indices=True)
        n, o, ho, wo = idx.shape
        idx = idx.flatten(2)  # (N, O, Q) positions in the H*W grid
        self.active = z.flatten(2).gather(2, idx) > 0
        (kh, kw), (ph, pw), width = module.kernel_size, module.padding, z.shape[3]
        padded = F.pad(x, (pw, pw, ph, ph))
        c, wp = padded.shape[1], padded.shape[3]
        corner = (idx // width) * wp + idx % width  # each patch's top-left in the padded image
        offsets = (
            torch.arange(kh, device=x.device)[:, None] * wp + torch.arange(kw, device=x.device)
        ).flatten()
        index = (corner.unsqueeze(-1) + offsets).flatten(2)  # (N, O, Q*kh*kw)
        flat = padded.flatten(2).unsqueeze(1).expand(n, o, c, -1)
        patches = flat.gather(3, index.unsqueeze(2).expand(n, o, c, -1)).unflatten(3, (ho * wo, kh * kw))
        patches = patches * self.active.view(n, o, 1, ho * wo, 1)  # (N, O, C, Q, kh*kw)
        self.patches = patches.permute(1, 0, 3, 2, 4).reshape(o, n * ho * wo, c * kh * kw)
        self.shape = (n, o, ho, wo)

    def forward(self, dw, db):
        """Tangent at the pooled output, (N, b, O, Ho, Wo)."""
        n, o, ho, wo = self.shape
        b = dw.shape[0]
        t = torch.bmm(self.patches, dw.flatten(2).permute(1, 2, 0))  # (O, N*Q, b)
        t = t.view(o, n, ho * wo, b).permute(1, 3, 0, 2)
        if db is not None:
            t = t + db.view(1, b, o, 1) * self.active.unsqueeze(1)
        return t.reshape(n, b, o, ho, wo)

    def backward(self, dd):
        """Kernel and bias products from the tangent of the pooled-output gradient."""
        n, o, ho, wo = self.shape
        b = dd.shape[1]
        flat = dd.flatten(3)  # (N, b, O, Q)
        hw = torch.bmm(flat.permute(2, 1, 0, 3).reshape(o, b, n * ho * wo), self.patches)  # (O, b, Ckk)
        hb = (flat * self.active.unsqueeze(1)).sum((0, 3))
        return hw.transpose(0, 1), hb


def _gatherable(prefix, layers):
    """Whether the first layer is a convolution of the data followed by a ReLU and a max-pool."""
    module, ops = layers[0]
    kinds = sorted(type(op).__name__ for op in ops)
    return not prefix and isinstance(module, nn.Conv2d) and kinds == ["MaxPool2d", "ReLU"]


class SequentialHessian:
    """H = d^2/dtheta^2 mean_i CE(f(x_i; theta), y_i), like HessianOperator (same interface,
    same parameter order), for models that plan() accepts."""

    def __init__(self, model, x, y, chunk_size=500, dtype=torch.float32, shift=0.0):
        self.model = model.eval().to(dtype)
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
        self.y = y.to(self.device)
        self.chunk_size = chunk_size
        self.shift = shift
        self.gather_first = _gatherable(self.prefix, self.layers)
        self.hvp_count = 0
        self.data_passes = 0

    def _primal(self, x, y):
        """Inputs, masks and loss gradients (w.r.t. each affine output) of one chunk."""
        for op in self.prefix:
            x = op(x)
        inputs, phis, a = [], [], x
        for (module, ops), (w, b) in zip(self.layers, self.slots, strict=True):
            inputs.append(a)
            bias = self.params[b] if b else None
            if isinstance(module, nn.Conv2d):
                z = F.conv2d(a, self.params[w], bias, module.stride, module.padding)
            else:
                z = F.linear(a, self.params[w], bias)
            if not phis and self.gather_first:
                self.first = _FirstConv(module, ops, a, z)
            phis.append(_Phi(ops, z))
            a = phis[-1].out
        p = torch.softmax(a, dim=1)
        deltas = [None] * len(self.layers)
        g = p - F.one_hot(y, p.shape[1]).to(p.dtype)
        for i in reversed(range(len(self.layers))):
            deltas[i] = phis[i].transpose(g, batched=False)
            if i:
                module, w = self.layers[i][0], self.params[self.slots[i][0]]
                if isinstance(module, nn.Conv2d):
                    g = conv2d_input(inputs[i].shape, w, deltas[i], module.stride, module.padding)
                else:
                    g = deltas[i] @ w
        return inputs, phis, p, deltas

    def _chunk(self, tangents, x, y):
        """Per-parameter H-products (b, *shape) of the summed loss over one chunk."""
        inputs, phis, p, deltas = self._primal(x, y)
        b = next(iter(tangents.values())).shape[0]
        das = [None]  # tangent of each affine layer's input (the first one's is data: none)
        for i, ((module, _), (w, bn)) in enumerate(zip(self.layers, self.slots, strict=True)):
            if i == 0 and self.gather_first:
                das.append(self.first.forward(tangents[w], tangents[bn] if bn else None))
                continue
            dz = _tangent_in(module, inputs[i], tangents[w], self.params[w], das[i])
            if bn:
                dz = dz + tangents[bn].view(1, b, -1, *([1] * (dz.dim() - 3)))
            das.append(phis[i].forward(dz))
        logits = das.pop()
        dd = p.unsqueeze(1) * (logits - (p.unsqueeze(1) * logits).sum(-1, keepdim=True))
        out = {}
        for i in reversed(range(len(self.layers))):
            module, (w, bn) = self.layers[i][0], self.slots[i]
            if i == 0 and self.gather_first:
                out[w], hb = self.first.backward(dd)
                out[w] = out[w].reshape(b, *self.params[w].shape)
                if bn:
                    out[bn] = hb
                break
            dd = phis[i].transpose(dd)
            out[w] = _weight_products(module, inputs[i], dd, deltas[i], das[i], self.params[w].shape, b)
            if bn:
                out[bn] = dd.sum(dim=[0, *range(3, dd.dim())])
            if i:
                dd = _input_products(module, inputs[i].shape, self.params[w], dd, deltas[i], tangents[w], b)
        return out

    def matmat(self, vectors):
        """H @ V for V of shape (n, b): b products in one pass over the data."""
        vectors = vectors.to(self.device, self.dtype)
        b = vectors.shape[1]
        parts = torch.split(vectors.T, self.sizes, dim=1)
        tangents = {n: t.reshape(b, *self.params[n].shape) for n, t in zip(self.names, parts, strict=True)}
        total = dict.fromkeys(self.names, 0)
        with torch.no_grad():
            for i in range(0, len(self.x), self.chunk_size):
                x, y = self.x[i : i + self.chunk_size], self.y[i : i + self.chunk_size]
                for name, value in self._chunk(tangents, x, y).items():
                    total[name] = total[name] + value
        self.hvp_count += b
        self.data_passes += 1
        out = torch.cat([total[n].reshape(b, -1) for n in self.names], dim=1).T / len(self.x)
        return out + self.shift * vectors

    def matvec(self, vector):
        return self.matmat(vector.reshape(-1, 1))[:, 0]

    def loss(self):
        with torch.no_grad():
            total = sum(
                F.cross_entropy(
                    self.model(self.x[i : i + self.chunk_size]),
                    self.y[i : i + self.chunk_size],
                    reduction="sum",
                )
                for i in range(0, len(self.x), self.chunk_size)
            )
        return float(total) / len(self.x)


def _tangent_in(module, a, dw, w, da):
    """dz = dW * a + W * da for tangent kernels dW (b, ...) and input tangents da (N, b, ...)."""
    b = dw.shape[0]
    if isinstance(module, nn.Conv2d):
        out = F.conv2d(a, dw.flatten(0, 1), None, module.stride, module.padding)
        dz = out.unflatten(1, (b, -1))
        if da is not None:
            n = da.shape[0]
            dz = dz + F.conv2d(da.flatten(0, 1), w, None, module.stride, module.padding).unflatten(0, (n, b))
        return dz
    dz = (a @ dw.flatten(0, 1).T).unflatten(1, (b, -1))
    return dz if da is None else dz + da @ w.T


def _weight_products(module, a, dd, delta, da, shape, b):
    """H-product for the layer's weight: sum_n dd (x) a + delta (x) da."""
    if isinstance(module, nn.Conv2d):
        kw = {"stride": module.stride, "padding": module.padding}
        out = conv2d_weight(a, (b * shape[0], *shape[1:]), dd.flatten(1, 2), **kw)
        if da is not None:
            # sum_n delta[n, o] corr da[n, b, c]: a convolution over the images (as channels)
            x = da.flatten(1, 2).transpose(0, 1)  # (b*C, N, H, W)
            k = delta.transpose(0, 1)  # (O, N, H', W')
            corr = F.conv2d(x, k, padding=module.padding)  # (b*C, O, kh, kw)
            out = out + corr.unflatten(0, (b, shape[1])).transpose(1, 2).flatten(0, 1)
        return out.unflatten(0, (b, shape[0]))
    out = (dd.flatten(1, 2).T @ a).unflatten(0, (b, shape[0]))
    if da is not None:
        out = out + (delta.T @ da.flatten(1, 2)).unflatten(1, (b, shape[1])).transpose(0, 1)
    return out


def _input_products(module, in_shape, w, dd, delta, dw, b):
    """Tangent of the input gradient: W^T dd + dW^T delta, shape (N, b, ...)."""
    if isinstance(module, nn.Conv2d):
        kw = {"stride": module.stride, "padding": module.padding}
        n = dd.shape[0]
        shared = conv2d_input((n * b, *in_shape[1:]), w, dd.flatten(0, 1), **kw).unflatten(0, (n, b))
        stacked = dw.transpose(0, 1).flatten(1, 2)  # (O, b*C, kh, kw): b kernels side by side
        own = F.conv_transpose2d(delta, stacked, None, module.stride, module.padding)
        return shared + own.unflatten(1, (b, -1))
    return dd @ w + (delta @ dw.transpose(0, 1).flatten(1, 2)).unflatten(1, (b, -1))
