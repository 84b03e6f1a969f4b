"""The Gauss-Newton matrix and the empirical Fisher against their dense definitions, and the
Ritz vectors top_spectrum returns."""

import numpy as np
import pytest
import torch
from torch import nn

import hessian_powerlaw as hp
from hessian_powerlaw.network.operators.gauss_newton import EmpiricalFisher, GaussNewton
from hessian_powerlaw.network.operators.generic import LossHessian


def _problem(seed=0, n=30):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(n, 4, dtype=torch.float64), torch.randint(0, 3, (n,))
    return model, x, y


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _call(model, theta, x):
    params, i = {}, 0
    for name, p in model.named_parameters():
        params[name] = theta[i : i + p.numel()].view_as(p)
        i += p.numel()
    return torch.func.functional_call(model, params, (x,))


def _dense(op):
    return op.matmat(torch.eye(op.n, dtype=torch.float64))


def test_gauss_newton_equals_j_transpose_h_j():
    model, x, y = _problem()
    loss = nn.CrossEntropyLoss()
    theta = _flat(model)
    jacobian = torch.autograd.functional.jacobian(lambda t: _call(model, t, x), theta)  # (N, C, n)
    expected = torch.zeros(len(theta), len(theta), dtype=torch.float64)
    for i in range(len(x)):
        out = _call(model, theta, x[i : i + 1])[0]
        h_out = torch.autograd.functional.hessian(
            lambda o, i=i: nn.functional.cross_entropy(o[None], y[i : i + 1]), out
        )
        expected += jacobian[i].T @ h_out @ jacobian[i]
    expected /= len(x)
    got = _dense(GaussNewton(model, loss, (x, y), dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-12)
    assert torch.linalg.eigvalsh(got).min() > -1e-12  # positive semi-definite
    reverse = GaussNewton(model, loss, (x, y), dtype=torch.float64)
    reverse.forward_mode = False  # J v without forward mode (the fallback)
    np.testing.assert_allclose(_dense(reverse).numpy(), expected.numpy(), atol=1e-12)


def test_empirical_fisher_equals_the_mean_outer_product_of_sample_gradients():
    model, x, y = _problem(1)
    theta = _flat(model)
    gradients = torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda t, i=i: nn.functional.cross_entropy(_call(model, t, x[i : i + 1]), y[i : i + 1]), theta
            )
            for i in range(len(x))
        ]
    )
    expected = gradients.T @ gradients / len(x)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    for data in ((x, y), loader):
        got = _dense(EmpiricalFisher(model, nn.CrossEntropyLoss(), data, dtype=torch.float64))
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-12)


def test_gauss_newton_is_the_hessian_of_a_linear_model_under_mse():
    torch.manual_seed(2)
    model = nn.Linear(6, 2).double()
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    ggn = _dense(GaussNewton(model, nn.MSELoss(), (x, y), dtype=torch.float64))
    hessian = _dense(LossHessian(model, nn.MSELoss(), (x, y), dtype=torch.float64))
    np.testing.assert_allclose(ggn.numpy(), hessian.numpy(), atol=1e-12)


@pytest.mark.parametrize("curvature", ["hessian", "ggn", "fisher"])
def test_top_spectrum_of_each_curvature_equals_its_dense_spectrum(curvature):
    model, x, y = _problem(3)
    loss = nn.CrossEntropyLoss()
    operator = {"hessian": LossHessian, "ggn": GaussNewton, "fisher": EmpiricalFisher}[curvature]
    reference = torch.linalg.eigvalsh(_dense(operator(model, loss, (x, y), dtype=torch.float64))).flip(0)
    result = hp.top_spectrum(
        model, loss, (x, y), k=5, solver="lanczos", dtype=torch.float64, curvature=curvature, tol=1e-8
    )
    assert result.curvature == curvature
    np.testing.assert_allclose(result.eigenvalues, reference[:5].numpy(), rtol=1e-6)


def test_ritz_vectors_are_orthonormal_eigenvectors():
    model, x, y = _problem(4)
    loss = nn.CrossEntropyLoss()
    result = hp.top_spectrum(
        model, loss, (x, y), k=6, solver="block", dtype=torch.float64, tol=1e-6, vectors=True
    )
    v = result.vectors
    assert v.shape == (result.n_params, 6)
    np.testing.assert_allclose((v.T @ v).numpy(), np.eye(6), atol=1e-8)
    hessian = _dense(LossHessian(model, loss, (x, y), dtype=torch.float64))
    lam = torch.as_tensor(result.eigenvalues)
    residual = torch.linalg.vector_norm(hessian @ v - v * lam, dim=0) / lam.abs()
    assert float(residual.max()) < 1e-4
    assert hp.top_spectrum(model, loss, (x, y), k=3, dtype=torch.float64).vectors is None


def test_automatic_chunks_only_where_the_loss_is_a_plain_mean_and_give_the_same_products():
    from hessian_powerlaw.network.operators.generic import LossHessian, plain_mean

    y = torch.tensor([0, 1, 2, 1])
    assert plain_mean(nn.CrossEntropyLoss(label_smoothing=0.1), y) and plain_mean(nn.MSELoss(), y)
    assert not plain_mean(nn.CrossEntropyLoss(weight=torch.ones(3)), y)
    assert not plain_mean(nn.CrossEntropyLoss(ignore_index=1), y)
    assert not plain_mean(nn.CrossEntropyLoss(reduction="sum"), y)
    assert not plain_mean(lambda out, target: nn.functional.cross_entropy(out, target), y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x, y = torch.randn(600, 5, dtype=torch.float64), torch.randint(0, 3, (600,))
    y[::7] = -100  # ignored targets: the mean is over the others, so no chunks may be cut
    for loss in (nn.CrossEntropyLoss(), nn.CrossEntropyLoss(weight=torch.rand(3, dtype=torch.float64))):
        for data in ((x, y.clamp_min(0)), (x, y)):
            auto = LossHessian(model, loss, data, dtype=torch.float64)
            cut = plain_mean(loss, data[1])
            assert len(list(auto._chunks(16))) == (38 if cut else 1)  # 600 samples in chunks of 256 // 16
            whole = LossHessian(model, loss, data, dtype=torch.float64, chunk_size=600)
            v = torch.randn(auto.n, 16, dtype=torch.float64)
            torch.testing.assert_close(auto.matmat(v), whole.matmat(v), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(auto.matmat(v[:, :1]), whole.matmat(v[:, :1]), rtol=1e-10, atol=1e-12)
            assert auto.loss() == pytest.approx(whole.loss(), rel=1e-12)
