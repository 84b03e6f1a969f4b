"""A Markdown table of finished trainings, from their metrics files (``train --metrics``) or
the spectrum records made from their networks (``dnn-spectrum --out``).

One row per file: the run, its rate, epochs, and the final training loss, training accuracy
and test accuracy the model file was saved with; the command that made each is in its file.
A folder stands for its ``*.json`` files::

    D=benchmarks/measured/reproduction_study/diagnostics
    python benchmarks/training_table.py $D/trainings $D/t6-random-labels_s0.json \\
        --out $D/trainings/trainings.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from hessian_powerlaw.io import InputError, read_json, write_text


def final_metrics(data: dict) -> dict | None:
    """A finished training's final metrics: a metrics file's ``final``, a spectrum record's own
    keys; None for a metrics file whose training is still under way (its ``history`` only)."""
    if "final" in data:
        return data["final"]
    return data if "train_loss" in data and "history" not in data else None


def natural_key(path: Path) -> list:
    """Sort key of a file by name, numbers by value (``t3-b640`` before ``t3-b1024``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def markdown(paths: list[Path]) -> str:
    """The table of the finished trainings among ``paths`` (JSON files), by name, numbers by value."""
    lines = [
        "| run | lr | epochs | training loss | training accuracy | test accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path in sorted(paths, key=natural_key):
        final = final_metrics(read_json(path))
        if final is None:
            continue
        try:
            cells = [path.stem, f"{final['lr']:g}", final["epochs"], f"{final['train_loss']:.3f}"]
            cells += [f"{final['train_acc']:.3f}", f"{final['test_acc']:.3f}"]
        except KeyError as err:
            raise InputError(f"{path}: the training's final metrics have no {err} key") from None
        except (TypeError, ValueError) as err:
            raise InputError(f"{path}: a final metric is not a number ({err})") from None
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", type=Path, nargs="+", help="metrics or spectrum-record JSON files, or folders of them"
    )
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    files = []
    for path in args.paths:
        if path.is_dir():
            files += path.glob("*.json")
        elif path.is_file():
            files.append(path)
        else:
            parser.error(f"{path}: no such file or folder")
    try:
        table = markdown(files)
        write_text(args.out, table)
    except InputError as err:
        parser.exit(2, f"training_table.py: error: {err}\n")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
