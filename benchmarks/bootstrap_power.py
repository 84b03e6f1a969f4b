"""How much data the bootstrap goodness-of-fit test needs to reject a lognormal tail.

For each K, `--seeds` lognormal samples (sigma `--sigma`) of size 10 K are fitted over their
top K (the fixed-window fit) and tested with `--samples` bootstrap draws; printed: the median
p_bootstrap and the fraction rejected at p < 0.1, beside Pareto samples of the same shape as a
control (which should be rejected about 10 % of the time).

    python benchmarks/bootstrap_power.py [--sigma 2] [--seeds 20] [--samples 100]
"""

import argparse
import json
import time

import numpy as np

from hessian_powerlaw.fit import power_law_fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--ks", type=int, nargs="+", default=[50, 100, 300, 1000, 3000])
    parser.add_argument("--out", help="JSON with the rows")
    args = parser.parse_args()
    rows = []
    for k in args.ks:
        for law in ("lognormal", "pareto"):
            start, p = time.perf_counter(), []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                if law == "lognormal":
                    x = rng.lognormal(0.0, args.sigma, size=10 * k)
                else:
                    x = np.concatenate([(1 - rng.random(k)) ** -1.0, rng.random(9 * k)])
                p.append(power_law_fit(x, k, compare=False, bootstrap=args.samples, seed=seed)["p_bootstrap"])
            row = {
                "law": law,
                "k": k,
                "m": 10 * k,
                "median_p": float(np.median(p)),
                "rejected_at_0.1": float(np.mean(np.asarray(p) < 0.1)),
                "seeds": args.seeds,
                "samples": args.samples,
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(
                f"{law:9s} K={k:5d} (M={10 * k}): median p {row['median_p']:.3f}, "
                f"rejected at p<0.1 in {row['rejected_at_0.1']:.0%} of {args.seeds} ({row['seconds']} s)",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"sigma": args.sigma, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
