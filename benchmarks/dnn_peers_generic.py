"""Top-K Hessian eigenvalues on models the fast sequential products do not cover (issue 35): this
project's default against curvlinops, in one process on this machine, errors against a float64
reference.

    python benchmarks/dnn_peers_generic.py [--k 50 100] [--models cnn transformer resnet18] \
        [--out benchmarks/measured/dnn_peers_generic.json]

Models: the BatchNorm/residual/GELU CNN of `generic_chunks.py` (10,794 parameters, eval mode) on
1000 bundled MNIST images; the project's transformer (103,319 parameters) on modular addition
(p = 23, 265 sequences); torchvision's ResNet18 (10 classes, eval mode) on CIFAR-shaped inputs
(128 MNIST images padded to 32 x 32 and repeated over 3 channels), the Hessian in the parameter
block `layer3` (2,099,712 parameters: a top-100 basis of the whole 11.2M would not fit 24 GiB
beside its float64 reference); all seeded at initialisation. Tools: `top_spectrum` with its
defaults (solver 'auto', float32, tol 1e-3), `top_spectrum(solver='lanczos')`, curvlinops'
HessianLinearOperator with scipy eigsh(which='LA', tol=1e-3) (`pip install
curvlinops-for-pytorch==3.0.1`) and hessian-eigenthings' `lanczos` (3K steps, full
reorthogonalisation, which='LA'; `pip install hessian-eigenthings==1.0.0a5`). Peers are not
dependencies of the project: a missing peer is a row saying so.
The reference: ARPACK (implicitly restarted Lanczos, ncv 2K + 1) in float64 to tol 1e-10,
refused unless it converged with explicit residuals below 1e-5 (an unconverged block run at its
step limit was the first ResNet18 reference: it stood 1e-3 below the converged values near K;
an unrestarted float64 Lanczos basis for the top 100 of ResNet18's block would not fit 24 GiB),
kept beside --out
(.reference.json) and reused by later runs at the same or a smaller K. Every row: model, tool,
k, hvp_count, seconds, max_rel_error, reference, command; rows already in --out are kept (a run
resumes), except those of the tools named by --remeasure, which are measured again.
Also writes the rows as a markdown table beside --out (.md), with each tool's time over the
fastest peer within 1e-3 of the reference (`--table-only`: just that, from --out).
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg
import torch
from torch import nn

import hessian_powerlaw as hp
from hessian_powerlaw.io import write_json, write_text


def _chunks_module():
    spec = importlib.util.spec_from_file_location(
        "generic_chunks", Path(__file__).with_name("generic_chunks.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problem(name):
    """(model, (x, y)) of one benchmark model, seeded."""
    if name == "cnn":
        from hessian_powerlaw.network.datasets import load

        return _chunks_module().cnn(), load("mnist", None, 1000, 0, "global")["train"]
    if name == "resnet18":
        return resnet18_problem()
    from hessian_powerlaw.network.transformer import Transformer, modular_addition

    torch.manual_seed(0)
    return Transformer(24, 3, 23).eval(), modular_addition(23)["train"]


def resnet18_problem(images=128, block="layer3."):
    """ResNet18 at initialisation, trainable only in `block`, on CIFAR-shaped MNIST images."""
    import torchvision

    from hessian_powerlaw.network.datasets import load

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(block))
    x, y = load("mnist", None, images, 0, "global")["train"]
    x = torch.nn.functional.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1)
    return model, (x, y)


def ours(model, data, k, **options):
    result = hp.top_spectrum(model, nn.CrossEntropyLoss(), data, k=k, **options)
    return result.eigenvalues, result.hvp_count, result.choice


def converged_reference(model, data, k):
    """(eigenvalues (k,), a line saying how) of ARPACK in float64 (ncv 2K + 1, tol 1e-10),
    refused unless it converged with explicit residuals ||Hv - lambda v|| / lambda <= 1e-5."""
    from hessian_powerlaw.network.eigensolvers import top_eigenpairs
    from hessian_powerlaw.network.operators.generic import LossHessian

    op = LossHessian(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    result = top_eigenpairs(op, k, solver="arpack", tol=1e-10, progress=True)
    worst = float(result.residuals.max())
    if not result.converged:
        raise SystemExit(f"the float64 reference did not converge (worst explicit residual {worst:.1e})")
    about = (
        f"arpack float64 (ncv 2K + 1, tol 1e-10), explicit residuals <= {worst:.0e}, "
        f"{result.hvp_count} products"
    )
    print(about, flush=True)
    return result.eigenvalues, about


def reference_for(name, model, data, k, path):
    """The model's reference eigenvalues (at least k) from `path`, or computed and saved there."""
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if name in saved and len(saved[name]["eigenvalues"]) >= k:
        return np.array(saved[name]["eigenvalues"]), saved[name]["about"]
    values, about = converged_reference(model, data, k)
    saved[name] = {"eigenvalues": [float(v) for v in values], "about": about}
    write_json(path, saved)
    return values, about


def curvlinops(model, data, k):
    from curvlinops import HessianLinearOperator

    x, y = data
    batches = list(zip(x.split(1000), y.split(1000), strict=True))
    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, nn.CrossEntropyLoss(), params, batches).to_scipy()
    count = [0]

    def matvec(v):
        count[0] += 1
        return op @ v

    wrapped = scipy.sparse.linalg.LinearOperator(op.shape, matvec=matvec, dtype=op.dtype)
    values = scipy.sparse.linalg.eigsh(wrapped, k=k, which="LA", tol=1e-3, return_eigenvectors=False)
    return np.sort(values)[::-1], count[0], None


