"""The API on the models, data and arguments users bring: right answers or one clear error.

Each class of failure seen when the API was tried as an adversary has a test here: the fast
products chosen for a model whose forward() they do not describe, data that change from pass
to pass, changes to the caller's model, and arguments that used to give tracebacks."""

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import hessian_powerlaw as hp
from hessian_powerlaw.fit import FitError
from hessian_powerlaw.network.device import DeviceError
from hessian_powerlaw.network.eigensolvers import SolverError


def _flat_loss(model, loss_fn, x, y):
    """loss(theta) over the trainable parameters, for a dense autograd Hessian."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def loss(theta):
        params, i = {}, 0
        for name, p in named:
            params[name] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        return loss_fn(torch.func.functional_call(model, params, (x,)), y)

    return loss, torch.cat([p.detach().reshape(-1) for _, p in named])


def dense_top(model, loss_fn, x, y, k):
    loss, flat = _flat_loss(model, loss_fn, x, y)
    hessian = torch.autograd.functional.hessian(loss, flat)
    return torch.linalg.eigvalsh(hessian).flip(0).numpy()[:k]


class FunctionalRelu(nn.Module):
    """Only Linear modules registered; ReLU called as a function: not a chain of its modules."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) * 2.0)


class Reordered(nn.Module):
    """Modules registered in another order than forward() runs them."""

    def __init__(self):
        super().__init__()
        self.second, self.act, self.first = nn.Linear(7, 3), nn.ReLU(), nn.Linear(5, 7)

    def forward(self, x):
        return self.second(self.act(self.first(x)))


class Twice(nn.Module):
    """One layer applied twice."""

    def __init__(self):
        super().__init__()
        self.inp, self.act, self.mid, self.out = nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.out(self.act(self.mid(self.act(self.mid(self.act(self.inp(x)))))))


def tied():
    model = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3))
    model[2].weight = model[0].weight
    return model


def frozen():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    model[0].weight.requires_grad_(False)
    return model


@pytest.mark.parametrize("build", [FunctionalRelu, Reordered, Twice, tied, frozen])
def test_models_the_fast_products_do_not_describe_get_exact_autograd_spectra(build):
    torch.manual_seed(1)
    model = build().double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    loss = nn.CrossEntropyLoss()
    result = hp.top_spectrum(model, loss, (x, y), k=3, solver="dense", dtype=torch.float64)
    assert result.products == "autograd" and result.note
    np.testing.assert_allclose(result.eigenvalues, dense_top(model, loss, x, y, 3), rtol=1e-8, atol=1e-12)


def test_sequential_models_still_get_the_fast_products():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    result = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=3, solver="dense", dtype=torch.float64)
    assert result.products == "sequential" and result.note is None
    np.testing.assert_allclose(
        result.eigenvalues, dense_top(model, nn.CrossEntropyLoss(), x, y, 3), rtol=1e-8, atol=1e-12
    )


def test_ignored_labels_use_autograd_products():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    y[::3] = -100
    loss = nn.CrossEntropyLoss()
    result = hp.top_spectrum(model, loss, (x, y), k=3, solver="dense", dtype=torch.float64)
    assert result.products == "autograd"
    np.testing.assert_allclose(result.eigenvalues, dense_top(model, loss, x, y, 3), rtol=1e-8, atol=1e-12)


def test_data_that_change_between_passes_are_refused():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))

    class Augmented(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i] + 0.3 * torch.randn(5), y[i]

    loader = torch.utils.data.DataLoader(Augmented(), batch_size=16)
    with pytest.raises(ValueError, match="changed by .* between two passes"):
        hp.top_spectrum(model, nn.CrossEntropyLoss(), loader, k=3, solver="lanczos")
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    result = hp.top_spectrum(model, nn.CrossEntropyLoss(), shuffled, k=3, solver="lanczos")
    assert result.converged  # reordering the same data is no change


