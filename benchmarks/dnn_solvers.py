"""Top-K Hessian eigenvalues of a trained LeNet: this package's solvers versus deflated power
iteration as PyHessian does it (one eigenvalue at a time, Gram-Schmidt against the vectors
found, stop when the eigenvalue changes by < tol relative, at most 100 iterations each).

Same process, same HVP function; prints HVP count, wall time and the worst relative deviation
from a tight reference (Lanczos, tol 1e-6).

    python benchmarks/dnn_solvers.py --k 100 [--n-eval 0] [--device auto] [--model m.pt]
"""

import argparse
import json
import time

import numpy as np
import torch

from hessian_powerlaw.eigensolvers import top_eigenpairs
from hessian_powerlaw.fit import FitError, power_law_fit
from hessian_powerlaw.hessian import HessianOperator
from hessian_powerlaw.training import STUDY_SPEC, data_for, load_model, pick_device, train


def power_iteration(op, k, tol=1e-3, max_iter=100, seed=0):
    """PyHessian's deflated power iteration; returns (eigenvalues, hvp_count)."""
    gen = torch.Generator().manual_seed(seed)
    found, values = [], []
    start = op.hvp_count
    for _ in range(k):
        v = torch.randn(op.n, generator=gen).to(op.device, op.dtype)
        value = None
        for _ in range(max_iter):
            for u in found:
                v -= torch.dot(v, u) * u
            v /= torch.linalg.vector_norm(v)
            hv = op.matvec(v)
            new = float(torch.dot(hv, v))
            v = hv
            if value is not None and abs(new - value) / (abs(value) + 1e-6) < tol:
                value = new
                break
            value = new
        for u in found:
            v -= torch.dot(v, u) * u
        found.append(v / torch.linalg.vector_norm(v))
        values.append(value)
    return np.sort(np.array(values))[::-1], op.hvp_count - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--n-eval", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help="a model file from `hessian-powerlaw train` (default: train one)")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip: arpack power")
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
    op = HessianOperator(model, x, y)
    rows = []
    print(f"device {device}, {op.n} parameters, Hessian over {len(x)} images")
    print("| K | method | HVPs | data passes | wall s | max rel. dev. | beta | d_ks |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for k in args.k:
        ref = top_eigenpairs(op, k, solver="lanczos", tol=1e-6, steps_per_k=4.0, progress=False)
        methods = [("lanczos", lambda k=k: top_eigenpairs(op, k, "lanczos", 1e-3, progress=False))]
        if "arpack" not in args.skip:
            methods.append(("arpack", lambda k=k: top_eigenpairs(op, k, "arpack", 1e-3, progress=False)))
        if "power" not in args.skip:
            methods.append(("power iteration", lambda k=k: power_iteration(op, k)))
        for name, run in methods:
            hvp0, pass0 = op.hvp_count, op.data_passes
            start = time.perf_counter()
            out = run()
            seconds = time.perf_counter() - start
            values = out[0] if isinstance(out, tuple) else out.eigenvalues
            dev = float(np.max(np.abs(values - ref.eigenvalues) / np.abs(ref.eigenvalues)))
            try:
                fit = power_law_fit(values, k, compare=False)
                beta, d_ks = f"{fit['beta']:.3f}", f"{fit['d_ks']:.4f}"
            except FitError as err:  # power iteration finds the largest |lambda|, negative ones too
                beta, d_ks = "–", f"no fit: {err}"
            row = {
                "k": k,
                "method": name,
                "hvps": op.hvp_count - hvp0,
                "passes": op.data_passes - pass0,
                "seconds": seconds,
                "max_rel_dev": dev,
                "beta": beta,
                "d_ks": d_ks,
                "non_positive": int(np.count_nonzero(values <= 0)),
            }
            rows.append(row)
            print(
                f"| {k} | {name} | {row['hvps']} | {row['passes']} | {seconds:.1f} | {dev:.1e} "
                f"| {beta} | {d_ks} |",
                flush=True,
            )
            if args.json:  # after every row, so an interrupted run keeps what it measured
                with open(args.json, "w") as handle:
                    json.dump({"device": device, "n_params": op.n, "n_eval": len(x), "rows": rows}, handle)


if __name__ == "__main__":
    main()
