"""The power-law study's data and spectrum options: label noise, shuffled labels, Gaussian
data, the test-set Hessian, the gradient-noise covariance, the trace of every record and the
eigengap fit."""

import json
import subprocess

import numpy as np
import pytest
import torch

from hessian_powerlaw.cli import portable_command
from hessian_powerlaw.fit import gap_fit, power_law_fit
from hessian_powerlaw.network import datasets
from hessian_powerlaw.network.device import cpu_model
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.models import build
from hessian_powerlaw.network.operators import HessianOperator
from hessian_powerlaw.network.operators.gradient_covariance import GradientCovariance
from hessian_powerlaw.network.spectrum import eval_data
from hessian_powerlaw.network.trace import deflated_trace
from hessian_powerlaw.network.training import STUDY_SPEC, train


@pytest.mark.parametrize("fraction", [0.1, 0.5, 1.0])
def test_label_noise_flips_to_another_class(fraction):
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (2000,), generator=gen)
    noisy = datasets.flip_labels(y, fraction, 10, gen)
    changed = noisy != y
    assert int(changed.sum()) == round(fraction * 2000)  # every chosen label changes
    assert noisy.min() >= 0 and noisy.max() < 10
    if fraction == 1.0:  # all flipped: uniform over the 9 wrong classes
        offsets = ((noisy - y) % 10).bincount(minlength=10)
        assert offsets[0] == 0 and offsets[1:].min() > 150


def test_shuffled_labels_are_a_permutation_of_the_training_labels():
    clean = datasets.load("mnist", normalization="none")
    shuffled = datasets.load("mnist", normalization="none", labels="shuffled", seed=4)
    assert torch.equal(clean["train"][1].sort().values, shuffled["train"][1].sort().values)
    assert float((clean["train"][1] != shuffled["train"][1]).float().mean()) > 0.8
    assert torch.equal(clean["test"][1], shuffled["test"][1])  # test labels untouched
    assert torch.equal(clean["train"][0], shuffled["train"][0])
    with pytest.raises(datasets.DataError, match="unknown labels"):
        datasets.load("mnist", labels="random")


