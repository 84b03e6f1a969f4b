"""The CPU threads each reproduction record's stages ran on, read from Snakemake's run logs.

Records made before they carried ``train_threads`` and ``threads`` do not say how many threads
trained the network and computed the spectrum; on a CPU both change the last digits. Snakemake
logs every job it runs (``.snakemake/log/*.snakemake.log`` in the working directory) with its
rule, output and, above one thread, a ``threads: N`` line, and says which jobs finished. This
writes {run: {"train": threads, "spectrum": threads}} for ``rerun_records.py --made-with``::

    python benchmarks/snakemake_threads.py /path/to/workdir/.snakemake/log --out made_with.json

A run made more than once keeps its last finished job's threads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

STAGES = {"repro_train": "train", "repro_spectrum": "spectrum"}
RUN = re.compile(r"/(?:records|models)/([A-Za-z0-9-]+_s\d+)\.(?:json|pt)")


def jobs(log: str) -> list[tuple[str, str, int]]:
    """(stage, run, threads) of every train or spectrum job the log says finished, in order."""
    finished = set(re.findall(r"Finished job(?:id:)? (\d+)", log))
    blocks: list[dict] = []
    for line in log.splitlines():
        line = line.strip()
        if match := re.match(r"(?:local)?rule (\w+):", line):
            blocks.append({"rule": match[1], "threads": 1})
        elif not blocks:
            continue
        elif line.startswith("output:") and (match := RUN.search(line)):
            blocks[-1]["run"] = match[1]
        elif match := re.match(r"threads: (\d+)", line):
            blocks[-1]["threads"] = int(match[1])
        elif match := re.match(r"jobid: (\d+)", line):
            blocks[-1]["jobid"] = match[1]
    return [
        (STAGES[block["rule"]], block["run"], block["threads"])
        for block in blocks
        if block["rule"] in STAGES and "run" in block and block.get("jobid") in finished
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", type=Path, help="a .snakemake/log directory")
    parser.add_argument("--out", type=Path, required=True, help="JSON {run: {train, spectrum}}")
    args = parser.parse_args(argv)
    made: dict[str, dict[str, int]] = {}
    logs = sorted(args.logs.glob("*.snakemake.log"))
    if not logs:
        sys.exit(f"{args.logs}: no *.snakemake.log files")
    for path in logs:  # names are start times: later runs overwrite earlier ones
        for stage, run, threads in jobs(path.read_text(errors="replace")):
            made.setdefault(run, {})[stage] = threads
    args.out.write_text(json.dumps(dict(sorted(made.items())), indent=1) + "\n")
    print(f"{len(made)} runs from {len(logs)} logs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
