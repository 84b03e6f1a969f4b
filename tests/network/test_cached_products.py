"""Cached gradient graphs (`generic.LossHessian`) and the basis products of Lanczos
(`eigensolvers.basis_products`): the same numbers as the plain computation, and the fallbacks."""

import numpy as np
import pytest
import torch
from torch import nn

import hessian_powerlaw.network.operators.generic as generic
from hessian_powerlaw.network.eigensolvers import basis_products
from hessian_powerlaw.network.operators.gauss_newton import GaussNewton
from hessian_powerlaw.network.operators.generic import LossHessian


class Residual(nn.Module):
    """BatchNorm, a residual connection and GELU: a model the sequential products do not cover."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.head = nn.Linear(3 * 36, 4)

    def forward(self, x):
        h = self.conv(x)
        h = h + nn.functional.gelu(self.norm(h))
        return self.head(h.flatten(1))


def _problem(samples=300):
    torch.manual_seed(0)
    model = Residual().double()
    model.train()
    model(torch.randn(64, 1, 6, 6, dtype=torch.float64))  # running statistics away from 0 / 1
    x = torch.randn(samples, 1, 6, 6, dtype=torch.float64)
    return model, (x, torch.randint(0, 4, (samples,)))


@pytest.mark.parametrize("width", [1, 5])
def test_cached_products_equal_recomputed_ones(width):
    model, data = _problem()  # 300 samples: two chunks of the cache (256 per chunk on a CPU)
    cached = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    plain = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache=False)
    v = torch.randn(cached.n, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cached.matmat(v), plain.matmat(v), rtol=1e-10, atol=1e-12)
    assert cached.cached and not plain.cached and cached.cache_bytes > 0
    assert len(cached._pullbacks) == 2 and [size for size, _ in cached._pullbacks] == [150, 150]
    again = cached.matmat(v)  # the graphs are reused, not consumed
    torch.testing.assert_close(again, plain.matmat(v), rtol=1e-10, atol=1e-12)
    assert (cached.hvp_count, cached.data_passes) == (2 * width, 2)
    assert cached.loss() == pytest.approx(plain.loss(), rel=1e-12)


def test_no_cache_where_it_would_not_fit_or_cannot_be_built(monkeypatch):
    model, data = _problem()
    v = torch.randn(sum(p.numel() for p in model.parameters()), 2, dtype=torch.float64)
    plain = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache=False).matmat(v)
    monkeypatch.setattr(generic, "available_bytes", lambda device: 1000)  # 1 kB free
    small = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    torch.testing.assert_close(small.matmat(v), plain, rtol=1e-10, atol=1e-12)
    assert not small.cached
    forced = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache=True)
    torch.testing.assert_close(forced.matmat(v), plain, rtol=1e-10, atol=1e-12)
    assert forced.cached  # asked for: built whatever the estimate says
    monkeypatch.undo()

    def no_double_backward(*args, **kwargs):
        raise RuntimeError("derivative for aten::something is not implemented")

    monkeypatch.setattr(generic, "vjp", no_double_backward)
    fallback = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    fallback.forward_mode = True
    torch.testing.assert_close(fallback.matmat(v), plain, rtol=1e-10, atol=1e-12)  # forward over reverse
    assert not fallback.cached
    with pytest.raises(RuntimeError, match="not implemented"):
        LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache=True).matmat(v)


def test_streamed_data_and_other_curvatures_are_never_cached():
    model, (x, y) = _problem(40)
    loader = [(x[:20], y[:20]), (x[20:], y[20:])]
    streamed = LossHessian(model, nn.CrossEntropyLoss(), loader, dtype=torch.float64)
    whole = LossHessian(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)
    v = torch.randn(whole.n, 3, dtype=torch.float64)
    torch.testing.assert_close(streamed.matmat(v), whole.matmat(v), rtol=1e-10, atol=1e-12)
    assert whole.cached and not streamed.cached
    with pytest.raises(ValueError, match=r"cache=True needs the data as an \(x, y\) pair"):
        LossHessian(model, nn.CrossEntropyLoss(), loader, dtype=torch.float64, cache=True).matmat(v)
    ggn = GaussNewton(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)
    ggn.matmat(v)
    assert not ggn.cached


def test_the_caller_model_is_untouched_by_the_cache():
    model, data = _problem()
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    op = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    op.matmat(torch.ones(op.n, 1, dtype=torch.float64))
    assert op.cached and model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", [1, 3])
def test_basis_products_equal_torch_ones(dtype, width):
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(500, 7, generator=gen, dtype=dtype))[0].T.contiguous()
    w = torch.randn(500, width, generator=gen, dtype=dtype)
    c = basis_products.coefficients(basis, w)
    torch.testing.assert_close(c, basis @ w)
    left = basis_products.subtract(w, basis, c)
    torch.testing.assert_close(left, w - basis.T @ (basis @ w))
    assert left.dtype == dtype and float((basis @ left).abs().max()) < 50 * torch.finfo(dtype).eps


def test_one_blas_thread_holds_openblas_to_one_thread_and_restores_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def threads():
        found = threadpoolctl.ThreadpoolController().select(internal_api="openblas").info()
        return [lib["num_threads"] for lib in found]

    np.ones((2, 2)) @ np.ones((2, 2))  # NumPy's BLAS is loaded
    before = threads()
    with basis_products.one_blas_thread("cpu"):
        inside = threads()
    assert threads() == before
    if basis_products.numpy_openblas():
        assert inside and set(inside) == {1}
    else:
        assert inside == before


def test_cache_limit_caps_the_cached_graphs():
    model, data = _problem()
    loss = nn.CrossEntropyLoss()
    v = torch.randn(sum(p.numel() for p in model.parameters()), 2, dtype=torch.float64)
    products = {}
    for limit in (0, 1 << 30):
        op = LossHessian(model, loss, data, dtype=torch.float64, cache_limit=limit)
        products[limit] = op.matmat(v)
        assert op.cached == (limit > 0) and (op.cache_bytes > 0) == (limit > 0)
    torch.testing.assert_close(products[0], products[1 << 30], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="cache_limit must be None or at least 0 bytes, got -1"):
        LossHessian(model, loss, data, cache_limit=-1)
    with pytest.raises(TypeError, match="cache_limit must be a number of bytes or None, got str"):
        LossHessian(model, loss, data, cache_limit="1")