def test_the_callers_model_is_never_changed():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    before = copy.deepcopy(model.state_dict())
    model.train()
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    with pytest.raises(DeviceError, match="meta"):
        hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=2, device="meta")
    hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=2, device=torch.device("cpu"))
    assert model.training and all(p.device.type == "cpu" for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


class WeightNormed(nn.Module):
    def __init__(self, legacy=False):
        super().__init__()
        norm = nn.utils.weight_norm if legacy else nn.utils.parametrizations.weight_norm
        self.a = norm(nn.Linear(5, 6))
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


@pytest.mark.parametrize("legacy, message", [(False, "not symmetric"), (True, "cannot be copied")])
def test_weight_norm_gets_a_clear_error(legacy, message):
    """torch's second derivatives through weight_norm are not exact (their Hessian is not
    symmetric and differs from finite differences), and the legacy hook cannot be copied."""
    torch.manual_seed(4)
    model = WeightNormed(legacy).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 3, (30,))
    with pytest.raises(ValueError, match=message):
        hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=3, solver="lanczos", dtype=torch.float64)


def _generator(x, y):
    yield x, y


BAD_CALLS = [
    ({"model": nn.ReLU()}, "no trainable parameters"),
    ({"loss_fn": nn.CrossEntropyLoss(reduction="sum")}, "reduction='sum'"),
    ({"data": (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))}, "no samples"),
    ({"data": (torch.zeros(4, 5), torch.zeros(3, dtype=torch.long))}, "4 samples but y"),
    ({"data": "images"}, "data must be"),
    ({"data": [torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)]}, "tuple of two tensors"),
    ({"k": 2.5}, "k must be a positive integer"),
    ({"k": -3}, "k must be a positive integer"),
    ({"k": 10_000}, "below the number of parameters"),
    ({"solver": "magic"}, "solver must be one of"),
    ({"tol": 0}, "tol must be"),
    ({"dtype": torch.float16}, "dtype must be"),
    ({"device": "mps"}, "not supported"),
    ({"device": 3}, "device must be a name"),
    ({"seed": "zero"}, "seed must be an integer"),
    ({"blocks": 3}, "blocks must be"),
    ({"blocks": "nothing*"}, "matches no parameter"),
    ({"block_size": 0}, "block_size must be"),
]


@pytest.mark.parametrize("change, message", BAD_CALLS, ids=[m for _, m in BAD_CALLS])
def test_bad_arguments_get_one_clear_error(change, message):
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    call = {"model": nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))}
    call.update(loss_fn=nn.CrossEntropyLoss(), data=(x, y), k=2, solver="lanczos")
    call.update(change)
    with pytest.raises((ValueError, TypeError, DeviceError)) as info:
        hp.top_spectrum(**call)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_generator_is_refused_before_it_is_consumed():
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    with pytest.raises(TypeError, match="can be read only once"):
        hp.top_spectrum(model, nn.CrossEntropyLoss(), _generator(x, y), k=2)


@pytest.mark.parametrize(
    "values, k, message",
    [
        (np.arange(1, 100.0), -3, "at least 2"),
        (np.arange(1, 100.0), 2.5, "integer"),
        (np.arange(1, 100.0), True, "integer"),
        (np.full(50, 1.0) + np.arange(50) * np.finfo(float).eps, 50, "no tail to fit"),
        (np.array([1.0, np.nan, 3.0]), 2, "NaN"),
        (["a", "b"], 2, "array of numbers"),
    ],
)
def test_power_law_fit_refuses_what_it_cannot_fit(values, k, message):
    with pytest.raises(FitError, match=message):
        hp.power_law_fit(values, k)


