"""The noise study's valley experiments at CPU size (issue 33): projected paths (Figs. 1, 3) over
several initialisations, and the negative-eigenvalue sum against the loss (Fig. 2a) from a
minimum reached by Gauss-Newton steps, over the paper's grid of learning rates and batch sizes,
and by controlled displacements of that minimum.

    python benchmarks/noise_valleys.py [--inits 10] [--work results-noise-valleys] \
        [--out benchmarks/measured/noise_valleys]

Every step is one `hessian-powerlaw` command whose record (with its `command`) lands in --out;
a step whose record exists is skipped, so a killed run resumes. Writes projected_path.tsv,
trace_fit.tsv, negative_vs_loss.tsv, negative_points.tsv, noise_valleys.md and three figures.
"""

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from hessian_powerlaw.io import read_tsv, write_text, write_tsv
from hessian_powerlaw.report import noise_valleys as report

LRS = (0.001, 0.003, 0.01, 0.03, 0.1)
BATCHES = (5, 25, 250)
SCALES = (0.0, 0.003, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)


def run(command, record):
    """Run one command unless its record exists."""
    if Path(record).is_file():
        return
    print("+", command, file=sys.stderr, flush=True)
    argv = shlex.split(command)
    subprocess.run([sys.executable, "-m", "hessian_powerlaw", *argv[1:]], check=True)


def paths(args, out, work):
    rows = []
    for seed in range(args.inits):
        record = out / "paths" / f"init{seed}.json"
        tsv = out / "paths" / f"init{seed}.tsv"
        run(
            f"hessian-powerlaw noise-project --init-seed {seed} --lr 0.1 --momentum 0.9 --batch-size 25 "
            f"--steps {args.steps} --every {args.every} --after {args.after} --min-gap {args.min_gap} "
            f"--cache {work}/cache{seed}.npz "
            f"--out {tsv} --record {record}",
            record,
        )
        rows += read_tsv(tsv)
    for row in rows:
        for key in ("iteration", "steps"):
            row[key] = int(row[key])
        for key in ("loss", "val_loss", "trace", "trace_se"):
            row[key] = float(row[key])
    return rows


def fig2a(out, work):
    minimum = f"{work}/minimum.pt"
    record = out / "fig2a" / "minimum.json"
    if not Path(minimum).is_file():
        Path(record).unlink(missing_ok=True)
    run(
        f"hessian-powerlaw noise-minimum --init-seed 0 --refine-steps 200 --record {record} --out {minimum}",
        record,
    )
    records = []
    for batch in BATCHES:
        for lr in LRS:
            path = out / "fig2a" / f"b{batch}_lr{lr:g}.json"
            run(
                f"hessian-powerlaw noise-equilibrium {minimum} --batch-size {batch} --lr {lr:g} "
                f"--steps 20000 --every 200 --quiet --out {path}",
                path,
            )
            records.append(json.loads(path.read_text()))
    path = out / "fig2a" / "displacement.json"
    scales = " ".join(f"{s:g}" for s in SCALES)
    run(f"hessian-powerlaw noise-displace {minimum} --scales {scales} --seed 0 --out {path}", path)
    return records + [json.loads(path.read_text())]


def markdown(summary, fits, records):
    def table(rows, columns):
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for r in rows:
            cells = [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    minimum = next(r for r in records if r.get("experiment") == "displacement")
    return (
        "\n\n".join(
            [
                "Trace along the projected paths (slope per SGD iteration):",
                table(summary, report.TRACE_COLUMNS),
                f"Negative-eigenvalue sum against the excess loss (minimum's excess loss "
                f"{minimum['minimum_excess_loss']:.3g} after Gauss-Newton):",
                table(fits, report.NEGATIVE_COLUMNS),
            ]
        )
        + "\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inits", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--after", type=int, default=1000)
    parser.add_argument("--min-gap", type=int, default=50)
    parser.add_argument("--work", default="results-noise-valleys")
    parser.add_argument("--out", default="benchmarks/measured/noise_valleys")
    parser.add_argument("--only", choices=("paths", "fig2a"))
    args = parser.parse_args()
    out, work = Path(args.out), Path(args.work)
    for folder in (out / "paths", out / "fig2a", work):
        folder.mkdir(parents=True, exist_ok=True)
    records = fig2a(out, work) if args.only != "paths" else []
    rows = paths(args, out, work) if args.only != "fig2a" else []
    if rows:
        write_tsv(out / "projected_path.tsv", rows, report.PATH_COLUMNS)
        summary = report.path_summary(rows)
        write_tsv(out / "trace_fit.tsv", summary, report.TRACE_COLUMNS)
    if records:
        fits = report.negative_fits(records)
        write_tsv(out / "negative_vs_loss.tsv", fits, report.NEGATIVE_COLUMNS)
        points = [
            dict(zip(("experiment", "excess_loss", "negative_sum"), p, strict=True))
            for p in report.negative_points(records)
        ]
        write_tsv(out / "negative_points.tsv", points, ("experiment", "excess_loss", "negative_sum"))
    if rows and records:
        write_text(out / "noise_valleys.md", markdown(summary, fits, records))
        report.write_figures(rows, records, out)


if __name__ == "__main__":
    main()