def test_gaussian_data_is_seeded_and_mnist_shaped():
    a = datasets.load("gaussian", n_train=500, seed=2, normalization="none")
    b = datasets.load("gaussian", n_train=500, seed=2, normalization="none")
    c = datasets.load("gaussian", n_train=500, seed=3, normalization="none")
    assert a["train"][0].shape == (500, 1, 28, 28) and a["test"][0].shape == (10000, 1, 28, 28)
    assert torch.equal(a["train"][0], b["train"][0]) and torch.equal(a["train"][1], b["train"][1])
    assert not torch.equal(a["train"][0], c["train"][0])
    assert a["classes"] == 10 and abs(float(a["train"][0].std()) - 1) < 0.01
    assert sorted(a["train"][1].unique().tolist()) == list(range(10))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small FCN trained for 2 epochs on 300 bundled images, with 20 % label noise."""
    path = tmp_path_factory.mktemp("tiny") / "fcn.pt"
    spec = {**STUDY_SPEC, "model": "fcn", "width": 8, "depth": 1, "n_train": 300, "epochs": 2}
    spec["label_noise"] = 0.2
    model, meta = train(spec, path, progress=False, command="hessian-powerlaw train ...")
    return path, model, meta


def test_eval_split_and_dataset(tiny):
    _, _, meta = tiny
    x, y = eval_data(meta)
    assert len(x) == 300
    clean = datasets.load("mnist", n_train=300, seed=0)["train"][1]
    assert int((y != clean).sum()) == 60  # the training labels, noisy ones included
    xt, yt = eval_data(meta, n_eval=200, split="test")
    assert len(xt) == 200 and torch.equal(yt, datasets.load("mnist")["test"][1][:200])
    xg, _ = eval_data(meta, n_eval=50, dataset="gaussian")
    assert xg.shape == (50, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown eval split"):
        eval_data(meta, split="validation")
    with pytest.raises(ValueError, match="has 1000 images"):
        eval_data(meta, n_eval=5000, split="test")


def _flat_grad(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("batch", [1, 3])
def test_gradient_covariance_equals_its_dense_definition(batch):
    torch.manual_seed(0)
    model = build("fcn", (1, 4, 4), 3, depth=1, width=5).double()
    x, y = torch.randn(31, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (31,))
    op = GradientCovariance(model, x, y, batch=batch, dtype=torch.float64)
    m = 31 // batch
    g = torch.stack(
        [_flat_grad(model, x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(m)]
    )
    centred = g - g.mean(0)
    dense = centred.T @ centred / m
    v = torch.randn(op.n, 4, dtype=torch.float64)
    assert torch.allclose(op.matmat(v), dense @ v, atol=1e-12, rtol=1e-10)
    assert op.trace() == pytest.approx(float(torch.trace(dense)), rel=1e-12)
    top = top_eigenpairs(op, 5, solver="block", block_size=2, tol=1e-8, progress=False)
    exact = torch.linalg.eigvalsh(dense).flip(0)[:5].numpy()
    np.testing.assert_allclose(top.eigenvalues, exact, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2 batches"):
        GradientCovariance(model, x[:3], y[:3], batch=2)


def test_deflated_trace_against_the_dense_trace():
    torch.manual_seed(1)
    model = build("fcn", (1, 4, 4), 3, depth=1, width=6).double()
    x, y = torch.randn(40, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    op = HessianOperator(model, x, y, dtype=torch.float64)
    dense = op.matmat(torch.eye(op.n, dtype=torch.float64))
    exact = float(torch.trace(dense))
    top = top_eigenpairs(op, 20, solver="block", block_size=4, tol=1e-8, progress=False)
    estimate = deflated_trace(op.matmat, top.vectors, top.eigenvalues, n_probes=200, seed=0)
    assert abs(estimate["trace"] - exact) < 4 * estimate["stderr"] + 1e-9
    assert estimate["stderr"] < 0.05 * abs(exact)  # the top 20 carry most of it
    plain = deflated_trace(op.matmat, top.vectors, top.eigenvalues, n_probes=0)
    assert plain["trace"] == pytest.approx(float(np.sum(top.eigenvalues)))


def test_gap_fit_recovers_the_gap_law_of_a_power_law_spectrum():
    """lambda_k = k^-s has gaps ~ s k^-(s+1): beta_gap = 1 + 1/(s+1) (1.5 for s = 1)."""
    for s in (0.8, 1.0, 1.3):
        values = np.arange(1, 1001, dtype=float) ** -s
        fit = gap_fit(values)
        assert fit["k"] == 499 and fit["power_law"]
        assert fit["beta"] == pytest.approx(1 + 1 / (s + 1), abs=0.03)


def test_gap_fit_is_not_thrown_by_round_off_gaps():
    """Near-degenerate Ritz values at the end of the window (gaps of 1e-7): fitting every gap
    fails the KS test, the top half does not (the K = 1000 records of issue 18)."""
    rng = np.random.default_rng(0)
    values = np.arange(1, 1001, dtype=float) ** -1.0
    pairs = rng.choice(np.arange(600, 999), 150, replace=False)
    values[pairs + 1] = values[pairs] * (1 - 1e-7)  # twins
    values = np.sort(values)[::-1]
    gaps = -np.diff(values)
    every = power_law_fit(gaps, int(np.count_nonzero(gaps > 0)), compare=False)
    assert not every["power_law"]
    fit = gap_fit(values)
    assert fit["power_law"] and fit["beta"] == pytest.approx(1.5, abs=0.05)


def test_portable_command_names_the_data_root_data():
    assert portable_command(["train", "--data-root", "/x y/data", "--out", "a b.pt"]) == (
        "hessian-powerlaw train --data-root \"$DATA\" --out 'a b.pt'"
    )
    assert portable_command(["train", "--data-root=/d"]) == 'hessian-powerlaw train --data-root="$DATA"'


def test_record_holds_the_command_that_remakes_it(tmp_path):
    model, record_path = tmp_path / "m.pt", tmp_path / "r.json"
    train_argv = ["train", "--model", "fcn", "--width", "8", "--depth", "1", "--n-train", "200"]
    train_argv += ["--epochs", "1", "--labels", "shuffled", "--quiet", "--out", str(model)]
    subprocess.run(["hessian-powerlaw", *train_argv], check=True, capture_output=True)
    spectrum_argv = ["dnn-spectrum", str(model), "--k", "20", "--eval-split", "test", "--n-eval", "100"]
    spectrum_argv += ["--quiet", "--run", "x_s0", "--out", str(record_path)]
    subprocess.run(["hessian-powerlaw", *spectrum_argv], check=True, capture_output=True)
    record = json.loads(record_path.read_text())
    assert record["command"] == f"{portable_command(train_argv)} && {portable_command(spectrum_argv)}"
    assert record["labels"] == "shuffled" and record["eval_split"] == "test" and record["n_eval"] == 100
    assert record["seconds"] == pytest.approx(record["train_seconds"] + record["spectrum_seconds"], abs=0.02)
    assert record["trace_estimator"] == "deflated-hutchinson" and record["trace_hvps"] == 32
    assert record["trace"] > record["lambda_max"] > 0 and record["peak_mb"] > 100
    assert record["gap_k"] == 9 and record["gap_beta_expected"] == pytest.approx(1 + 1 / (record["s"] + 1))
    # what a bit-identical rerun needs besides the command: each stage's threads and machine
    assert record["train_threads"] >= 1 and record["threads"] >= 1
    capability, model = torch.backends.cpu.get_cpu_capability(), cpu_model()
    named = f"{capability} CPU ({model})" if model else f"{capability} CPU"
    assert record["train_machine"] == record["machine"] == f"{named}, torch {torch.__version__}"


def test_cache_gib_changes_what_is_kept_not_the_spectrum(tiny, tmp_path, capsys):
    from hessian_powerlaw import cli

    path = tiny[0]
    spectra = {}
    for gib in (None, "0", "0.5"):
        out = tmp_path / f"s{gib}.npy"
        argv = ["dnn-spectrum", str(path), "--k", "10", "--n-eval", "300", "--solver", "block", "--quiet"]
        argv += ["--spectrum", str(out)]
        argv += ["--out", str(tmp_path / f"r{gib}.json")] + (["--cache-gib", gib] if gib else [])
        assert cli.main(argv) == 0
        spectra[gib] = np.load(out, allow_pickle=False)
        record = json.loads((tmp_path / f"r{gib}.json").read_text())
        assert "sequential products" in record["hessian"] and record["command"].endswith(" ".join(argv[-2:]))
    # recomputing every chunk's primal pass or keeping it gives bit-identical products
    assert np.array_equal(spectra[None], spectra["0"]) and np.array_equal(spectra["0"], spectra["0.5"])
    with pytest.raises(SystemExit):
        cli.main(["dnn-spectrum", str(path), "--cache-gib", "-1", "--out", str(tmp_path / "x.json")])
    assert "--cache-gib" in capsys.readouterr().err
    factory = ["dnn-spectrum", "--model-factory", "m:f", "--data-factory", "m:d", "--cache-gib", "1"]
    assert cli.main([*factory, "--out", str(tmp_path / "y.json")]) == 2
    assert "--cache-gib do(es) not apply with --model-factory" in capsys.readouterr().err


def test_make_operator_passes_the_cache_budget_to_either_implementation():
    from hessian_powerlaw.network.models import LeNet
    from hessian_powerlaw.network.operators import make_operator
    from hessian_powerlaw.network.operators.sequential import SequentialHessian

    torch.manual_seed(0)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    lenet = LeNet((1, 28, 28), 10)
    v = torch.randn(sum(p.numel() for p in lenet.parameters()), 2)
    kept = {}
    for budget in (0, 1 << 30):
        for implementation in ("sequential", "autograd"):
            op = make_operator(lenet, x, y, implementation, cache_bytes=budget)
            kept[implementation, budget] = op.matmat(v)
            cached = op._cached_bytes if isinstance(op, SequentialHessian) else op.cache_bytes
            assert (cached > 0) == (budget > 0), (implementation, budget)
    torch.testing.assert_close(kept["sequential", 0], kept["sequential", 1 << 30], rtol=0, atol=0)
    torch.testing.assert_close(kept["autograd", 0], kept["autograd", 1 << 30], rtol=1e-5, atol=1e-6)
    for implementation in ("sequential", "autograd"):
        for bad in (-1, float("nan")):
            with pytest.raises(ValueError, match="cache_bytes must be None or at least 0"):
                make_operator(lenet, x, y, implementation, cache_bytes=bad)
