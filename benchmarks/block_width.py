"""Products per eigenvalue and wall time of (block) Lanczos against the block width and the
residual tolerance, on one trained network: the width that minimises products (b = 1) is not
the one that minimises wall time (one pass over the data serves b products).

Each row: HVPs, HVPs per eigenvalue, data passes, wall seconds, and the largest relative
eigenvalue error against a reference run (block width 16, residual tolerance 1e-6), so a
looser stopping rule is judged by the accuracy it delivers, not by its own estimate. The JSON
also keeps each K's reference eigenvalues (`references`), the measured spectrum that
`benchmarks/krylov_floor.py` can take.

    python benchmarks/block_width.py --model MODEL.pt --n-eval 1000 --k 100 1000 \
        --widths 1 4 16 32 --tols 1e-3 1e-2 [--fixed 2.0] --json benchmarks/measured/block_width.json

--fixed R adds plain Lanczos runs of exactly R x K products (no convergence test): how accurate
the top K are at a given product budget.
"""

import argparse
import json
import time

import numpy as np
import torch

from hessian_powerlaw.network.device import pick_device
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.operators.sequential import SequentialHessian
from hessian_powerlaw.network.spectrum import peak_memory_mb
from hessian_powerlaw.network.training import data_for

REFERENCE = {"block_size": 16, "tol": 1e-6}


def run(op, k, width, tol):
    hvp0, pass0 = op.hvp_count, op.data_passes
    start = time.perf_counter()
    solver = "lanczos" if width == 1 else "block"
    out = top_eigenpairs(op, k, solver=solver, tol=tol, block_size=max(width, 1), progress=False)
    return out, {
        "k": k,
        "width": out.block,
        "tol": tol,
        "hvps": op.hvp_count - hvp0,
        "passes": op.data_passes - pass0,
        "seconds": time.perf_counter() - start,
        "converged": bool(out.converged),
    }


def save(path, device, op, x, rows, references):
    """Write the rows so far and the reference eigenvalues per K (an interrupted run keeps what
    it measured)."""
    if path:
        out = {"device": device, "n_params": op.n, "n_eval": len(x), "rows": rows, "references": references}
        with open(path, "w") as handle:
            json.dump(out, handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model file from `hessian-powerlaw train`")
    parser.add_argument("--n-eval", type=int, default=1000, help="images in the Hessian (0: all)")
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--widths", type=int, nargs="*", default=[1, 4, 16, 32])
    parser.add_argument("--tols", type=float, nargs="*", default=[1e-3, 1e-2])
    parser.add_argument(
        "--fixed",
        type=float,
        nargs="*",
        default=[],
        metavar="R",
        help="also run Lanczos (b = 1) for exactly R x K products, no convergence test, and report its error",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", help="folder holding MNIST/ and FashionMNIST/ (default: the model's)")
    parser.add_argument("--json", help="write the rows here (after every row)")
    args = parser.parse_args()
    device = pick_device(args.device)
    model, meta = load_model(args.model, device)
    x, y = data_for(meta, args.data_root)["train"]
    if args.n_eval:
        x, y = x[: args.n_eval], y[: args.n_eval]
    op = SequentialHessian(model, x, y)
    print(
        f"device {device}, {op.n} parameters, Hessian over {len(x)} images, {torch.get_num_threads()} threads"
    )
    print("| K | width | tol | HVPs | HVPs / K | passes | wall s | max rel. eigenvalue error | converged |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    rows, references = [], {}
    for k in args.k:
        reference, ref_row = run(op, k, REFERENCE["block_size"], REFERENCE["tol"])
        ref = reference.eigenvalues
        references[k] = ref.tolist()
        rows.append({**ref_row, "reference": True, "max_rel_error": 0.0})
        print(
            f"| {k} | {ref_row['width']} | {ref_row['tol']:g} (reference) | {ref_row['hvps']} | "
            f"{ref_row['hvps'] / k:.2f} | {ref_row['passes']} | {ref_row['seconds']:.1f} | – | "
            f"{ref_row['converged']} |",
            flush=True,
        )
        for ratio in args.fixed:
            steps = round(ratio * k)
            hvp0, start = op.hvp_count, time.perf_counter()
            out = top_eigenpairs(op, k, solver="slq", slq_steps=steps, progress=False)
            error = np.abs(out.eigenvalues - ref) / np.abs(ref)
            row = {"k": k, "width": 1, "tol": None, "fixed_steps": steps, "hvps": op.hvp_count - hvp0}
            row.update(seconds=time.perf_counter() - start, reference=False, max_rel_error=float(error.max()))
            row["errors_above_1e-3"] = int(np.count_nonzero(error > 1e-3))
            rows.append(row)
            cells = [k, 1, f"{steps} steps, no test", row["hvps"], f"{row['hvps'] / k:.2f}", row["hvps"]]
            cells += [
                f"{row['seconds']:.1f}",
                f"{error.max():.1e} ({row['errors_above_1e-3']} above 1e-3)",
                "–",
            ]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
            save(args.json, device, op, x, rows, references)
        for tol in args.tols:
            for width in args.widths:
                out, row = run(op, k, width, tol)
                error = float(np.max(np.abs(out.eigenvalues - ref) / np.abs(ref)))
                row.update(reference=False, max_rel_error=error, peak_mb=peak_memory_mb(device))
                rows.append(row)
                print(
                    f"| {k} | {row['width']} | {tol:g} | {row['hvps']} | {row['hvps'] / k:.2f} | "
                    f"{row['passes']} | {row['seconds']:.1f} | {error:.1e} | {row['converged']} |",
                    flush=True,
                )
                save(args.json, device, op, x, rows, references)


if __name__ == "__main__":
    main()
