"""Top-K loss-Hessian eigenvalues of one trained LeNet by this project and by the tools users
know: products, data passes, wall time, peak memory and the largest relative error against a
converged reference (block Lanczos, float64, tol 1e-8).

Tools (each with its own defaults first, then settings that aim at the top-K to 1e-3):
- hessian-powerlaw block (tol 1e-3, sequential products) and arpack (scipy eigsh on our products);
- curvlinops-for-pytorch: HessianLinearOperator + scipy eigsh with its defaults (which='LM',
  tol=0: machine precision), then which='LA', tol=1e-3;
- hessian-eigenthings 1.0.0a5: lanczos() with its defaults (which='LM', 2K steps), then
  which='LA' with 3K reorthogonalised steps;
- PyHessian 0.1: deflated power iteration (tol 1e-3, at most 100 iterations per eigenvalue).

Each (tool, K) runs in a fresh process with 2 threads, so `peak_mb` is that process's peak
resident memory (torch, model and images included: `base_mb` before the tool starts) and no row
inherits another's memory. With `--device cuda` every tool runs on the GPU (model and images
there) and `peak_gpu_mb` is the process's peak CUDA allocation. The
reference is computed once per (model, images, K) and kept in `<out>.reference.json`; rows
already in `--out` are kept, so an interrupted run resumes. `--time-limit` stops a peer after
that many seconds (a row saying so, with the products it had spent).

The peers are not dependencies of the project: `pip install pyhessian==0.1
hessian-eigenthings==1.0.0a5 curvlinops-for-pytorch==3.0.1`. A peer that is missing or fails
is a row saying so.

    python benchmarks/dnn_peers.py --model results/dnn/models/lenet_mnist_sgd_b128_n0_w100_d2_s0_e50.pt \
        --n-eval 6000 --k 100 300 --out benchmarks/measured/dnn_peers.json [--device cuda]
"""

import argparse
import hashlib
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse.linalg
import torch

from hessian_powerlaw.io import write_json
from hessian_powerlaw.network.eigensolvers import top_eigenpairs
from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.operators import make_operator
from hessian_powerlaw.network.spectrum import eval_data

ACCURACY = 1e-3  # the largest relative eigenvalue error a row may have and still count as correct


class TimeLimit(Exception):
    """A peer ran past --time-limit."""


class Counter:
    """Counts Hessian-vector products and passes over the data of a peer's operator; stops the
    peer (TimeLimit) at its first product after the deadline."""

    deadline = None  # time.perf_counter() value, set per process by `run_tool`
    last = None  # the counter of the running peer, read when it stops

    def __init__(self):
        self.hvps = self.passes = 0
        Counter.last = self

    def add(self, vectors=1):
        if Counter.deadline is not None and time.perf_counter() > Counter.deadline:
            raise TimeLimit
        self.hvps += vectors
        self.passes += 1


def ours(model, x, y, k, solver):
    op = make_operator(model, x, y)
    result = top_eigenpairs(op, k, solver=solver, tol=1e-3, progress=False)
    return result.eigenvalues, op.hvp_count, op.data_passes


def curvlinops_eigsh(model, x, y, k, tuned):
    from curvlinops import HessianLinearOperator

    data = list(zip(x.split(1000), y.split(1000), strict=True))
    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, data).to_scipy()
    count = Counter()

    def matvec(v):
        count.add()
        return op @ v

    wrapped = scipy.sparse.linalg.LinearOperator(op.shape, matvec=matvec, dtype=op.dtype)
    options = {"which": "LA", "tol": 1e-3} if tuned else {}  # scipy's defaults: which="LM", tol=0
    values = scipy.sparse.linalg.eigsh(wrapped, k=k, return_eigenvectors=False, **options)
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

    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=x.is_cuda)
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
    "curvlinops HessianLinearOperator + eigsh (defaults)": lambda m, x, y, k: curvlinops_eigsh(
        m, x, y, k, False
    ),
    "curvlinops HessianLinearOperator + eigsh(LA)": lambda m, x, y, k: curvlinops_eigsh(m, x, y, k, True),
    "hessian-eigenthings lanczos (defaults)": lambda m, x, y, k: eigenthings(m, x, y, k, False),
    "hessian-eigenthings lanczos (LA, 3K steps, reorthogonalised)": lambda m, x, y, k: eigenthings(
        m, x, y, k, True
    ),
    "pyhessian deflated power iteration": pyhessian_power,
}


def load(model_path, n_eval, device="cpu"):
    """The model and its first n_eval training images on `device`, in this process with 2 threads."""
    torch.set_num_threads(2)
    model, meta = load_model(model_path, device)
    x, y = eval_data(meta, n_eval)
    return model, x.to(device), y.to(device)


