import numpy as np
import pytest
import torch

from conftest import ROOT, DenseOperator
from hessian_powerlaw.network.eigensolvers import (
    SolverError,
    check_memory,
    explicit_residuals,
    top_eigenpairs,
)
from hessian_powerlaw.network.models import LeNet
from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.spectrum import fit_record


def test_hvp_equals_dense_hessian_times_v(tiny):
    op, dense = tiny.op, tiny.dense
    v = torch.randn(op.n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        op.matmat(v).numpy(), (dense @ v).numpy(), rtol=0, atol=1e-12 * dense.abs().max()
    )
    np.testing.assert_allclose(op.matvec(v[:, 0]).numpy(), (dense @ v[:, 0]).numpy(), atol=1e-12)
    assert torch.allclose(dense, dense.T, atol=1e-12)


def test_hvp_of_conv_net_equals_double_backward():
    torch.manual_seed(0)
    model = LeNet((1, 12, 12), 4).double()
    x, y = torch.randn(40, 1, 12, 12, dtype=torch.float64), torch.randint(0, 4, (40,))
    op = HessianOperator(model, x, y, chunk_size=16, dtype=torch.float64)
    v = torch.randn(op.n, dtype=torch.float64)
    params = list(model.parameters())
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    parts = torch.split(v, [p.numel() for p in params])
    dot = sum((g * p.view_as(g)).sum() for g, p in zip(grads, parts, strict=True))
    ref = torch.cat([h.reshape(-1) for h in torch.autograd.grad(dot, params)])
    torch.testing.assert_close(op.matvec(v), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["lanczos", "arpack"])
def test_top_eigenvalues_equal_dense_eigvalsh(tiny, solver):
    op, exact = tiny.op, tiny.descending
    result = top_eigenpairs(op, 25, solver=solver, tol=1e-10, verify=True, progress=False)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, exact[:25], rtol=1e-6)
    assert result.residuals.max() < 1e-6 and result.residual_kind == "explicit"
    assert result.hvp_count >= 25 and result.data_passes > 0


def test_lanczos_estimate_matches_explicit_residual(tiny):
    op = tiny.op
    result = top_eigenpairs(op, 10, solver="lanczos", tol=1e-4, progress=False)
    estimate = result.residuals.copy()
    verified = top_eigenpairs(op, 10, solver="lanczos", tol=1e-4, verify=True, progress=False)
    np.testing.assert_allclose(verified.residuals, estimate, rtol=0.05, atol=1e-9)


def test_non_converged_run_gives_no_verdict(tiny):
    op = tiny.op
    result = top_eigenpairs(op, 200, solver="lanczos", tol=1e-3, steps_per_k=0.01, progress=False)
    assert not result.converged and result.steps == 102
    record = {"converged": False, "solver": "lanczos", "tol": 1e-12, "steps": 50, "max_residual": 0.1}
    fit_record(record, result.eigenvalues, 200)
    assert record["status"] == "not_converged" and "power_law" not in record


def test_memory_refusal_names_the_k_that_fits():
    with pytest.raises(SolverError) as err:
        check_memory(n=10_000_000, k=1000, steps_per_k=3.0, element_size=4, device="cpu", limit=16 * 2**30)
    message = str(err.value)
    assert "top-1000 needs about" in message and "K <= " in message
    fits = int(message.rsplit("K <= ", 1)[1].split()[0])
    check_memory(n=10_000_000, k=fits, steps_per_k=3.0, element_size=4, device="cpu", limit=16 * 2**30)


def test_k_must_be_below_parameter_count(tiny):
    op = tiny.op
    with pytest.raises(SolverError, match="between 1 and"):
        top_eigenpairs(op, op.n, progress=False)


def test_slq_ritz_values_after_m_steps(tiny):
    """SLQ runs exactly m steps; with m large enough its top Ritz values are the eigenvalues,
    with few steps they are not, and the residual estimates say so."""
    op, exact = tiny.op, tiny.descending
    full = top_eigenpairs(op, 10, solver="slq", slq_steps=200, progress=False)
    assert full.steps == 200 and full.hvp_count == 200
    np.testing.assert_allclose(full.eigenvalues, exact[:10], rtol=1e-6)
    short = top_eigenpairs(op, 10, solver="slq", slq_steps=12, progress=False)
    assert short.steps == 12 and short.residuals.max() > 1e-3 and not short.converged
    with pytest.raises(SolverError, match="slq_steps >= K"):
        top_eigenpairs(op, 10, solver="slq", slq_steps=5)


def test_power_iteration_finds_largest_magnitudes(tiny):
    op, exact = tiny.op, tiny.descending
    result = top_eigenpairs(op, 3, solver="power", tol=1e-8, progress=False)
    by_magnitude = exact[np.argsort(-np.abs(exact))][:3]
    np.testing.assert_allclose(np.sort(result.eigenvalues), np.sort(by_magnitude), rtol=1e-4)
    assert result.residual_kind == "explicit" and result.hvp_count > 3


