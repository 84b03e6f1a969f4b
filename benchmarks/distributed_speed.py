"""One process against two data-parallel processes (torchrun, gloo) on this machine's CPU cores
(issue 32): the same top-K, wall time, and the share of the time the ranks spend in collectives.

    python benchmarks/distributed_speed.py [--k 50] [--out benchmarks/measured/distributed_cpu]

Models: LeNet on 2000 bundled MNIST images (the sequential fast products) and the project's
transformer on modular addition (p = 23, 265 sequences; autograd products), both at their seeded
initialisation, float64, solver 'block', tol 1e-8. One process uses both cores (2 threads); each
of the two ranks uses one. The collectives' time is measured by wrapping torch.distributed's
all_reduce and all_gather_object inside the ranks (it includes waiting for the slower rank).
Writes distributed_cpu.json and distributed_cpu.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODELS = ("lenet", "transformer")


def problem(name):
    """(model, (x, y)) of one benchmark model, seeded."""
    torch.manual_seed(0)
    if name == "lenet":
        from hessian_powerlaw.network.datasets import load
        from hessian_powerlaw.network.models import LeNet

        data = load("mnist", None, 2000, 0, "global")
        return LeNet((1, 28, 28), 10), data["train"]
    from hessian_powerlaw.network.transformer import Transformer, modular_addition

    data = modular_addition(23)
    return Transformer(24, 3, 23), data["train"]


def worker(name, k, out):
    """Run one spectrum (under torchrun: one rank of the group) and write its timings."""
    import torch.distributed as dist

    import hessian_powerlaw as hp
    from hessian_powerlaw.network.operators import distributed

    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(2 // ranks)
    distributed.init_from_environment("cpu")
    spent = {"seconds": 0.0}
    if distributed.active():
        for fn in ("all_reduce", "all_gather_object"):
            original = getattr(dist, fn)

            def timed(*args, _original=original, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    spent["seconds"] += time.perf_counter() - start

            setattr(dist, fn, timed)
    model, data = problem(name)
    start = time.perf_counter()
    result = hp.top_spectrum(
        model, nn.CrossEntropyLoss(), data, k=k, solver="block", tol=1e-8, dtype=torch.float64
    )
    wall = time.perf_counter() - start
    if distributed.rank() == 0:
        Path(out).write_text(
            json.dumps(
                {
                    "model": name,
                    "processes": ranks,
                    "k": k,
                    "n_params": result.n_params,
                    "products": result.products,
                    "hvp_count": result.hvp_count,
                    "seconds": round(wall, 2),
                    "collective_seconds": round(spent["seconds"], 2),
                    "eigenvalues": result.eigenvalues.tolist(),
                }
            )
        )


def measure(name, k, processes, folder):
    out = Path(folder) / f"{name}_{processes}.json"
    script = [str(Path(__file__).resolve()), "--worker", name, "--k", str(k), "--worker-out", str(out)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={processes}", *script]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(2 // processes)})
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/measured/distributed_cpu")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.k, args.worker_out)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            one, two = (measure(name, args.k, p, folder) for p in (1, 2))
            a, b = np.array(one["eigenvalues"]), np.array(two["eigenvalues"])
            for row in (one, two):
                row["max_rel_difference"] = float(np.max(np.abs(a - b) / np.abs(a)))
                row["speedup"] = round(one["seconds"] / row["seconds"], 3)
                row["collective_share"] = round(row["collective_seconds"] / row["seconds"], 3)
                rows.append({key: value for key, value in row.items() if key != "eigenvalues"})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/distributed_speed.py " + " ".join(sys.argv[1:])
    Path(args.out + ".json").write_text(
        json.dumps({"command": command.strip(), "rows": rows}, indent=1) + "\n"
    )
    columns = ("model", "processes", "n_params", "products", "hvp_count", "seconds", "collective_seconds")
    columns += ("collective_share", "speedup", "max_rel_difference")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |"
        for r in rows
    ]
    Path(args.out + ".md").write_text("\n".join(lines) + f"\n\n`{command.strip()}`\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
