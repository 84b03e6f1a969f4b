"""The small transformer and its synthetic task: data, the autograd Hessian through LayerNorm,
softmax attention and GELU against dense references, and training through `train`."""

import numpy as np
import pytest
import torch
from torch import nn

import hessian_powerlaw as hp
from hessian_powerlaw import cli
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.network import datasets
from hessian_powerlaw.network.models import build
from hessian_powerlaw.network.operators.generic import LossHessian
from hessian_powerlaw.network.transformer import Transformer, modular_addition


def test_modular_addition_is_every_pair_split_by_seed():
    data = modular_addition(7, 0.6, seed=1)
    (x, y), (xt, yt) = data["train"], data["test"]
    assert torch.equal(yt, (xt[:, 0] + xt[:, 1]) % 7)
    assert len(x) + len(xt) == 49 and len(x) == 29 and data["classes"] == 7
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 7) and torch.all(x[:, 2] == 7)
    pairs = {tuple(r) for r in torch.cat([x, xt])[:, :2].tolist()}
    assert len(pairs) == 49
    assert torch.equal(modular_addition(7, 0.6, seed=1)["train"][0], x)
    assert not torch.equal(modular_addition(7, 0.6, seed=2)["train"][0], x)
    loaded = datasets.load("modular-addition", n_train=100, seed=3)
    assert len(loaded["train"][0]) == 100 and loaded["classes"] == 23
    with pytest.raises(datasets.DataError, match="label noise"):
        datasets.load("modular-addition", label_noise=0.1)


def test_transformer_top_k_and_blocks_equal_dense_references():
    torch.manual_seed(0)
    model = Transformer(6, 3, 5, depth=1, width=8).double()
    data = modular_addition(5, 0.8, seed=0)["train"]
    op = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    dense = op.matmat(torch.eye(op.n, dtype=torch.float64))
    assert torch.allclose(dense, dense.T, atol=1e-10)
    spectrum = hp.top_spectrum(model, nn.CrossEntropyLoss(), data, k=8, dtype=torch.float64, tol=1e-9)
    np.testing.assert_allclose(
        spectrum.eigenvalues, torch.linalg.eigvalsh(dense).flip(0)[:8].numpy(), rtol=1e-7
    )
    blocks = hp.top_spectrum(
        model, nn.CrossEntropyLoss(), data, k=4, blocks="head.*", dtype=torch.float64, tol=1e-9
    )
    names = [n for n, _ in model.named_parameters()]
    start = sum(p.numel() for n, p in model.named_parameters() if names.index(n) < names.index("head.weight"))
    sub = dense[start:, start:]
    np.testing.assert_allclose(
        blocks["head.*"].eigenvalues, torch.linalg.eigvalsh(sub).flip(0)[:4].numpy(), rtol=1e-7, atol=1e-12
    )


def test_build_refuses_image_models_on_token_data():
    assert isinstance(build("transformer", (3,), 23, depth=2, width=64), Transformer)
    with pytest.raises(ValueError, match="takes images"):
        build("lenet", (3,), 23)


@pytest.mark.slow
def test_train_a_transformer_and_its_per_block_spectra(tmp_path):
    model = tmp_path / "tf.pt"
    argv = ["train", "--model", "transformer", "--dataset", "modular-addition", "--optimizer", "adam"]
    argv += ["--lr", "0.003", "--weight-decay", "0", "--batch-size", "265", "--epochs", "40", "--depth", "1"]
    argv += ["--width", "16", "--quiet", "--out", str(model)]
    assert cli.main(argv) == 0
    table = tmp_path / "blocks.tsv"
    argv = ["dnn-spectrum", str(model), "--k", "5", "--blocks", "layer", "--quiet", "--out", str(table)]
    assert cli.main(argv) == 0
    rows = read_tsv(table)
    assert {"embed", "blocks.0.qkv", "blocks.0.mlp.0", "head"} <= {r["block"] for r in rows}
    assert all(r["converged"] for r in rows)
    assert cli.main(["blocks-plot", str(table), "--out", str(tmp_path / "blocks.png")]) == 0
    assert (tmp_path / "blocks.png").stat().st_size > 1000
