import json
import platform
import subprocess

import pytest
import torch

from hessian_powerlaw.network import datasets, training
from hessian_powerlaw.network.device import cpu_model, machine
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.optimizers import OPTIMIZERS, WEIGHT_DECAY_FORM, make_optimizer
from hessian_powerlaw.network.training import STUDY_SPEC, TrainingError, train

SPEC = {**STUDY_SPEC, "n_train": 1024, "epochs": 6}


@pytest.fixture(scope="module")
def data():
    return training.data_for(SPEC)


def test_bundled_mnist_subset():
    d = datasets.load("mnist")
    assert d["train"][0].shape == (6000, 1, 28, 28) and d["test"][0].shape == (1000, 1, 28, 28)
    assert d["classes"] == 10 and sorted(d["train"][1].unique().tolist()) == list(range(10))
    assert abs(float(d["train"][0].mean())) < 1e-4  # per-pixel normalised on the training set


def test_subset_label_noise_and_errors():
    a = datasets.load("mnist", n_train=1000, seed=3)
    b = datasets.load("mnist", n_train=1000, seed=3)
    assert torch.equal(a["train"][0], b["train"][0]) and len(a["train"][1]) == 1000
    clean = datasets.load("mnist", normalization="none")["train"][1]
    noisy = datasets.load("mnist", normalization="none", label_noise=0.5, seed=1)["train"][1]
    assert int((clean != noisy).sum()) == 3000  # exactly half flipped, each to another class
    with pytest.raises(datasets.DataError, match="unknown dataset"):
        datasets.load("imagenet")
    with pytest.raises(datasets.DataError, match="n_train=7000"):
        datasets.load("mnist", n_train=7000)
    with pytest.raises(datasets.DataError, match="only MNIST is bundled"):
        datasets.load("cifar10")


def test_data_root_in_torchvision_layout(tmp_path):
    import gzip
    import shutil

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for item in (datasets.bundled_root() / "MNIST" / "raw").iterdir():
        if item.name.endswith(".gz"):
            with gzip.open(item) as src, open(raw / item.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
    d = datasets.load("mnist", root=str(tmp_path), n_train=100)
    assert d["train"][0].shape == (100, 1, 28, 28)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_steps(name):
    model = torch.nn.Linear(4, 2)
    before = model.weight.detach().clone()
    opt = make_optimizer(name, model.parameters())
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.weight)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_weight_decay_takes_the_reference_implementations_form(name):
    # Eight steps on fixed random gradients g_t (past RAdam's unrectified first steps, where the
    # two forms coincide). The L2 form must step as the same optimizer without decay given
    # g_t + wd * p_t; the decoupled form as that optimizer given g_t after shrinking p by lr * wd.
    lr, wd, steps = 0.1, 0.05, 8
    start = torch.nn.Linear(3, 2)
    with_decay, reference = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with_decay.load_state_dict(start.state_dict())
    reference.load_state_dict(start.state_dict())
    opt = make_optimizer(name, with_decay.parameters(), lr=lr, weight_decay=wd)
    plain = make_optimizer(name, reference.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=gen) for p in start.parameters()]
        for p, g in zip(with_decay.parameters(), grads, strict=True):
            p.grad = g.clone()
        opt.step()
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads, strict=True):
                if WEIGHT_DECAY_FORM[name] == "decoupled":
                    p.mul_(1 - lr * wd)
                    p.grad = g.clone()
                else:
                    p.grad = g + wd * p
        plain.step()
    for got, want in zip(with_decay.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)


def test_unknown_optimizer():
    with pytest.raises(TrainingError, match="unknown optimizer"):
        make_optimizer("sgdd", torch.nn.Linear(2, 2).parameters())


def test_training_learns_and_saves_safely(tmp_path, data):
    model, meta = train(SPEC, tmp_path / "m.pt", metrics=tmp_path / "m.json", progress=False, data=data)
    assert meta["n_params"] == 61706 and meta["lr"] == 0.1 and meta["device"] == "cpu"
    history = json.loads((tmp_path / "m.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert meta["test_acc"] > 0.5
    loaded, _ = load_model(tmp_path / "m.pt")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".*.tmp"))


