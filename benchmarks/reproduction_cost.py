"""What the reproduction has cost so far, part by part, and what the rows left will cost.

Reads the run's config (its experiments, parts and seeds) and the records made so far (their
``train_seconds`` and ``spectrum_seconds``), and writes a Markdown table: per part, the rows
done and left, the compute hours spent (a network reused by several rows counts once) and an
estimate for the rows left, each priced at the median spectrum of the done rows of the same
network (model, depth, width), trained or not, on the same training set, over as many images
with the same K (rows that stopped without a fit, such as collapsed networks, do not price
others), plus its training at the median seconds per epoch of that network on that training
set (a reused network costs no training); a row with no such done row is left unpriced. Below it, the
costliest records. The seconds are wall time on the machine that made them, shared with other
work, so the estimate says where the hours go, not what a quiet machine would take::

    python benchmarks/reproduction_cost.py workflow/configs/reproduce_study.yaml \\
        benchmarks/measured/reproduction_study --out benchmarks/measured/reproduction_study/cost.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from hessian_powerlaw.config import load_config
from hessian_powerlaw.io import atomic_path
from hessian_powerlaw.plan import experiments


def _keys(experiment: dict, by_id: dict, config: dict) -> tuple[tuple, tuple, int] | None:
    """(spectrum kind, training kind, epochs) of an experiment's rows; None for protein rows.

    Spectra of the same network, trained or not, over the same images and K cost alike; training
    costs per epoch by network and training-set size."""
    source = by_id[experiment.get("reuse") or experiment["id"]]
    if "protein" in source:
        return None
    train = source["train"]
    spectrum = {**config["dnn"]["spectrum"], **experiment.get("spectrum", {})}
    net = (train.get("model", "lenet"), train.get("depth"), train.get("width"))
    n_train, epochs = train.get("n_train", 0), train.get("epochs", 1)
    look = (net, epochs > 0, n_train, spectrum["n_eval"], spectrum["k"], spectrum.get("operator"))
    return look, (net, n_train), 0 if experiment.get("reuse") else epochs


def cost(config: dict, records: dict[str, dict]) -> list[dict]:
    """One row per part, in config order: rows, done, hours spent, hours estimated for the rest."""
    by_id = experiments(config)
    keyed = [(e, keys) for e in by_id.values() if (keys := _keys(e, by_id, config)) is not None]
    spectra: dict[tuple, list[float]] = {}
    per_epoch: dict[tuple, list[float]] = {}
    for e, (look, net, epochs) in keyed:
        for seed in e["seeds"]:
            record = records.get(f"{e['id']}_s{seed}")
            if record and record.get("beta") is not None:
                spectra.setdefault(look, []).append(record["spectrum_seconds"])
                if epochs:
                    per_epoch.setdefault(net, []).append(record["train_seconds"] / epochs)
    parts: dict[str, dict] = {}
    for e, (look, net, epochs) in keyed:
        part = parts.setdefault(e["part"], {"part": e["part"], **dict.fromkeys(_COUNTS, 0)})
        for seed in e["seeds"]:
            part["rows"] += 1
            record = records.get(f"{e['id']}_s{seed}")
            if record:
                part["done"] += 1
                part["spent"] += record["spectrum_seconds"] + (record["train_seconds"] if epochs else 0)
            elif look in spectra and (not epochs or net in per_epoch):
                train = statistics.median(per_epoch[net]) * epochs if epochs else 0.0
                part["left_s"] += statistics.median(spectra[look]) + train
            else:
                part["unpriced"] += 1
    return list(parts.values())


_COUNTS = ("rows", "done", "spent", "left_s", "unpriced")


def _row(p: dict) -> str:
    """One Markdown row of the part table."""
    cells = [p["part"], p["rows"], p["done"], f"{p['spent'] / 3600:.1f}", p["rows"] - p["done"]]
    return "| " + " | ".join(map(str, [*cells, f"{p['left_s'] / 3600:.1f}", p["unpriced"]])) + " |"


def markdown(parts: list[dict], records: dict[str, dict], command: str) -> str:
    """The part table, its totals, and the five costliest records."""
    lines = [
        f"Compute per part of the reproduction (`{command}`): hours are wall time on 2 shared cores.",
        "",
        "| part | rows | done | hours spent | rows left | hours left (estimate) | rows left unpriced |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_row(p) for p in parts]
    lines.append(_row({"part": "all", **{key: sum(p[key] for p in parts) for key in _COUNTS}}))
    costly = sorted(records.values(), key=lambda r: -r["spectrum_seconds"])[:5]
    lines += ["", "The costliest spectra so far:", "", "| record | spectrum hours | Hessian products |"]
    lines.append("|---|---:|---:|")
    lines += [f"| {r['run']} | {r['spectrum_seconds'] / 3600:.2f} | {r.get('hvp_count')} |" for r in costly]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the reproduction's config file")
    parser.add_argument("records", type=Path, help="the folder of its records (EXPERIMENT_sSEED.json)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    records = {}
    for path in sorted(args.records.glob("*_s[0-9]*.json")):
        record = json.loads(path.read_text())
        if "spectrum_seconds" in record:
            records[record["run"]] = record
    command = f"python benchmarks/reproduction_cost.py {args.config} {args.records} --out {args.out}"
    with atomic_path(args.out) as tmp:
        tmp.write_text(markdown(cost(config, records), records, command))
    print(args.out.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
