"""Autograd products in chunks sized to the block (issue 35) against whole-batch products, in one
process: the top-K of a model the fast sequential products do not cover.

    python benchmarks/generic_chunks.py [--k 50] [--images 1000] [--out benchmarks/measured/generic_chunks]

The model: a 10,794-parameter CNN with BatchNorm (eval mode), a residual block, GELU and
adaptive pooling, seeded, on `--images` bundled MNIST images, float32, tol 1e-3. For each solver
(block, lanczos) the same `top_eigenpairs` runs on `generic.LossHessian` with the whole batch as
one chunk (the earlier default) and with the automatic chunks (now the default); it prints
seconds, products, seconds per product, the speed-up and the largest relative difference of
the eigenvalues. Writes <out>.json and <out>.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hessian_powerlaw.network.datasets import load
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.operators.generic import LossHessian


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.b(nn.functional.gelu(self.bn(self.a(x))))


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.GELU(),
        nn.MaxPool2d(2),
        Residual(16),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    ).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/measured/generic_chunks")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = cnn()
    x, y = load("mnist", None, args.images, 0, "global")["train"]
    rows = []
    for solver in ("block", "lanczos"):
        values = {}
        for chunks, size in (("whole batch", len(x)), ("automatic", None)):
            op = LossHessian(model, nn.CrossEntropyLoss(), (x, y), chunk_size=size)
            start = time.perf_counter()
            result = top_eigenpairs(op, args.k, solver=solver, tol=1e-3, seed=0, progress=False)
            seconds = time.perf_counter() - start
            values[chunks] = result.eigenvalues
            rows.append(
                {
                    "solver": solver,
                    "chunks": chunks,
                    "k": args.k,
                    "hvp_count": result.hvp_count,
                    "seconds": round(seconds, 2),
                    "seconds_per_product": round(seconds / result.hvp_count, 4),
                    "converged": bool(result.converged),
                }
            )
        a, b = values["whole batch"], values["automatic"]
        rows[-1]["speedup"] = round(rows[-2]["seconds"] / rows[-1]["seconds"], 2)
        rows[-1]["max_rel_difference"] = float(np.max(np.abs(a - b) / np.abs(a)))
    command = "python benchmarks/generic_chunks.py " + " ".join(sys.argv[1:])
    n_params = sum(p.numel() for p in model.parameters())
    Path(args.out + ".json").write_text(
        json.dumps({"command": command.strip(), "n_params": n_params, "rows": rows}, indent=1) + "\n"
    )
    columns = ("solver", "chunks", "k", "hvp_count", "seconds", "seconds_per_product", "speedup")
    columns += ("max_rel_difference",)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns)
            + " |"
        )
    Path(args.out + ".md").write_text("\n".join(lines) + f"\n\n`{command.strip()}` ({n_params} parameters)\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
