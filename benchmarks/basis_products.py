"""The products that read a Lanczos basis on this CPU: torch (MKL) against NumPy (OpenBLAS) on one
and on two threads, and what each leaves for the Hessian product that follows.

    python benchmarks/basis_products.py [--n 2099712] [--m 150] > benchmarks/measured/basis_products.txt

For each block width b: seconds of the coefficients (basis @ w, basis (m, n) float32, w (n, b))
and the update (w - basis.T @ c) together, the best of 5 (GB/s: the two reads of the basis over
that time); then the seconds of one cached ResNet18-like
product (a convolution's forward and backward in torch, 2 threads) timed right after each
variant's pair of basis products, the median of 5 (OpenBLAS's idle threads spin after a call and
compete with torch's). `hessian_powerlaw.network.eigensolvers.basis_products` chooses from this.
"""

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from threadpoolctl import ThreadpoolController


def best(work, repeat=5):
    work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def variants(basis, controller):
    array = basis.numpy()

    def torch_pair(w, c):
        return basis @ w, torch.addmm(w, basis.T, c, alpha=-1)

    def numpy_pair(w, c):
        return array @ w.numpy(), w.numpy() - array.T @ c.numpy()

    def numpy_one(w, c):
        with controller.select(internal_api="openblas").limit(limits=1):
            return numpy_pair(w, c)

    return {
        "torch (MKL, 2 threads)": torch_pair,
        "numpy (OpenBLAS, 1 thread)": numpy_one,
        "numpy (OpenBLAS, 2 threads)": numpy_pair,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_099_712)
    parser.add_argument("--m", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(2)
    controller = ThreadpoolController()
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(args.m, args.n, generator=gen)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(32, 64, 16, 16, generator=gen)

    def product():
        conv.zero_grad()
        conv(x).square().sum().backward()

    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} torch threads; "
        f"basis {args.m} x {args.n} float32 ({args.m * args.n * 4 / 1e9:.2f} GB per read)"
    )
    print(f"a torch product alone: {statistics.median(best(product, 1) for _ in range(5)):.4f} s")
    print("| b | basis products by | coefficients + update, s | GB/s | torch product after, s |")
    print("|---:|---|---:|---:|---:|")
    for b in (1, 2, 4, 8, 12):
        w = torch.randn(args.n, b, generator=gen)
        c = torch.randn(args.m, b, generator=gen)
        for name, pair in variants(basis, controller).items():
            seconds = best(lambda pair=pair, w=w, c=c: pair(w, c))
            after = []
            for _ in range(5):
                pair(w, c)
                start = time.perf_counter()
                product()
                after.append(time.perf_counter() - start)
            rate = 2 * args.m * args.n * 4 / seconds / 1e9
            print(f"| {b} | {name} | {seconds:.4f} | {rate:.1f} | {statistics.median(after):.4f} |")


if __name__ == "__main__":
    main()