def test_fuzzed_arguments_give_an_answer_or_one_clear_error():
    """Seeded random calls over the API's arguments: a finite, descending spectrum, or one of the
    API's errors in one line; never another exception."""
    rng = np.random.default_rng(0)
    x, y = torch.randn(24, 5), torch.randint(0, 3, (24,))
    models = [
        lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)),
        lambda: nn.Sequential(nn.Linear(5, 4), nn.GELU(), nn.LayerNorm(4), nn.Linear(4, 3)),
        FunctionalRelu,
        lambda: nn.Sequential(nn.Linear(5, 3)),
    ]
    choices = {
        "k": [1, 2, 5, 0, -1, 2.0, 10**6, None],
        "solver": ["block", "lanczos", "arpack", "dense", "power", "slq", "nope"],
        "tol": [1e-3, 1e-1, 0.0, -1.0, float("nan"), 2.0],
        "dtype": [torch.float32, torch.float64, torch.int64],
        "device": ["cpu", "auto", torch.device("cpu"), "cuda:7", "meta"],
        "blocks": [None, None, "layer", "*weight", "[", ""],
        "seed": [0, 1, -1, 1.5],
        "curvature": ["hessian", "ggn", "fisher", "hessian", "laplacian"],
        "vectors": [False, True],
    }
    allowed = (ValueError, TypeError, DeviceError, SolverError, FitError)
    for _ in range(150):
        call = {name: values[rng.integers(len(values))] for name, values in choices.items()}
        model = models[rng.integers(len(models))]()
        try:
            result = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), progress=False, **call)
        except allowed as err:
            assert str(err) and "\n" not in str(err), (call, err)
            continue
        for spectrum in result.values() if isinstance(result, dict) else [result]:
            values = spectrum.eigenvalues
            assert np.all(np.isfinite(values)) and np.all(np.diff(values) <= 1e-9 * abs(values[0]) + 1e-12)


class Diagonal:
    """A diagonal operator (the Operator interface)."""

    def __init__(self, values):
        self.d = torch.as_tensor(values, dtype=torch.float64)
        self.n, self.dtype, self.device = len(values), torch.float64, torch.device("cpu")
        self.hvp_count = self.data_passes = 0

    def matmat(self, v):
        self.hvp_count += v.shape[1]
        self.data_passes += 1
        return self.d[:, None] * v


def test_converged_means_small_residuals_for_every_solver():
    from hessian_powerlaw.network.eigensolvers import top_eigenpairs

    # +1 and -0.995: power iteration's Rayleigh quotient settles (its stopping rule) while its
    # vector still mixes the two (residual 0.3); it used to say converged=True
    values = np.concatenate([[1.0, -0.995], np.linspace(0.5, 0.01, 198)])
    for solver in ("power", "arpack", "lanczos", "block"):
        result = top_eigenpairs(Diagonal(values), 3, solver=solver, tol=1e-3, progress=False)
        assert result.converged == (solver != "power"), solver
        if result.converged:
            np.testing.assert_allclose(result.eigenvalues, [1.0, 0.5, 0.4975126], rtol=1e-3)
    power = top_eigenpairs(Diagonal(values), 3, solver="power", tol=1e-3, progress=False)
    assert np.max(power.residuals) > 0.1


def test_every_solver_runs_with_its_progress_bar(capsys):
    # arpack's and power iteration's bars have no total, and `if bar:` on such a tqdm raises
    from hessian_powerlaw.network.eigensolvers import SOLVERS, top_eigenpairs

    values = np.concatenate([[1.0, 0.7, 0.5], np.linspace(0.3, 0.01, 57)])
    for solver in SOLVERS:
        result = top_eigenpairs(Diagonal(values), 3, solver=solver, progress=True, slq_steps=40)
        np.testing.assert_allclose(result.eigenvalues, values[:3], rtol=1e-2, err_msg=solver)


class Timed(Diagonal):
    """A diagonal operator whose products take a set time: per call, and per vector in a block."""

    def __init__(self, values, per_call, per_block_vector):
        super().__init__(values)
        self.per_call, self.per_block_vector = per_call, per_block_vector

    def matmat(self, v):
        import time

        time.sleep(self.per_call + (self.per_block_vector * v.shape[1] if v.shape[1] > 1 else 0.0))
        return super().matmat(v)