def _interrupt_in_second_epoch(spec, tmp_path, data, monkeypatch):
    """Train `spec` with a checkpoint at tmp_path/run.ckpt until a kill in its second epoch."""
    calls = {"n": 0}
    real = training.evaluate

    def crash_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path / "run.pt", checkpoint=tmp_path / "run.ckpt", progress=False, data=data)
    monkeypatch.setattr(training, "evaluate", real)


def test_interrupted_training_resumes_bit_identically(tmp_path, data, monkeypatch):
    reference, _ = train(SPEC, tmp_path / "ref.pt", progress=False, data=data)
    _interrupt_in_second_epoch(SPEC, tmp_path, data, monkeypatch)
    assert not (tmp_path / "run.pt").exists()
    assert torch.load(tmp_path / "run.ckpt", weights_only=True)["epoch"] == 1
    resumed, _ = train(SPEC, tmp_path / "run.pt", checkpoint=tmp_path / "run.ckpt", progress=False, data=data)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_with_other_optimizer_settings_is_not_resumed(tmp_path, data, monkeypatch, capsys):
    spec = {**SPEC, "epochs": 2}
    reference, _ = train(spec, tmp_path / "ref.pt", progress=False, data=data)
    _interrupt_in_second_epoch(spec, tmp_path, data, monkeypatch)
    state = torch.load(tmp_path / "run.ckpt", weights_only=True)
    assert state["epoch"] == 1
    state["optimizer"]["param_groups"][0]["momentum"] = 0.5  # as if made by another form of SGD
    torch.save(state, tmp_path / "run.ckpt")
    capsys.readouterr()
    again, _ = train(spec, tmp_path / "run.pt", checkpoint=tmp_path / "run.ckpt", progress=False, data=data)
    assert "other optimizer settings; starting afresh" in capsys.readouterr().err
    for a, b in zip(reference.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_nan_loss_stops_with_a_clear_error(tmp_path, data):
    with pytest.raises(TrainingError, match="loss became nan"):
        train({**SPEC, "lr": 1e6}, tmp_path / "m.pt", progress=False, data=data)


def test_a_diverged_network_is_not_saved_as_trained(tmp_path, data, monkeypatch):
    """A final training loss far above a uniform guess (seen: 4.3e5 from per-pixel z-scores on
    all 60,000 MNIST images, with test accuracy 0.964) stops the run; no model file is written."""
    real = training.evaluate

    def exploded(model, x, y, **kwargs):
        loss, acc = real(model, x, y, **kwargs)
        return (4.3e5, acc) if len(x) == len(data["train"][0]) else (loss, acc)

    monkeypatch.setattr(training, "evaluate", exploded)
    with pytest.raises(TrainingError, match="training diverged: the final training loss 4.3e"):
        train({**SPEC, "epochs": 1}, tmp_path / "m.pt", progress=False, data=data)
    assert not (tmp_path / "m.pt").exists()


def test_progress_in_a_log_is_one_line_per_epoch(tmp_path, data, capsys):
    train({**SPEC, "epochs": 2}, tmp_path / "m.pt", progress=True, data=data)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1] for line in lines if line.startswith("train: epoch")] == [
        " epoch 1/2",
        " epoch 2/2",
    ]
    assert len(lines) <= 3  # nothing per batch


def test_model_file_is_not_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": Evil(), "meta": {}}, tmp_path / "evil.pt")
    with pytest.raises(TrainingError, match="not a model file"):
        load_model(tmp_path / "evil.pt")


