"""Re-run committed reproduction records from their own ``command`` and compare the results.

Each record of ``benchmarks/measured/reproduction_study/`` carries the exact command that made
it (training and spectrum). This script runs that command in a scratch directory, with ``$DATA``
pointing at the datasets, and compares the new record with the committed one: the verdict, the
fit's beta (to ``--tol``, 1e-6 by default), d_ks, the largest eigenvalue and the training loss.
On a CPU the last digits depend on the instruction set and on the number of threads, so each
stage runs on the threads that made it (the record's ``train_threads`` and ``threads``; for
older records, ``--made-with``, which ``snakemake_threads.py`` reads from Snakemake's logs), and
the check means something only on the machine type that made the records, with the package
version that made them first on ``PYTHONPATH``: records that name their machine (``train_machine``,
``machine``: instruction set or GPU, torch version) get a ``same_machine`` column saying whether
the rerun ran on one that reads the same (empty for older records, which do not say). Rows are
appended to ``--out`` (JSON, and a Markdown table beside it, ``.md``) as they finish, atomically;
a rerun of the script skips the records already compared there, so an interrupted check resumes,
and runs again those whose command failed (a missing input, a killed job), replacing their rows::

    python benchmarks/rerun_records.py benchmarks/measured/reproduction_study/t8-fcn1-mnist_s0.json \\
        --data data --made-with benchmarks/measured/reproduction_study/made_with.json \\
        --out benchmarks/measured/reproduction_study/reruns.json

The exit status is 1 when any record disagrees, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hessian_powerlaw.io import atomic_path, write_json
from hessian_powerlaw.network.device import machine


def spectrum_output(command: str) -> str:
    """The record path a command writes: the argument of its last ``--out``."""
    tokens = shlex.split(command)
    outs = [i for i, token in enumerate(tokens) if token == "--out"]
    if not outs or outs[-1] + 1 >= len(tokens):
        raise ValueError(f"the command names no --out record: {command[:80]}...")
    return tokens[outs[-1] + 1]


def compare(committed: dict, rerun: dict, tol: float) -> dict:
    """One row: the committed and the rerun verdict, beta, d_ks and lambda_max, and whether they agree."""
    row = {"run": committed["run"], "status": committed.get("status"), "rerun_status": rerun.get("status")}
    for key in ("power_law", "beta", "d_ks", "lambda_max", "train_loss"):
        row[key] = committed.get(key)
        row[f"rerun_{key}"] = rerun.get(key)
    if committed.get("beta") is None or rerun.get("beta") is None:
        row["beta_diff"] = None
        same_beta = committed.get("beta") is None and rerun.get("beta") is None
    else:
        row["beta_diff"] = abs(committed["beta"] - rerun["beta"])
        same_beta = row["beta_diff"] <= tol
    row["same_machine"] = same_machine(committed, rerun)
    row["agrees"] = bool(
        same_beta
        and committed.get("power_law") == rerun.get("power_law")
        and row["status"] == row["rerun_status"]
    )
    return row


def same_machine(committed: dict, rerun: dict) -> bool | None:
    """Whether the rerun ran on a machine that reads as the record's (``train_machine`` and
    ``machine``); None where the record cannot say: it names no machine, or names only the
    instruction set (older records, before the label named the CPU model) and the rerun's reads
    the same without its model, since two CPUs with one instruction set may round differently."""
    made = (committed.get("train_machine"), committed.get("machine"))
    ran = (rerun.get("train_machine"), rerun.get("machine"))
    if made == (None, None):
        return None
    if made == ran:
        return True
    set_only = any(label and "CPU," in label for label in made)  # no "(model)" after CPU
    without_model = tuple(re.sub(r" CPU \([^)]*\),", " CPU,", label or "") or None for label in ran)
    return None if set_only and made == without_model else False


def stage_threads(record: dict, made_with: dict) -> dict:
    """{"train": n, "spectrum": n}: the CPU threads of each stage, from the record's ``train_threads``
    and ``threads`` or, for records older than those keys, ``made_with[run]``; a stage absent from
    both keeps the environment's threads."""
    known = {"train": record.get("train_threads"), "spectrum": record.get("threads")}
    fallback = made_with.get(record["run"], {})
    return {stage: known[stage] or fallback.get(stage) for stage in known}


def pinned(command: str, threads: dict) -> str:
    """``command`` with each ``hessian-powerlaw train`` / ``dnn-spectrum`` stage run on its threads."""
    stages = []
    for stage in command.split(" && "):
        kind = "train" if stage.startswith("hessian-powerlaw train ") else "spectrum"
        n = threads.get(kind)
        stages.append(f"OMP_NUM_THREADS={n} MKL_NUM_THREADS={n} {stage}" if n else stage)
    return " && ".join(stages)


