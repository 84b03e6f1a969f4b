"""The calibration table of the power-law study's unstated choices (workflow/configs/calibrate_study.yaml).

Each calibration run (a record and its spectrum, copied from results-calibrate/reproduction/) is set
beside the study row it stands for, and refitted with the weight-decay term in the Hessian
(H + wd I: every eigenvalue + wd, the same eigenvectors, so read from the same spectrum). Then every
choice is scored by the rule stated in docs/reproduction (issue 30) before the full run:
the option with the most verdict agreements over the rows that vary it, ties broken by more betas
within two combined sigma, then by the cheaper option.

    python benchmarks/calibration_table.py benchmarks/measured/reproduction_study/calibration
"""

import argparse
import math
import sys
from pathlib import Path

from hessian_powerlaw.fit import FitError, power_law_fit
from hessian_powerlaw.io import load_npy, read_json, write_text, write_tsv
from hessian_powerlaw.report.reproduction import study_rows

WEIGHT_DECAY = 5e-4

# run -> (the choice it varies, its option, the study row under the reading "k-layer FCN = k linear
# layers"; rows of the other reading, "k hidden layers", are listed in OTHER_READING)
RUNS = {
    "cal-fcn-d0-w100": ("fcn-depth", "k linear layers", "t8-fcn1-mnist"),
    "cal-fcn-d1-w100": ("fcn-depth", "k linear layers", "t8-fcn2-mnist"),
    "cal-fcn-d3-w100": ("fcn-depth", "k linear layers", "t8-fcn4-mnist"),
    "cal-fcn-d1-w10": ("width", "k linear layers", "t8-fcn2-mnist-w10"),
    "cal-fcn-d1-w20": ("width", "k linear layers", "t8-fcn2-mnist-w20"),
    "cal-fcn-d1-w30": ("width", "k linear layers", "t8-fcn2-mnist-w30"),
    "cal-fcn-d1-w50": ("width", "k linear layers", "t8-fcn2-mnist-w50"),
    "cal-fcn-d1-w70": ("width", "k linear layers", "t8-fcn2-mnist-w70"),
    "cal-fcn-d0-w100-init": ("fcn-depth", "k linear layers", "t8-fcn1-mnist-init"),
    "cal-fcn-d1-w100-init": ("fcn-depth", "k linear layers", "t8-fcn2-mnist-init"),
    "cal-fcn-d3-w100-init": ("fcn-depth", "k linear layers", "t8-fcn4-mnist-init"),
    "cal-lenet": ("base", "base", "t1-lenet-mnist"),
    "cal-lenet-init": ("base", "base", "t1-lenet-mnist-init"),
    "cal-fcn-d1-w100-h20000": ("hessian-images", "20000", "t8-fcn2-mnist"),
    "cal-fcn-d1-w100-h60000": ("hessian-images", "60000", "t8-fcn2-mnist"),
    "cal-lenet-h20000": ("hessian-images", "20000", "t1-lenet-mnist"),
    "cal-lenet-h60000": ("hessian-images", "60000", "t1-lenet-mnist"),
    "cal-fcn-d1-w100-sub6000": ("training-set", "6000-image subset", "t8-fcn2-mnist"),
    "cal-lenet-sub6000": ("training-set", "6000-image subset", "t1-lenet-mnist"),
    "cal-fcn-d1-w100-pixel": ("normalisation", "per pixel", "t8-fcn2-mnist"),
    "cal-lenet-pixel": ("normalisation", "per pixel", "t1-lenet-mnist"),
    "cal-fcn-d1-w100-e100": ("epochs", "100", "t8-fcn2-mnist"),
}
OTHER_READING = {  # the same networks read as "k hidden layers"
    "cal-fcn-d1-w100": "t8-fcn1-mnist",
    "cal-fcn-d2-w100": "t8-fcn2-mnist",
    "cal-fcn-d4-w100": "t8-fcn4-mnist",
    "cal-fcn-d2-w10": "t8-fcn2-mnist-w10",
    "cal-fcn-d2-w30": "t8-fcn2-mnist-w30",
    "cal-fcn-d2-w50": "t8-fcn2-mnist-w50",
    "cal-fcn-d2-w70": "t8-fcn2-mnist-w70",
    "cal-fcn-d1-w100-init": "t8-fcn1-mnist-init",
    "cal-fcn-d4-w100-init": "t8-fcn4-mnist-init",
}
ALSO = {  # runs that also stand for another study row (choice, option, row)
    "cal-lenet-sub6000": ("training-set", "6000-image subset", "t6-n6000"),
    "cal-fcn-d1-w100-sub6000": ("training-set", "6000-image subset", "t8-fcn2-mnist"),
}
BASE_OPTION = {  # the base regime's option of each choice (the runs that do not vary it)
    "hessian-images": "6000",
    "training-set": "whole set",
    "normalisation": "global",
    "epochs": "50",
}
COLUMNS = (
    "run",
    "choice",
    "option",
    "weight_decay_term",
    "study_row",
    "study_d_ks",
    "study_power_law",
    "study_beta",
    "study_beta_sigma",
    "d_ks",
    "d_c",
    "power_law",
    "beta",
    "beta_sigma",
    "verdict_agrees",
    "beta_within_2sigma",
    "train_loss",
    "test_acc",
    "n_eval",
    "hvp_count",
    "seconds",
)


