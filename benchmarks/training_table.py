"""A Markdown table of finished trainings, from their metrics files (``train --metrics``).

One row per file: the run, its rate, epochs, and the final training loss, training accuracy
and test accuracy the model file was saved with; the command that made each is in its file::

    python benchmarks/training_table.py benchmarks/measured/reproduction_study/diagnostics/trainings \\
        --out benchmarks/measured/reproduction_study/diagnostics/trainings/trainings.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hessian_powerlaw.io import atomic_path


def markdown(folder: Path) -> str:
    """The table of every finished training's metrics file (``*.json``) in ``folder``, by name."""
    lines = [
        "| run | lr | epochs | training loss | training accuracy | test accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path in sorted(folder.glob("*.json")):
        final = json.loads(path.read_text()).get("final")
        if final is None:  # a training still under way has no final metrics
            continue
        cells = [path.stem, f"{final['lr']:g}", final["epochs"], f"{final['train_loss']:.3f}"]
        cells += [f"{final['train_acc']:.3f}", f"{final['test_acc']:.3f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of metrics JSON files")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: not a folder")
    with atomic_path(args.out) as tmp:
        tmp.write_text(markdown(args.folder))
    print(args.out.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
