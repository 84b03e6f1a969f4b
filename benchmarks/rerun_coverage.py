"""Which committed reproduction records have been re-run from their ``command``, and with what result.

Reads every record under a results folder (a JSON object with ``run``, ``command`` and
``power_law``, in any subfolder) and every ``reruns*.json`` that ``rerun_records.py`` wrote in
it, and writes a Markdown table: for each machine the records were made on (their
``train_machine`` / ``machine``, or "unnamed machine" for records older than those keys), how many
re-ran to the same verdict and a beta within the check's tolerance, how many kept their verdict
with beta moved (a rerun on another machine), how many differ or failed, how many were never
re-run, and what re-running every record not yet re-run to the same beta would cost (the
records' own ``seconds``): a record whose beta moved on another machine still waits for its own. A rerun row
counts for a record only if it compared that record as it is now (the same run, verdict and
beta): a record made again after its check is "not re-run". The runs left are listed under the
table, by state::

    python benchmarks/rerun_coverage.py benchmarks/measured/reproduction_study \\
        --out benchmarks/measured/reproduction_study/rerun_coverage.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hessian_powerlaw.io import atomic_path

STATES = ("exact", "verdict held", "differs", "not re-run")
LEFT = {
    "verdict held": "Same verdict, beta moved",
    "differs": "Differs or failed",
    "not re-run": "Not re-run",
}


def read_json(path: Path):
    """The JSON value in ``path``; stops with one line naming the file if it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: not a readable JSON file ({error})") from error


def load_records(root: Path) -> list[tuple[Path, dict]]:
    """(path, record) for every record JSON under ``root``, sorted by path."""
    found = []
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("reruns"):
            continue
        record = read_json(path)
        if isinstance(record, dict) and {"run", "command", "power_law"} <= record.keys():
            found.append((path, record))
    return found


def load_rows(root: Path) -> list[dict]:
    """Every comparison row of the ``reruns*.json`` files directly in ``root``."""
    rows = []
    for path in sorted(root.glob("reruns*.json")):
        checked = read_json(path)
        if not isinstance(checked, dict) or not isinstance(checked.get("rows", []), list):
            raise SystemExit(f"{path}: not a rerun_records.py output (no list of rows)")
        rows += checked.get("rows", [])
    return rows


def state(record: dict, rows: list[dict]) -> str:
    """The best outcome among the rows that compared ``record`` as it is now (one of ``STATES``)."""
    mine = [
        row
        for row in rows
        if row.get("run") == record["run"]
        and row.get("beta") == record.get("beta")
        and row.get("power_law") == record.get("power_law")
    ]
    if any(row.get("agrees") for row in mine):
        return "exact"
    if any("error" not in row and row.get("rerun_power_law") == row.get("power_law") for row in mine):
        return "verdict held"
    return "differs" if mine else "not re-run"


def made_on(record: dict) -> str:
    """The machine a record names ("unnamed machine" for records older than the keys)."""
    train, spectrum = record.get("train_machine"), record.get("machine")
    if train and spectrum and train != spectrum:
        return f"trained on {train}, spectrum on {spectrum}"
    return train or spectrum or "unnamed machine"


def coverage(records: list[tuple[Path, dict]], rows: list[dict], root: Path) -> dict:
    """{machine: {"records": n, state: n for each state, "left": {state: [names]}, "hours": h,
    "untimed": n}}: the hours and untimed count are of the records not re-run to the same beta."""
    groups: dict[str, dict] = {}
    for path, record in records:
        empty = {"records": 0, **dict.fromkeys(STATES, 0), "left": {}, "hours": 0.0, "untimed": 0}
        group = groups.setdefault(made_on(record), empty)
        group["records"] += 1
        outcome = state(record, rows)
        group[outcome] += 1
        if outcome != "exact":
            group["left"].setdefault(outcome, []).append(str(path.relative_to(root).with_suffix("")))
            if record.get("seconds") is None:
                group["untimed"] += 1
            else:
                group["hours"] += record["seconds"] / 3600
    return groups


def markdown(groups: dict, command: str) -> str:
    """The coverage table, the totals line above it and the runs left below it."""
    total = sum(group["records"] for group in groups.values())
    exact = sum(group["exact"] for group in groups.values())
    lines = [
        f"{exact} of {total} committed records re-ran from their `command` to the same verdict and beta"
        f" (`{command}`).",
        "",
        "| made on | records | same verdict and beta | same verdict, beta moved | differs or failed"
        " | not re-run | hours to re-run the rest |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, group in sorted(groups.items()):
        hours = f"{group['hours']:.1f}" + (f" (+{group['untimed']} untimed)" if group["untimed"] else "")
        cells = [name, group["records"], group["exact"], group["verdict held"], group["differs"]]
        lines.append("| " + " | ".join(map(str, [*cells, group["not re-run"], hours])) + " |")
    for name, group in sorted(groups.items()):
        for outcome, heading in LEFT.items():
            if group["left"].get(outcome):
                names = ", ".join(f"`{left}`" for left in group["left"][outcome])
                lines += ["", f"{heading}, made on {name}: {names}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder of records and reruns*.json")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root}: not a folder")
    records = load_records(args.root)
    if not records:
        parser.error(f"{args.root}: holds no records (JSON with run, command and power_law)")
    command = f"python benchmarks/rerun_coverage.py {args.root} --out {args.out}"
    text = markdown(coverage(records, load_rows(args.root), args.root), command)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text.splitlines()[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