def _agree(study, fit):
    """(verdict agrees, beta within 2 combined sigma): 'yes'/'no', or None where not applicable."""
    verdict = (
        None
        if study["study_power_law"] is None
        else (fit["power_law"] == (study["study_power_law"] == "yes"))
    )
    within = None
    if study.get("study_beta") is not None:
        within = abs(fit["beta"] - study["study_beta"]) <= 2 * math.hypot(
            fit["beta_sigma"], study["study_beta_sigma"]
        )
    return [None if v is None else ("yes" if v else "no") for v in (verdict, within)]


def rows(folder):
    """One row per (run, study row, weight-decay term) of the records in `folder`."""
    study = {r["id"]: r for r in study_rows()}
    out = []
    for path in sorted(Path(folder).glob("*_s0.json")):
        record = read_json(path)
        run = record["run"].removesuffix("_s0")
        targets = []
        if run in RUNS:
            targets.append((*RUNS[run][:2], RUNS[run][2]))
        if run in ALSO and ALSO[run] not in targets:
            targets.append(ALSO[run])
        if run in OTHER_READING:
            targets.append(("fcn-depth" if "w100" in run else "width", "k hidden layers", OTHER_READING[run]))
        if record.get("status") != "ok" or not targets:
            print(
                f"calibration: {run} left out ({record.get('status')}: {record.get('reason')})",
                file=sys.stderr,
            )
            continue
        values = load_npy(path.with_suffix(".npy"))[0]
        for shift in (0.0, WEIGHT_DECAY):
            try:
                fit = power_law_fit(values + shift, int(record["k"]), compare=False)
            except FitError as err:
                print(f"calibration: {run} (+{shift:g}) not fitted: {err}", file=sys.stderr)
                continue
            for choice, option, row_id in targets:
                row = study[row_id]
                verdict, within = _agree(row, fit)
                out.append(
                    {
                        "run": run,
                        "choice": choice,
                        "option": option,
                        "weight_decay_term": bool(shift),
                        "study_row": row_id,
                        **{
                            key: row[key]
                            for key in ("study_d_ks", "study_power_law", "study_beta", "study_beta_sigma")
                        },
                        **{key: fit[key] for key in ("d_ks", "d_c", "power_law", "beta", "beta_sigma")},
                        "verdict_agrees": verdict,
                        "beta_within_2sigma": within,
                        **{
                            key: record.get(key)
                            for key in ("train_loss", "test_acc", "n_eval", "hvp_count", "seconds")
                        },
                    }
                )
    return out


