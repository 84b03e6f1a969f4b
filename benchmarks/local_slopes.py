"""Local log-log slopes of committed spectra: is a spectrum one straight line (a power law) or
does it bend?

For each record's spectrum (``EXPERIMENT_sSEED.npy`` beside its ``.json``: row 0 the top-K
eigenvalues, largest first) this fits log(lambda_k) = c - s log(k) on three stretches of the
fitted range (the record's K, or the eigenvalues above zero where it has none): the top tenth,
the next four tenths, the bottom half, beside the record's rate, KS distance and verdict. A
power law has one s on all three; a spectrum cut off by a rank limit or an exponential tail
steepens downwards::

    python benchmarks/local_slopes.py benchmarks/measured/reproduction_study/fig20-b10_s0.json ... \\
        --out slopes.md

Without ``--out`` the table goes to standard output; a file that is not a record, or a record
without its spectrum, stops the script with one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hessian_powerlaw.io import InputError, read_json, write_text


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


def row(path: Path) -> str:
    """The table row of one record (its JSON at ``path``, its spectrum ``.npy`` beside it).

    Raises
    ------
    InputError
        Naming the file if the record, its spectrum or one of the keys used is missing or unreadable.
    """
    record = read_json(path)
    spectrum = path.with_suffix(".npy")
    try:
        cells = [record["run"], f"{record['lr']:g}", record["operator"]]
        fitted = record.get("d_ks") is not None  # a record without a fit (rank below K) has none
        verdict = [f"{record['d_ks']:.4f}", "yes" if record["power_law"] else "no"] if fitted else ["", ""]
        k = int(record["k"]) if record.get("k") else None
        floor = None if k else float(record["noise_floor"])
    except KeyError as err:
        raise InputError(f"{path}: the record has no {err} key") from None
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: a value of the record is not a number ({err})") from None
    try:
        values = np.load(spectrum, allow_pickle=False)[0]
        values = values[:k] if k else values[values > floor]
        slopes = local_slopes(values)
    except (OSError, ValueError, IndexError, TypeError) as err:
        raise InputError(f"{spectrum}: {err}") from None
    cells += [len(values)] + [f"{s:.2f}" for s in slopes] + verdict
    return "| " + " | ".join(map(str, cells)) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="record JSON files with their .npy beside")
    parser.add_argument("--out", type=Path, help="Markdown file to write (default: standard output)")
    args = parser.parse_args(argv)
    lines = [
        "| run | lr | operator | n | s top tenth | s next four tenths | s bottom half | d_ks | power law |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    try:
        lines += [row(path) for path in args.records]
        table = "\n".join(lines) + "\n"
        if args.out:
            write_text(args.out, table)
    except InputError as err:
        parser.exit(2, f"local_slopes.py: error: {err}\n")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