@pytest.mark.parametrize("per_block_vector, expected", [(0.0, "block"), (0.02, "lanczos")])
def test_auto_picks_the_solver_the_measured_costs_favour(per_block_vector, expected):
    from hessian_powerlaw.network.eigensolvers import top_eigenpairs

    values = 1.0 / np.arange(1, 401, dtype=float)
    op = Timed(values, per_call=0.01, per_block_vector=per_block_vector)
    # one thread: on a loaded machine a two-thread QR of this size waits ~0.1 s at its barrier
    # for a descheduled thread, which would time the machine's load instead of the operator
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = top_eigenpairs(op, 40, solver="auto", tol=1e-3, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.choice.startswith(f"{expected}:") and "predicted" in result.choice
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, values[:40], rtol=1e-3)
    # the measurement's products (a warm-up, one alone, one block) count in the result
    assert result.hvp_count == op.hvp_count


class TwoFormulations(Timed):
    """A timed operator with two product formulations (`forward_mode`), one slower per vector."""

    def __init__(self, values, forward_extra, reverse_extra):
        super().__init__(values, per_call=0.005, per_block_vector=0.0)
        self.forward_mode, self.extra = True, {True: forward_extra, False: reverse_extra}

    def matmat(self, v):
        import time

        time.sleep(self.extra[self.forward_mode] * v.shape[1])
        return super().matmat(v)


@pytest.mark.parametrize("forward_extra, reverse_extra, kept", [(0.0, 0.004, True), (0.004, 0.0, False)])
def test_auto_keeps_the_faster_product_formulation_and_says_so(forward_extra, reverse_extra, kept):
    from hessian_powerlaw.network.eigensolvers import top_eigenpairs

    values = 1.0 / np.arange(1, 401, dtype=float)
    op = TwoFormulations(values, forward_extra, reverse_extra)
    result = top_eigenpairs(op, 40, solver="auto", tol=1e-3, progress=False)
    assert op.forward_mode is kept
    name = "forward-over-reverse" if kept else "reverse-over-reverse"
    assert f"; {name} products (" in result.choice
    np.testing.assert_allclose(result.eigenvalues, values[:40], rtol=1e-3)
    assert result.hvp_count == op.hvp_count


def test_auto_on_a_network_names_its_choice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    result = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=20)
    assert result.solver in ("block", "lanczos") and result.choice.startswith(result.solver)
    dense = hp.top_spectrum(model, nn.CrossEntropyLoss(), (x, y), k=20, solver="dense")
    np.testing.assert_allclose(result.eigenvalues, dense.eigenvalues, rtol=1e-2)


def test_an_unconverged_spectrum_warns_and_says_so(monkeypatch):
    # a benchmark once used an unconverged run as its reference because nothing said so
    import hessian_powerlaw.network.api as api

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    data = (torch.randn(40, 6), torch.randint(0, 3, (40,)))
    solve = api.top_eigenpairs

    def stopped(*args, **kwargs):
        result = solve(*args, **kwargs)
        result.converged = False  # as at the step limit
        return result

    monkeypatch.setattr(api, "top_eigenpairs", stopped)
    with pytest.warns(RuntimeWarning, match="lanczos stopped after .* without reaching tol 0.001"):
        spectrum = hp.top_spectrum(model, torch.nn.CrossEntropyLoss(), data, k=4, solver="lanczos")
    assert not spectrum.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fixed-budget method claims nothing
        hp.top_spectrum(model, torch.nn.CrossEntropyLoss(), data, k=4, solver="slq")
    monkeypatch.setattr(api, "top_eigenpairs", solve)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a converged run stays quiet
        assert hp.top_spectrum(model, torch.nn.CrossEntropyLoss(), data, k=4, solver="lanczos").converged