def rerun(committed: dict, data: Path, tol: float, made_with: dict | None = None) -> dict:
    """Run one record's command in a scratch directory and compare its new record with the committed one.

    ``committed``: the committed record; ``made_with``: {run: {"train": threads, "spectrum":
    threads}} for records that do not say theirs.
    """
    threads = stage_threads(committed, made_with or {})
    command = pinned(committed["command"], threads)
    env = dict(os.environ, DATA=str(data.resolve()))
    with tempfile.TemporaryDirectory(prefix="rerun-") as work:
        start = time.perf_counter()
        child = subprocess.Popen(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = child.communicate()
        finally:  # interrupted: stop the training or spectrum too, not only this script
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                child.wait()
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            last = (stderr.strip().splitlines() or ["no message"])[-1]
            return {
                "run": committed["run"],
                "agrees": False,
                "error": last,
                "seconds": round(seconds, 1),
                "threads": threads,
            }
        fresh = json.loads((Path(work) / spectrum_output(command)).read_text())
    row = compare(committed, fresh, tol)
    row.update(seconds=round(seconds, 1), threads=threads)
    return row


def markdown(result: dict) -> str:
    """The rows as a Markdown table under a line with the agreement count and the command."""
    rows = result["rows"]
    agree = sum(row["agrees"] for row in rows)
    codes = sorted({row["code"] for row in rows})
    header = ["run", "threads (train/spectrum)", "verdict", "rerun verdict", "beta", "rerun beta"]
    header += ["\\|difference\\|", "same machine"]
    lines = [
        f"{agree} of {len(rows)} records re-run from their `command` to the same verdict and a beta within"
        f" {result['tol']:g} ({result['machine']}; `{result['command']}`), by {'; '.join(codes)}.",
        "",
        "| " + " | ".join([*header, "seconds", "agrees"]) + " |",
        "|" + "---|" * (len(header) + 2),
    ]
    for row in rows:
        if "error" in row:
            cells = [row["run"], _threads(row), "", f"failed: {row['error']}", "", "", "", ""]
        else:
            beta = ["" if row[key] is None else f"{row[key]:.9f}" for key in ("beta", "rerun_beta")]
            diff = "" if row["beta_diff"] is None else f"{row['beta_diff']:.1e}"
            same = {True: "yes", False: "no"}.get(row.get("same_machine"), "")
            cells = [row["run"], _threads(row), row["power_law"], row["rerun_power_law"], *beta, diff, same]
        cells += [row["seconds"], "yes" if row["agrees"] else "no"]
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _threads(row: dict) -> str:
    """'train/spectrum' threads of a row ('env' where the environment's threads ran a stage)."""
    threads = row.get("threads") or {}
    return "/".join(str(threads.get(stage) or "env") for stage in ("train", "spectrum"))


def code_version() -> str:
    """The package the commands run (what ``hessian-powerlaw`` imports): version, and commit if in git."""
    import hessian_powerlaw

    where = Path(hessian_powerlaw.__file__).parent
    done = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = f" at commit {done.stdout.strip()}" if done.returncode == 0 else ""
    return f"hessian-powerlaw {hessian_powerlaw.__version__} from {where}{commit}"


def command_line(rows: list[dict], args: argparse.Namespace) -> str:
    """The command that checks every record in ``rows`` again (each row keeps its record's path)."""
    records = " ".join(shlex.quote(row["record"]) for row in rows)
    return (
        f"python benchmarks/rerun_records.py {records} --data {shlex.quote(str(args.data))}"
        f" --out {shlex.quote(str(args.out))} --tol {args.tol:g}"
        + (f" --made-with {shlex.quote(str(args.made_with))}" if args.made_with else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="committed record JSON files")
    parser.add_argument(
        "--data", type=Path, default=Path("data"), help="MNIST/ and FashionMNIST/ (the $DATA)"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file the rows are appended to")
    parser.add_argument(
        "--made-with",
        type=Path,
        help="JSON {run: {train: threads, spectrum: threads}} for records older than their threads keys",
    )
    parser.add_argument("--tol", type=float, default=1e-6, help="largest |beta difference| that agrees")
    args = parser.parse_args(argv)
    records = {path: json.loads(path.read_text()) for path in args.records}
    commands = [record.get("command", "") for record in records.values()]
    if any("hessian-powerlaw " in command for command in commands) and not shutil.which("hessian-powerlaw"):
        parser.error("hessian-powerlaw is not on PATH: activate the environment the records were made with")
    result = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result.update(machine=f"{platform.machine()}, {machine('cpu')}", tol=args.tol)
    code = code_version()
    made_with = json.loads(args.made_with.read_text()) if args.made_with else {}
    done = {row["run"] for row in result["rows"] if "error" not in row}
    for path, committed in records.items():
        run = committed["run"]
        if run in done:
            continue
        row = {**rerun(committed, args.data, args.tol, made_with), "record": str(path), "code": code}
        result["rows"] = [old for old in result["rows"] if old["run"] != run] + [row]
        result["command"] = command_line(result["rows"], args)
        write_json(args.out, result)
        with atomic_path(args.out.with_suffix(".md")) as tmp:
            tmp.write_text(markdown(result))
        verdict = "agrees" if row["agrees"] else "DIFFERS"
        detail = f": {row['error']}" if "error" in row else ""
        betas = f"beta {row.get('beta')} -> {row.get('rerun_beta')}"
        print(f"{row['run']}: {verdict} ({betas}){detail}", flush=True)
    failed = [row["run"] for row in result["rows"] if not row["agrees"]]
    print(f"{len(result['rows']) - len(failed)} of {len(result['rows'])} records agree", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