def test_weight_decay_term_shifts_every_eigenvalue(tiny):
    op, exact = tiny.op, tiny.descending
    shifted = HessianOperator(op.model, op.x, op.y, chunk_size=128, dtype=torch.float64, shift=5e-4)
    v = torch.randn(op.n, 2, dtype=torch.float64)
    torch.testing.assert_close(shifted.matmat(v), op.matmat(v) + 5e-4 * v)
    result = top_eigenpairs(shifted, 5, tol=1e-10, progress=False)
    np.testing.assert_allclose(result.eigenvalues, exact[:5] + 5e-4, rtol=1e-8)


def test_fixed_budget_methods_are_fitted_without_convergence():
    values = np.arange(1, 101, dtype=float) ** -1.0
    for solver, status in (("slq", "ok"), ("power", "ok"), ("lanczos", "not_converged")):
        record = {"converged": False, "solver": solver, "tol": 1e-3}
        fit_record(record, values, 50)
        assert record["status"] == status


@pytest.mark.parametrize("block", [1, 4, 16])
def test_block_lanczos_equals_dense_eigvalsh(tiny, block):
    op, exact = tiny.op, tiny.descending
    result = top_eigenpairs(op, 25, solver="block", block_size=block, tol=1e-8, verify=True, progress=False)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, exact[:25], rtol=1e-6)
    assert result.residuals.max() < 1e-6
    assert result.data_passes < result.hvp_count / block + 30  # one pass per block (+ the verification)
    assert result.block == min(block, 25 // 4)


def test_block_lanczos_estimates_match_explicit_residuals(tiny):
    op = tiny.op
    result = top_eigenpairs(op, 10, solver="block", block_size=8, tol=1e-4, progress=False)
    explicit = explicit_residuals(op.matmat, result.vectors, result.eigenvalues)
    np.testing.assert_allclose(explicit, result.residuals, rtol=0.05, atol=1e-9)


@pytest.mark.parametrize(
    "name, in_shape",
    [
        ("lenet", (1, 12, 12)),
        ("lenet", (3, 16, 16)),
        ("fcn", (1, 6, 6)),
        ("lnn", (1, 6, 6)),
        ("lnn-relu", (1, 6, 6)),
    ],
)
def test_sequential_block_products_equal_autograd(name, in_shape):
    from hessian_powerlaw.network.models import build
    from hessian_powerlaw.network.operators.sequential import SequentialHessian

    torch.manual_seed(1)
    model = build(name, in_shape, 4, 2, 16).double()
    x, y = torch.randn(50, *in_shape, dtype=torch.float64), torch.randint(0, 4, (50,))
    ref = HessianOperator(model, x, y, chunk_size=16, dtype=torch.float64)
    fast = SequentialHessian(model, x, y, chunk_size=16, dtype=torch.float64)
    v = torch.randn(ref.n, 7, dtype=torch.float64)
    torch.testing.assert_close(fast.matmat(v), ref.matmat(v), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.matvec(v[:, 0]), ref.matvec(v[:, 0]), rtol=1e-10, atol=1e-12)
    assert fast.hvp_count == 8 and fast.data_passes == 2
    assert fast.loss() == pytest.approx(ref.loss())


def _odd_net():
    """A pool before its ReLU and no bias; a pool without a ReLU; a convolution without a pool."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1, bias=False),
        torch.nn.MaxPool2d(2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 4, 1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    )


@pytest.mark.parametrize("chunk_size, group_size, cache_bytes", [(16, 3, 4 << 30), (7, 2, 0), (50, 8, 20000)])
def test_sequential_products_do_not_depend_on_chunks_groups_or_cache(chunk_size, group_size, cache_bytes):
    from hessian_powerlaw.network.operators.sequential import SequentialHessian

    torch.manual_seed(2)
    model = _odd_net().double()
    x, y = torch.randn(40, 2, 8, 8, dtype=torch.float64), torch.randint(0, 3, (40,))
    ref = HessianOperator(model, x, y, chunk_size=16, dtype=torch.float64)
    fast = SequentialHessian(
        model,
        x,
        y,
        chunk_size=chunk_size,
        group_size=group_size,
        dtype=torch.float64,
        cache_bytes=cache_bytes,
    )
    v = torch.randn(ref.n, 5, dtype=torch.float64)
    expected = ref.matmat(v)
    for _ in range(2):  # the second pass reads the cached primal chunks, if any
        torch.testing.assert_close(fast.matmat(v), expected, rtol=1e-10, atol=1e-12)
    assert (fast._cached_bytes > 0) == (cache_bytes > 20000) and fast._cached_bytes <= cache_bytes


def test_make_operator_falls_back_to_autograd_for_other_models():
    from hessian_powerlaw.network.models import build
    from hessian_powerlaw.network.operators import make_operator
    from hessian_powerlaw.network.operators.sequential import SequentialHessian, UnsupportedModel

    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    resnet = build("resnet18", (3, 32, 32), 10, 2, 16)
    assert isinstance(make_operator(resnet, x, y), HessianOperator)
    with pytest.raises(UnsupportedModel, match="not supported"):
        make_operator(resnet, x, y, "sequential")
    lenet = LeNet((3, 32, 32), 10)
    assert isinstance(make_operator(lenet, x, y), SequentialHessian)
    assert isinstance(make_operator(lenet, x, y, "autograd"), HessianOperator)
    bn = build("lnn-bn", (3, 32, 32), 10, 1, 8)
    assert isinstance(make_operator(bn, x, y), HessianOperator)  # BatchNorm: autograd


def _low_rank(n=2000, rank=5):
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(n, rank, generator=gen, dtype=torch.float64))
    values = torch.logspace(0, -2, rank, dtype=torch.float64)
    return u @ torch.diag(values) @ u.T, values.numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("solver, block", [("block", 8), ("lanczos", 1)])
def test_lanczos_survives_a_hessian_of_rank_below_k(dtype, solver, block):
    """Rank 5, K = 40: the Krylov space is exhausted after one block. The old block solver lost
    orthogonality here (float64: Ritz values of 6e90; float32: NaN), the old Lanczos stopped
    with 6 of 40 values. Now dependent columns are replaced and the zeros are resolved."""
    matrix, values = _low_rank()
    result = top_eigenpairs(DenseOperator(matrix, dtype), 40, solver=solver, block_size=block, progress=False)
    assert result.converged and len(result.eigenvalues) == 40 and np.all(np.isfinite(result.eigenvalues))
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(result.eigenvalues[:5], values, rtol=rtol)
    assert np.all(np.abs(result.eigenvalues[5:]) <= result.noise_floor) and result.replaced > 0
    v = result.vectors.double()
    gram = v.T @ v - torch.eye(40, dtype=torch.float64)
    assert float(gram.abs().max()) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_non_finite_products_stop_with_a_clear_error():
    matrix, _ = _low_rank(200, 3)
    matrix[0, 0] = float("nan")
    for solver in ("block", "lanczos", "arpack", "power"):
        with pytest.raises(SolverError, match="returned NaN or inf after 0 products"):
            top_eigenpairs(DenseOperator(matrix, torch.float64), 10, solver=solver, progress=False)


def test_no_fit_when_fewer_than_k_values_exceed_the_noise_floor():
    values = np.concatenate([np.arange(1, 10) ** -1.0, np.full(91, 1e-12)])
    record = {"converged": True, "solver": "block", "tol": 1e-3, "noise_floor": 1e-8, "epochs": 50}
    fit_record(record, values, 50, chance=0.1)
    assert record["status"] == "skipped" and "only 9 of the top-50" in record["reason"]
    assert "did not learn" not in record["reason"]  # no training accuracy known
    record = {**record, "train_acc": 0.114}
    fit_record(record, values, 50, chance=0.1)
    assert "did not learn (training accuracy 0.114, chance 0.100)" in record["reason"]


@pytest.mark.slow
def test_collapsed_lenet_gives_a_reason_not_nan():
    """A real LeNet that collapsed in training (Hessian rank ~9, tests/data/dnn/README.md): the
    default solver used to diverge to NaN after ~430 products; now it converges and says why
    there is no fit."""
    from hessian_powerlaw.network.spectrum import SpectrumSettings, spectrum

    model = ROOT / "tests" / "data" / "dnn" / "lenet_collapsed.pt"
    settings = SpectrumSettings(k=300, n_eval=500, data_root="", progress=False)
    record, values, residuals, _ = spectrum(model, settings)
    assert record["converged"] and record["solver"] == "block" and np.all(np.isfinite(values))
    assert record["status"] == "skipped" and "the Hessian's rank is below K" in record["reason"]
    assert "did not learn" in record["reason"] and record["replaced"] > 0
    assert 5 <= int(np.count_nonzero(values > record["noise_floor"])) <= 30


def test_operators_share_one_interface_and_leave_the_callers_model_alone():
    from hessian_powerlaw.network.operators import Operator, SequentialHessian

    torch.manual_seed(0)
    model = LeNet((1, 12, 12), 4).train()
    x, y = torch.randn(20, 1, 12, 12), torch.randint(0, 4, (20,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for cls in (HessianOperator, SequentialHessian):
        op = cls(model, x, y, dtype=torch.float64)
        assert isinstance(op, Operator) and op.n == sum(p.numel() for p in model.parameters())
        assert op.matmat(torch.randn(op.n, 2, dtype=torch.float64)).shape == (op.n, 2)
    assert model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
