"""Time `snakemake -n` on a 10,000-entry checkpoint list (the full-catalogue scale).

Writes a temporary work directory whose entry list (the select_entries checkpoint output) holds
N synthetic ids in the download cache, then times the dry run for several batch sizes.

    python benchmarks/workflow_dag.py [--entries 10000] [--batch-sizes 200 50 10]
"""

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[200, 50, 10])
    args = parser.parse_args()
    print("| entries | batch size | jobs planned | dry run s |")
    print("|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = yaml.safe_load((ROOT / "config.yaml").read_text())
            config["pdb"].update(source="rcsb", batch_size=batch_size)
            config["dnn"]["enabled"] = False
            (work / "config.yaml").write_text(yaml.safe_dump(config))
            entries = work / "results" / "pdb" / "entries.tsv"
            entries.parent.mkdir(parents=True)
            ids = [f"{1 + i // 36**3 % 9}{i % 36**3:03X}"[:4] for i in range(args.entries)]
            rows = "".join(f"{i}\tpdb_cache/{i}.cif.gz\n" for i in ids)
            entries.write_text("# synthetic list for the DAG benchmark\npdb_id\tpath\n" + rows)
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    "snakemake",
                    "-s",
                    str(ROOT / "Snakefile"),
                    "--directory",
                    str(work),
                    "--configfile",
                    str(work / "config.yaml"),
                    "-n",
                    "--cores",
                    "2",
                ],
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            total = next(line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("total"))
            print(f"| {args.entries} | {batch_size} | {total} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