def failures(folder):
    """[(run, why)] of the calibration runs without a record: those that ended in an error (their
    training or spectrum log, RUN.log copied from logs/repro_*/, holds the reason), then those
    of RUNS and OTHER_READING that have not run."""
    out = []
    for log in sorted(Path(folder).glob("*.log")):
        run = log.name.removesuffix(".log").removesuffix("_s0")
        if not (Path(folder) / f"{run}_s0.json").exists():
            errors = [line for line in log.read_text().splitlines() if "error:" in line]
            out.append((run, errors[-1] if errors else "no record and no error line"))
    logged = {run for run, _ in out}
    for run in sorted((set(RUNS) | set(OTHER_READING)) - logged):
        if not (Path(folder) / f"{run}_s0.json").exists():
            out.append((run, "not run: neither its record nor a log is in this folder"))
    return out


def scores(table):
    """Per (choice, option): verdicts agreeing / compared and betas within / compared, over the
    runs that vary the choice and the base runs of the same study rows (the base option)."""
    out = []
    plain = [r for r in table if not r["weight_decay_term"]]
    base = [
        r
        for r in plain
        if r["option"] in ("base", "k linear layers") and r["choice"] in ("base", "fcn-depth")
    ]
    for choice in ("fcn-depth", "width", "hessian-images", "training-set", "normalisation", "epochs"):
        members = [r for r in plain if r["choice"] == choice]
        if not members:
            continue
        options = {}
        for r in members:
            options.setdefault(r["option"], []).append(r)
        if choice in BASE_OPTION:  # the base runs of the same study rows stand for the base option
            compared = {r["study_row"] for r in members}
            options[BASE_OPTION[choice]] = [r for r in base if r["study_row"] in compared]
        for option, group in options.items():
            out.append(_score(choice, option, group))
    for flag in (False, True):
        group = [r for r in table if r["weight_decay_term"] == flag and r["option"] != "k hidden layers"]
        out.append(_score("weight-decay term", "included" if flag else "excluded", group))
    return out


def _score(choice, option, group):
    verdicts = [r["verdict_agrees"] for r in group if r["verdict_agrees"]]
    betas = [r["beta_within_2sigma"] for r in group if r["beta_within_2sigma"]]
    return {
        "choice": choice,
        "option": option,
        "runs": ", ".join(sorted({r["run"] for r in group})),
        "verdicts_agree": sum(v == "yes" for v in verdicts),
        "verdicts": len(verdicts),
        "betas_within": sum(b == "yes" for b in betas),
        "betas": len(betas),
    }


def markdown(table, score, failed=()):
    lines = [f"- {run}: no spectrum ({reason})" for run, reason in failed] + ([""] if failed else [])
    lines += [
        "| choice | option | verdicts agree | betas within 2σ | runs |",
        "|---|---|---:|---:|---|",
    ]
    for s in score:
        lines.append(
            f"| {s['choice']} | {s['option']} | {s['verdicts_agree']}/{s['verdicts']} | "
            f"{s['betas_within']}/{s['betas']} | {s['runs']} |"
        )
    lines += [
        "",
        "| run | choice | option | +wd | study row | study d_ks | study | study β | d_ks | ours | β ± σ "
        "| agrees | β within 2σ |",
        "|---|---|---|---|---|---:|---|---:|---:|---|---|---|---|",
    ]
    for r in table:
        beta = "" if r["study_beta"] is None else f"{r['study_beta']:.3f}"
        lines.append(
            f"| {r['run']} | {r['choice']} | {r['option']} | {'yes' if r['weight_decay_term'] else ''} | "
            f"{r['study_row']} | {r['study_d_ks']} | {r['study_power_law']} | {beta} | {r['d_ks']:.4f} | "
            f"{'yes' if r['power_law'] else 'no'} | {r['beta']:.3f} ± {r['beta_sigma']:.3f} | "
            f"{r['verdict_agrees'] or ''} | {r['beta_within_2sigma'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="calibration records (*_s0.json) with their .npy spectra")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        parser.error(f"{args.folder}: no such folder")
    table = rows(args.folder)
    score = scores(table)
    folder = Path(args.folder)
    write_tsv(folder / "calibration.tsv", table, COLUMNS)
    write_tsv(folder / "calibration_scores.tsv", score, tuple(score[0]) if score else ("choice",))
    text = markdown(table, score, failures(folder))
    write_text(folder / "calibration.md", text)
    print(text)


if __name__ == "__main__":
    main()
