"""How close the sequential block Hessian product runs to the processor: floating-point
operations per image and vector (torch's FlopCounterMode on one block product), the forward
pass's for scale, and for each layout (images per chunk x vectors per group, one group per block
product): the seconds of every chunk's primal pass (masks, pool choices, selected patches; kept
between products up to --cache-gib, recomputed beyond it), the GB kept, and the measured seconds
per vector over the given images, hence the sustained GFLOP/s.

    python benchmarks/product_flops.py --model results/dnn/models/lenet_mnist_sgd_b128_n0_w100_d2_s0_e50.pt \
        --n-eval 6000 --layouts 128x16 64x16 256x16 128x8 128x32
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from hessian_powerlaw.network.model_files import load_model
from hessian_powerlaw.network.operators import make_operator
from hessian_powerlaw.network.operators.sequential import SequentialHessian
from hessian_powerlaw.network.spectrum import eval_data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-eval", type=int, default=6000, help="Hessian over the first N training images")
    parser.add_argument(
        "--layouts", nargs="+", default=["128x16"], help="CHUNKxGROUP: images per chunk x vectors per group"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed block products (best kept)")
    parser.add_argument(
        "--cache-gib", type=float, help="primal cache budget in GiB (default: the operator's own)"
    )
    args = parser.parse_args()
    model, meta = load_model(args.model)
    x, y = eval_data(meta, args.n_eval)
    op = make_operator(model, x, y)
    print(f"{type(op).__name__}, {op.n} parameters, {len(x)} images, {torch.get_num_threads()} threads")
    vectors = torch.randn(op.n, op.group_size, generator=torch.Generator().manual_seed(0))
    op.matmat(vectors)  # the primal pass (kept): not part of a product's cost
    with FlopCounterMode(display=False) as counter:
        op.matmat(vectors)
    per_product = counter.get_total_flops() / len(x) / op.group_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x[: op.chunk_size])
    forward = counter.get_total_flops() / min(len(x), op.chunk_size)
    passes = per_product / forward
    print(f"product: {per_product / 1e6:.3f} MFLOP per image and vector ({passes:.2f} forward passes)")
    print(f"forward pass: {forward / 1e6:.3f} MFLOP per image")
    cache = None if args.cache_gib is None else int(args.cache_gib * 2**30)
    print("| images per chunk | vectors per group | primal pass s | cached GB | s per vector | GFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for layout in args.layouts:
        chunk, group = map(int, layout.split("x"))
        op = SequentialHessian(model, x, y, chunk_size=chunk, group_size=group, cache_bytes=cache)
        vectors = torch.randn(op.n, group, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        for first in range(0, len(x), chunk):  # every chunk's primal pass, kept while the budget allows
            op._primal(first)
        primal = time.perf_counter() - start
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            op.matmat(vectors)
            times.append(time.perf_counter() - start)
        per_vector = min(times) / group
        rate = per_product * len(x) / per_vector / 1e9
        kept = op._cached_bytes / 1e9
        row = f"| {chunk} | {group} | {primal:.1f} | {kept:.1f} | {per_vector:.4f} | {rate:.0f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
