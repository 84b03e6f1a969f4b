"""Top-K Hessian eigenvalues of a trained LeNet: ARPACK and Lanczos with single products
(torch.func, one pass over the data per vector), block Lanczos with block products (the
sequential implementation: one pass per block of vectors), and deflated power iteration as
PyHessian does it (`power` solver).

Same process, same data; prints per-vector product cost, HVP count, data passes, wall time and
the worst relative deviation from the first method run (ARPACK unless skipped).

    python benchmarks/dnn_solvers.py --k 300 [--n-eval 0] [--block 32] [--skip power lanczos]
"""

import argparse
import json
import time

import numpy as np
import torch

from hessian_powerlaw.fit import FitError, power_law_fit
from hessian_powerlaw.network.device import pick_device
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.operators.sequential import SequentialHessian
from hessian_powerlaw.network.training import STUDY_SPEC, data_for, train

METHODS = ("arpack", "lanczos", "block", "power")


def per_vector_seconds(op, block, repeat=2):
    """Wall seconds per vector of a product with `block` vectors (best of `repeat`)."""
    v = torch.randn(op.n, block).to(op.device, op.dtype)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        op.matmat(v)
        best = min(best, time.perf_counter() - start)
    return best / block


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[300])
    parser.add_argument("--n-eval", type=int, default=0)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help="a model file from `hessian-powerlaw train` (default: train one)")
    parser.add_argument("--skip", nargs="*", default=[], choices=METHODS, help="methods to skip")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.model:
        model, meta = load_model(args.model, device)
    else:
        t0 = time.perf_counter()
        model, meta = train(STUDY_SPEC, "/tmp/hessian-powerlaw-bench-lenet.pt", device=device, progress=False)
        print(f"trained LeNet in {time.perf_counter() - t0:.0f} s, test acc {meta['test_acc']:.4f}")
    x, y = data_for(meta)["train"]
    if args.n_eval:
        x, y = x[: args.n_eval], y[: args.n_eval]
    single = HessianOperator(model, x, y)
    blocked = SequentialHessian(model, x, y)
    costs = {
        "torch.func, 1 vector": per_vector_seconds(single, 1),
        f"torch.func vmap, {args.block} vectors": per_vector_seconds(single, args.block, repeat=1),
        "sequential, 1 vector": per_vector_seconds(blocked, 1),
        f"sequential, {args.block} vectors": per_vector_seconds(blocked, args.block),
    }
    print(
        f"device {device}, {single.n} parameters, Hessian over {len(x)} images, "
        f"{torch.get_num_threads()} threads"
    )
    print("| product | s per vector | speed-up |")
    print("|---|---:|---:|")
    base = costs["torch.func, 1 vector"]
    for name, cost in costs.items():
        print(f"| {name} | {cost:.3f} | {base / cost:.1f}x |", flush=True)
    print()
    print(
        "| K | method | products | HVPs | data passes | wall s | speed-up vs first | max rel. dev. "
        "| beta | d_ks |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    runs = {
        "arpack": ("torch.func single", single, {"solver": "arpack"}),
        "lanczos": ("torch.func single", single, {"solver": "lanczos"}),
        "block": (f"sequential, b={args.block}", blocked, {"solver": "block", "block_size": args.block}),
        "power": ("torch.func single", single, {"solver": "power"}),
    }
    rows = []
    for k in args.k:
        first = None
        for name in (m for m in METHODS if m not in args.skip):
            products, op, options = runs[name]
            hvp0, pass0 = op.hvp_count, op.data_passes
            start = time.perf_counter()
            out = top_eigenpairs(op, k, tol=1e-3, progress=False, **options)
            seconds = time.perf_counter() - start
            values = out.eigenvalues
            first = first or (values, seconds)
            dev = float(np.max(np.abs(values - first[0]) / np.abs(first[0])))
            try:
                fit = power_law_fit(values, k, compare=False)
                beta, d_ks = f"{fit['beta']:.3f}", f"{fit['d_ks']:.4f}"
            except FitError as err:  # power iteration finds the largest |lambda|, negative ones too
                beta, d_ks = "–", f"no fit: {err}"
            row = {
                "k": k,
                "method": name,
                "products": products,
                "hvps": op.hvp_count - hvp0,
                "passes": op.data_passes - pass0,
                "seconds": seconds,
                "speedup": first[1] / seconds,
                "max_rel_dev": dev,
                "converged": bool(out.converged),
                "beta": beta,
                "d_ks": d_ks,
                "non_positive": int(np.count_nonzero(values <= 0)),
            }
            rows.append(row)
            print(
                f"| {k} | {name} | {products} | {row['hvps']} | {row['passes']} | {seconds:.1f} "
                f"| {row['speedup']:.1f}x | {dev:.1e} | {beta} | {d_ks} |",
                flush=True,
            )
            if args.json:  # after every row, so an interrupted run keeps what it measured
                with open(args.json, "w") as handle:
                    json.dump(
                        {
                            "device": device,
                            "n_params": single.n,
                            "n_eval": len(x),
                            "costs": costs,
                            "rows": rows,
                        },
                        handle,
                    )


if __name__ == "__main__":
    main()