def run_tool(tool, model_path, n_eval, k, time_limit, device="cpu"):
    """One tool in this (fresh) process: a row without the error column, and the values."""
    model, x, y = load(model_path, n_eval, device)
    row = {"tool": tool, "k": k, "n_eval": len(x), "n_params": sum(p.numel() for p in model.parameters())}
    row["device"] = torch.cuda.get_device_name(device) if x.is_cuda else "cpu"
    row["base_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)  # torch, model and images loaded
    start = time.perf_counter()
    Counter.deadline = None if time_limit is None else start + time_limit
    values = None
    try:
        values, hvps, passes = TOOLS[tool](model, x, y, k)
        values = np.asarray(values, dtype=float)[:k]
        row.update(
            hvp_count=int(hvps),
            data_passes=int(passes),
            n_values=len(values),
            n_nonpositive=int(np.count_nonzero(values <= 0)),
            status="ok" if len(values) == k else f"returned {len(values)} of {k} values",
        )
    except TimeLimit:
        counted = Counter.last
        row.update(
            hvp_count=counted.hvps,
            data_passes=counted.passes,
            status=f"stopped at the {time_limit:g} s limit after {counted.hvps} products",
        )
    except Exception as err:  # a peer that fails is a row saying so
        row.update(hvp_count=None, status=f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}")
    if x.is_cuda:
        torch.cuda.synchronize(device)
    row["seconds"] = round(time.perf_counter() - start, 2)
    row["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    if x.is_cuda:
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return row, None if values is None else values.tolist()


def in_fresh_process(function, *args):
    """function(*args) in a spawned process (its own peak memory, nothing inherited)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def reference_values(model_path, n_eval, k, cache, device="cpu"):
    """The converged reference, from `cache` (a JSON file) or computed once (on `device`) and
    added to it."""
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
    key = f"{digest} n_eval={n_eval} k={k}"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in known:
        known[key] = in_fresh_process(reference_run, model_path, n_eval, k, device)
        write_json(cache, known)
    return np.asarray(known[key])


def reference_run(model_path, n_eval, k, device="cpu"):
    """The top-k by block Lanczos in float64 to tol 1e-8 (a list, for the JSON cache)."""
    op = make_operator(*load(model_path, n_eval, device), dtype=torch.float64)
    result = top_eigenpairs(op, k, solver="block", tol=1e-8, progress=False)
    if not result.converged:
        raise RuntimeError("the reference did not converge")
    return result.eigenvalues.tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-eval", type=int, default=1000, help="Hessian over the first N training images")
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--skip", nargs="*", default=[], help="tools to leave out (substrings)")
    parser.add_argument("--time-limit", type=float, help="stop a peer after this many seconds")
    parser.add_argument("--device", default="cpu", help="where every tool runs: cpu (default) or cuda")
    parser.add_argument("--out", required=True, help="JSON: one object per (tool, K)")
    args = parser.parse_args()
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    done = {(r["tool"], r["k"]) for r in rows}
    for k in args.k:
        todo = [t for t in TOOLS if (t, k) not in done and not any(s in t for s in args.skip)]
        if not todo:
            continue
        ref = reference_values(args.model, args.n_eval, k, out.with_suffix(".reference.json"), args.device)
        for tool in todo:
            limit = None if tool.startswith("hessian-powerlaw") else args.time_limit
            row, values = in_fresh_process(run_tool, tool, args.model, args.n_eval, k, limit, args.device)
            row["max_rel_error"] = None
            if values is not None and len(values) == k:
                row["max_rel_error"] = float(np.max(np.abs(np.asarray(values) - ref[:k]) / np.abs(ref[:k])))
            rows.append(judged(row))
            write_json(out, in_order(rows))
            print(json.dumps(row), flush=True)
    rows = in_order([judged(row) for row in rows])
    write_json(out, rows)
    print_table(rows)


def judged(row):
    """The row, its status saying so when the tool returned K values that miss the reference by
    more than ACCURACY."""
    error = row.get("max_rel_error")
    if row["status"] == "ok" and error is not None and error > ACCURACY:
        row["status"] = (
            f"wrong values: max rel. error {error:.2g}, {row['n_nonpositive']} of {row['k']} values <= 0"
        )
    return row


def in_order(rows):
    """Rows by K, then in the order of TOOLS."""
    order = {tool: i for i, tool in enumerate(TOOLS)}
    return sorted(rows, key=lambda r: (r["k"], order.get(r["tool"], len(order))))


def print_table(rows):
    gpu = any("peak_gpu_mb" in r for r in rows)
    print("| tool | K | HVPs | data passes | wall s | peak MB |" + (" peak GPU MB |" if gpu else ""), end="")
    print(" max rel. error | status |")
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "") + "---:|---|")
    for r in rows:
        error = "–" if r.get("max_rel_error") is None else f"{r['max_rel_error']:.1e}"
        print(
            f"| {r['tool']} | {r['k']} | {r.get('hvp_count') or '–'} | {r.get('data_passes') or '–'} | "
            f"{r['seconds']} | {r.get('peak_mb') or '–'} | "
            + (f"{r.get('peak_gpu_mb') or '–'} | " if gpu else "")
            + f"{error} | {r['status']} |"
        )


if __name__ == "__main__":
    main()
