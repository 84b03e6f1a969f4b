"""Top-K loss-Hessian eigenvalues of one trained LeNet by this project and by the tools users
know, in one process: products, data passes, wall time, peak memory and the largest relative
error against a converged reference (block Lanczos, float64, tol 1e-8).

Tools (each with its own defaults first, then settings that aim at the top-K to 1e-3):
- hessian-powerlaw block (tol 1e-3, sequential products) and arpack (scipy eigsh on our products);
- curvlinops-for-pytorch: HessianLinearOperator + scipy eigsh(which='LA', tol=1e-3);
- hessian-eigenthings 1.0.0a5: lanczos() with its defaults (which='LM', 2K steps), then
  which='LA' with 3K reorthogonalised steps;
- PyHessian 0.1: deflated power iteration (tol 1e-3, at most 100 iterations per eigenvalue).

The peers are not dependencies of the project: `pip install pyhessian==0.1
hessian-eigenthings==1.0.0a5 curvlinops-for-pytorch==3.0.1`. A peer that is missing or fails
is a row saying so.

    python benchmarks/dnn_peers.py --model results/dnn/models/lenet_mnist_sgd_b128_n0_w100_d2_s0_e50.pt \
        --n-eval 1000 --k 100 --out benchmarks/measured/dnn_peers.json
"""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse.linalg
import torch

from hessian_powerlaw.io import write_json
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.operators import make_operator
from hessian_powerlaw.network.spectrum import eval_data
from hessian_powerlaw.network.training import load_model


class PeakMemory:
    """Peak resident memory above the starting level while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.mb = (self.peak - self.start) / 2**20


class Counter:
    """Counts Hessian-vector products and passes over the data of a peer's operator."""

    def __init__(self):
        self.hvps = self.passes = 0

    def add(self, vectors=1):
        self.hvps += vectors
        self.passes += 1


def ours(model, x, y, k, solver):
    op = make_operator(model, x, y)
    result = top_eigenpairs(op, k, solver=solver, tol=1e-3, progress=False)
    return result.eigenvalues, op.hvp_count, op.data_passes


def curvlinops_eigsh(model, x, y, k):
    from curvlinops import HessianLinearOperator

    data = list(zip(x.split(1000), y.split(1000), strict=True))
    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, data).to_scipy()
    count = Counter()

    def matvec(v):
        count.add()
        return op @ v

    wrapped = scipy.sparse.linalg.LinearOperator(op.shape, matvec=matvec, dtype=op.dtype)
    values = scipy.sparse.linalg.eigsh(wrapped, k=k, which="LA", tol=1e-3, return_eigenvectors=False)
    return np.sort(values)[::-1], count.hvps, count.passes


def eigenthings(model, x, y, k, tuned):
    import hessian_eigenthings as he

    data = list(zip(x.split(1000), y.split(1000), strict=True))
    op = he.HessianOperator(model, data, he.supervised_loss(torch.nn.functional.cross_entropy))
    count = Counter()
    inner = op.matvec
    op.matvec = lambda v: (count.add(), inner(v))[1]
    options = {"which": "LA", "max_iter": 3 * k, "reorthogonalize": True} if tuned else {}
    result = he.lanczos(op, k=k, seed=0, **options)
    values = result.eigenvalues.detach().cpu().double().numpy()
    return np.sort(values)[::-1], count.hvps, count.passes


def pyhessian_power(model, x, y, k):
    from pyhessian import hessian

    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    count = Counter()
    module = sys.modules["pyhessian.hessian"]  # the package exports the class under the module's name
    product = module.hessian_vector_product

    def counted(*args, **kwargs):
        count.add()
        return product(*args, **kwargs)

    module.hessian_vector_product = counted
    try:
        values, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=k)
    finally:
        module.hessian_vector_product = product
    return np.sort(np.asarray(values, dtype=float))[::-1], count.hvps, count.passes


TOOLS = {
    "hessian-powerlaw block": lambda m, x, y, k: ours(m, x, y, k, "block"),
    "hessian-powerlaw arpack": lambda m, x, y, k: ours(m, x, y, k, "arpack"),
    "curvlinops HessianLinearOperator + eigsh(LA)": curvlinops_eigsh,
    "hessian-eigenthings lanczos (defaults)": lambda m, x, y, k: eigenthings(m, x, y, k, False),
    "hessian-eigenthings lanczos (LA, 3K steps, reorthogonalised)": lambda m, x, y, k: eigenthings(
        m, x, y, k, True
    ),
    "pyhessian deflated power iteration": pyhessian_power,
}


def reference(model, x, y, k):
    op = make_operator(model, x, y, dtype=torch.float64)
    result = top_eigenpairs(op, k, solver="block", tol=1e-8, progress=False)
    if not result.converged:
        raise RuntimeError("the reference did not converge")
    return result.eigenvalues


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-eval", type=int, default=1000, help="Hessian over the first N training images")
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--skip", nargs="*", default=[], help="tools to leave out (substrings)")
    parser.add_argument("--out", required=True, help="JSON: one object per (tool, K)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, meta = load_model(args.model)
    x, y = eval_data(meta, args.n_eval)
    rows = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else []
    done = {(r["tool"], r["k"]) for r in rows}
    for k in args.k:
        ref = reference(model, x, y, k)
        for tool, run in TOOLS.items():
            if (tool, k) in done or any(s in tool for s in args.skip):
                continue
            row = {
                "tool": tool,
                "k": k,
                "n_eval": len(x),
                "n_params": sum(p.numel() for p in model.parameters()),
            }
            start = time.perf_counter()
            try:
                with PeakMemory() as memory:
                    values, hvps, passes = run(model, x, y, k)
                values = np.asarray(values, dtype=float)[:k]
                error = np.abs(values - ref[: len(values)]) / np.abs(ref[: len(values)])
                row.update(
                    hvp_count=int(hvps),
                    data_passes=int(passes),
                    seconds=round(time.perf_counter() - start, 2),
                    peak_mb=round(memory.mb, 1),
                    max_rel_error=float(error.max()) if len(values) == k else None,
                    n_values=len(values),
                    n_nonpositive=int(np.count_nonzero(values <= 0)),
                    status="ok" if len(values) == k else f"returned {len(values)} of {k} values",
                )
            except Exception as err:  # a peer that fails is a row saying so
                row.update(
                    hvp_count=None,
                    seconds=round(time.perf_counter() - start, 2),
                    peak_mb=None,
                    max_rel_error=None,
                    status=f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}",
                )
            rows.append(row)
            write_json(args.out, rows)
            print(json.dumps(row), flush=True)
    print_table(rows)


def print_table(rows):
    print("| tool | K | HVPs | data passes | wall s | peak MB | max rel. error | status |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        error = "–" if r.get("max_rel_error") is None else f"{r['max_rel_error']:.1e}"
        print(
            f"| {r['tool']} | {r['k']} | {r.get('hvp_count') or '–'} | {r.get('data_passes') or '–'} | "
            f"{r['seconds']} | {r.get('peak_mb') or '–'} | {error} | {r['status']} |"
        )


if __name__ == "__main__":
    main()