def test_cli_train_and_spectrum_contract(tmp_path):
    model = tmp_path / "m.pt"
    subprocess.run(
        [
            "hessian-powerlaw",
            "train",
            "--model",
            "lenet",
            "--dataset",
            "mnist",
            "--n-train",
            "300",
            "--epochs",
            "1",
            "--optimizer",
            "sgd",
            "--batch-size",
            "64",
            "--seed",
            "1",
            "--quiet",
            "--metrics",
            str(tmp_path / "m.json"),
            "--out",
            str(model),
        ],
        check=True,
        capture_output=True,
    )
    record_path = tmp_path / "r.json"
    proc = subprocess.run(
        [
            "hessian-powerlaw",
            "dnn-spectrum",
            str(model),
            "--k",
            "20",
            "--n-eval",
            "100",
            "--solver",
            "block",
            "--quiet",
            "--spectrum",
            str(tmp_path / "s.npy"),
            "--out",
            str(record_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(record_path.read_text())
    for key in (
        "beta",
        "beta_sigma",
        "s",
        "d_ks",
        "d_c",
        "power_law",
        "k",
        "n_params",
        "hvp_count",
        "model",
        "dataset",
        "optimizer",
        "batch_size",
        "epochs",
        "n_train",
        "test_acc",
        "device",
        "status",
        "max_residual",
        "hessian",
    ):
        assert key in record, key
    assert record["n_train"] == 300 and record["n_eval"] == 100 and record["k"] == 20
    assert record["converged"] and record["max_residual"] < 1e-3
    assert "weight decay excluded" in record["hessian"] and "sequential products" in record["hessian"]
    assert record["solver"] == "block" and record["block_size"] == 5  # min(16 requested, K/4)
    assert not (tmp_path / "m.pt.ckpt").exists()


def test_model_metadata_cannot_allocate_a_network_the_file_does_not_hold(tmp_path):
    """Metadata asking for width 10^6 (a 3 GB fcn) is checked against the weights on the
    'meta' device: an error naming the file, not an allocation."""
    import resource

    spec = {**SPEC, "model": "fcn", "width": 16, "epochs": 0}
    train(spec, tmp_path / "fcn.pt", progress=False, data=training.data_for(spec))
    saved = torch.load(tmp_path / "fcn.pt", weights_only=True)
    saved["meta"]["width"] = 10**6
    torch.save(saved, tmp_path / "huge.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TrainingError, match=r"huge.pt: not a model file .*size mismatch"):
        load_model(tmp_path / "huge.pt")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500 * 1024  # KiB: < 500 MB
    model, _ = load_model(tmp_path / "fcn.pt")
    assert all(p.requires_grad and p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize(
    "key, value",
    [
        ("batch_size", 0),
        ("batch_size", -1),
        ("width", 0),
        ("depth", -1),
        ("lr", float("nan")),
        ("epochs", -2),
    ],
)
def test_impossible_training_settings_are_refused(tmp_path, key, value):
    with pytest.raises(TrainingError, match=key):
        train({**SPEC, key: value}, tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--batch-size", "0"],
        ["train", "--batch-size", "-1"],
        ["train", "--width", "0"],
        ["train", "--depth", "-1"],
        ["train", "--lr", "nan"],
        ["train", "--label-noise", "1.5"],
        ["dnn-spectrum", "m.pt", "--block-size", "0"],
        ["dnn-spectrum", "m.pt", "--tol", "nan"],
        ["dnn-spectrum", "m.pt", "--k", "inf"],
        ["protein", "x.pdb", "--k", "inf"],
        ["protein", "x.pdb", "--k", "nan"],
        ["protein", "x.pdb", "--cutoff", "nan"],
        ["protein", "x.pdb", "--gamma", "nan"],
        ["protein", "x.pdb", "--zero-mode-tol", "nan"],
        ["protein", "--entries", "e.tsv", "--batch", "0", "--batch-size", "-5"],
    ],
)
def test_cli_refuses_impossible_options_in_one_line(argv, capsys):
    from hessian_powerlaw import cli

    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--out", "o"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error: argument" in err[-1] and "Traceback" not in "\n".join(err)


def test_the_machine_label_names_the_instruction_set_the_cpu_model_and_torch(tmp_path):
    info = tmp_path / "cpuinfo"
    first = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Xeon\n"
    info.write_text(first + "\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu_model(info) == "GenuineIntel family 6 model 143"  # the first processor's
    (tmp_path / "bare").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # an ARM board names none
    assert cpu_model(tmp_path / "bare") == cpu_model(tmp_path / "absent") == platform.processor()
    label = machine("cpu")
    assert label.startswith(f"{torch.backends.cpu.get_cpu_capability()} CPU")
    assert label.endswith(f", torch {torch.__version__}") and (f"({cpu_model()})" in label or not cpu_model())