def eigenthings(model, data, k):
    import hessian_eigenthings as he

    operator = he.HessianOperator(model, [data], he.supervised_loss(nn.CrossEntropyLoss()))
    count = [0]
    product = operator.matvec

    def matvec(v):
        count[0] += 1
        return product(v)

    operator.matvec = matvec
    result = he.lanczos(operator, k=k, max_iter=3 * k, reorthogonalize=True, which="LA", seed=0)
    return np.sort(result.eigenvalues.detach().cpu().numpy())[::-1], count[0], None


TOOLS = {
    "hessian-powerlaw top_spectrum (defaults)": lambda m, d, k: ours(m, d, k),
    "hessian-powerlaw top_spectrum(solver='lanczos')": lambda m, d, k: ours(m, d, k, solver="lanczos"),
    "curvlinops HessianLinearOperator + eigsh(LA, tol 1e-3)": curvlinops,
    "hessian-eigenthings lanczos (3K steps, reorthogonalised)": eigenthings,
}


def markdown(rows):
    """The rows as a markdown table; 'vs peer': the fastest correct peer's seconds over the row's."""
    lines = ["| model | K | tool | products | seconds | max rel. error | vs fastest correct peer |"]
    lines.append("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['k']} | {r['tool']} | | | {r['error']} | |")
            continue
        peers = [
            p["seconds"]
            for p in rows
            if p["model"] == r["model"]
            and p["k"] == r["k"]
            and "seconds" in p
            and not p["tool"].startswith("hessian-powerlaw")
            and p["max_rel_error"] <= 1e-3
        ]
        ratio = (
            f"{min(peers) / r['seconds']:.2f}x" if peers and r["tool"].startswith("hessian-powerlaw") else ""
        )
        lines.append(
            f"| {r['model']} | {r['k']} | {r['tool']} | {r['hvp_count']} | {r['seconds']:.1f} | "
            f"{r['max_rel_error']:.1e} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


COMMAND = " ".join(["python benchmarks/dnn_peers_generic.py", *sys.argv[1:]])


def commands(rows):
    """The distinct commands that made the rows, in order (each row keeps its own)."""
    return list(dict.fromkeys(r["command"] for r in rows))


def ordered(rows):
    """The rows by model, K and tool (a re-measured row goes back to its place)."""
    models = ("cnn", "transformer", "resnet18")
    return sorted(rows, key=lambda r: (models.index(r["model"]), r["k"], list(TOOLS).index(r["tool"])))


def footer(rows):
    return "\n" + "".join(f"`{c}`\n" for c in commands(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[50, 100])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["cnn", "transformer", "resnet18"],
        choices=("cnn", "transformer", "resnet18"),
    )
    parser.add_argument("--out", default="benchmarks/measured/dnn_peers_generic.json")
    parser.add_argument("--table-only", action="store_true", help="only write the .md from --out")
    parser.add_argument(
        "--remeasure",
        nargs="+",
        default=[],
        choices=("ours", "peers"),
        help="measure these tools' rows again",
    )
    args = parser.parse_args()
    if args.table_only:
        saved = json.loads(Path(args.out).read_text())
        return write_text(Path(args.out).with_suffix(".md"), markdown(saved["rows"]) + footer(saved["rows"]))
    torch.set_num_threads(2)
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    ours = lambda tool: tool.startswith("hessian-powerlaw")  # noqa: E731
    again = {t for t in TOOLS if ("ours" if ours(t) else "peers") in args.remeasure}
    rows = [
        r
        for r in saved["rows"]
        if not (r["tool"] in again and r["model"] in args.models and r["k"] in args.k)
    ]
    done = {(r["model"], r["tool"], r["k"]) for r in rows}
    for name in args.models:
        todo = [(k, tool) for k in args.k for tool in TOOLS if (name, tool, k) not in done]
        if not todo:
            continue
        model, data = problem(name)
        # one float64 reference at the largest K (its top values are the smaller K's reference)
        reference, about = reference_for(name, model, data, max(args.k), out.with_suffix(".reference.json"))
        for k, tool in todo:
            run = TOOLS[tool]
            start = time.perf_counter()
            try:
                values, hvps, choice = run(model, data, k)
            except ImportError as err:
                rows.append({"model": name, "tool": tool, "k": k, "error": f"not installed ({err})"})
                continue
            seconds = time.perf_counter() - start
            error = float(np.max(np.abs(values[:k] - reference[:k]) / np.abs(reference[:k])))
            row = {
                "model": name,
                "tool": tool,
                "k": k,
                "hvp_count": int(hvps),
                "seconds": round(seconds, 2),
            }
            rows.append(
                {
                    **row,
                    "max_rel_error": error,
                    "command": COMMAND,
                    "reference": about,
                    **({"choice": choice} if choice else {}),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            rows = ordered(rows)
            write_json(out, {"command": "; then ".join(commands(rows)), "rows": rows})
            write_text(out.with_suffix(".md"), markdown(rows) + footer(rows))


if __name__ == "__main__":
    main()
