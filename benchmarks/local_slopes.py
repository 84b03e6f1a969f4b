"""Local log-log slopes of committed spectra: is a spectrum one straight line (a power law) or
does it bend?

For each record's spectrum (``EXPERIMENT_sSEED.npy`` beside its ``.json``: row 0 the top-K
eigenvalues, largest first) this fits log(lambda_k) = c - s log(k) on three stretches of the
fitted range (the record's K, or the eigenvalues above zero where it has none): the top tenth,
the next four tenths, the bottom half, beside the record's rate, KS distance and verdict. A
power law has one s on all three; a spectrum cut off by a rank limit or an exponential tail
steepens downwards::

    python benchmarks/local_slopes.py benchmarks/measured/reproduction_study/fig20-b10_s0.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def local_slopes(values: np.ndarray) -> tuple[float, float, float]:
    """(s_top, s_middle, s_tail): minus the least-squares slope of log lambda against log rank on
    ranks [0, n/10), [n/10, n/2) and [n/2, n) of ``values`` (shape (n,), positive, descending;
    the top stretch has at least 10 ranks)."""
    n = len(values)
    if n < 20 or np.any(values <= 0):
        raise ValueError(f"need at least 20 positive eigenvalues, got {n} (min {values.min():.3g})")
    rank = np.log(np.arange(1, n + 1))
    logs = np.log(values)
    bounds = [(0, max(10, n // 10)), (n // 10, n // 2), (n // 2, n)]
    return tuple(float(-np.polyfit(rank[a:b], logs[a:b], 1)[0]) for a, b in bounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="record JSON files with their .npy beside")
    args = parser.parse_args(argv)
    print("| run | lr | operator | n | s top tenth | s next four tenths | s bottom half | d_ks | power law |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for path in args.records:
        record = json.loads(path.read_text())
        values = np.load(path.with_suffix(".npy"), allow_pickle=False)[0]
        values = values[: record["k"]] if record.get("k") else values[values > record["noise_floor"]]
        slopes = local_slopes(values)
        cells = [record["run"], f"{record['lr']:g}", record["operator"], len(values)]
        cells += [f"{s:.2f}" for s in slopes]
        fitted = record.get("d_ks") is not None  # a record without a fit (rank below K) has none
        cells += [f"{record['d_ks']:.4f}", "yes" if record["power_law"] else "no"] if fitted else ["", ""]
        print("| " + " | ".join(map(str, cells)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
