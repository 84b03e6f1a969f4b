"""The results overview, generated from the committed files in benchmarks/measured/ by the docs
build (docs/hooks.py): each headline number is read from the file that holds it, never typed."""

import json
import re
from pathlib import Path

from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.report.reproduction import study_rows

DOCS = Path(__file__).resolve().parent
MEASURED = DOCS.parent / "benchmarks" / "measured"


def _protein_4hhb():
    (row,) = read_tsv(MEASURED / "reproduction_study" / "proteins" / "t11-4hhb.tsv")
    study = next(r for r in study_rows() if r["id"] == "t11-4hhb")
    return (
        f"β {row['beta']:.3f} ± {row['beta_sigma']:.3f}, d_ks {row['d_ks']:.4f} < d_c {row['d_c']:.4f} "
        f"(the study: {study['study_beta']} ± {study['study_beta_sigma']}, {study['study_d_ks']})",
        "reproduction_study/proteins/t11-4hhb.tsv",
        "results/reproduction.md",
    )


def _reproduction():
    from hessian_powerlaw.report.reproduction import summary

    count = summary(read_tsv(MEASURED / "reproduction_study" / "reproduction.tsv"))
    return (
        f"{count['run']} of {count['rows']} rows run so far; verdicts agree in {count['verdicts_agree']} "
        f"of {count['verdicts']}, β within 2σ in {count['betas_within']} of {count['betas']}",
        "reproduction_study/reproduction.tsv",
        "results/reproduction.md",
    )


def _protein_speed():
    text = (MEASURED / "protein_speed_entries.txt").read_text()
    ratio = re.findall(r"ratio_vs_prody=([0-9.]+)", text)[-1]
    text = f"{ratio}x ProDy's user path on the 25 shared entries"
    return text, "protein_speed_entries.txt", "results/proteins-speed.md"


def _network_peers():
    rows = json.loads((MEASURED / "dnn_peers.json").read_text())
    out = []
    for k in sorted({r["k"] for r in rows}):
        ours = next(r for r in rows if r["k"] == k and r["tool"] == "hessian-powerlaw block")
        peers = [
            r
            for r in rows
            if r["k"] == k
            and not r["tool"].startswith("hessian-powerlaw")
            and r["status"] == "ok"
            and r.get("max_rel_error") is not None
            and r["max_rel_error"] < 1e-3
        ]
        fastest = min(peers, key=lambda r: r["seconds"])
        out.append(f"K = {k}: {fastest['seconds'] / ours['seconds']:.1f}x {fastest['tool']}")
    return (
        "; ".join(out) + " (LeNet, 6000 images, 2 CPU cores)",
        "dnn_peers.json",
        "results/network-solvers.md",
    )


def _generic_peers():
    saved = json.loads((MEASURED / "dnn_peers_generic.json").read_text())
    rows = [r for r in saved["rows"] if "seconds" in r]
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        ratios = []
        for k in sorted({r["k"] for r in rows if r["model"] == model}):
            same = [r for r in rows if r["model"] == model and r["k"] == k]
            ours = next((r for r in same if r["tool"] == "hessian-powerlaw top_spectrum (defaults)"), None)
            peers = [
                r["seconds"]
                for r in same
                if not r["tool"].startswith("hessian-powerlaw") and r["max_rel_error"] <= 1e-3
            ]
            if ours and peers:
                ratios.append(f"{min(peers) / ours['seconds']:.1f}x at K = {k}")
            elif ours:
                ratios.append(f"no tool within 1e-3 at K = {k} (ours {ours['max_rel_error']:.1e})")
        out.append(f"{model} {', '.join(ratios)}")
    return (
        "the default against the fastest peer within 1e-3: " + "; ".join(out) + " (2 CPU cores)",
        "dnn_peers_generic.json",
        "results/network-solvers.md",
    )


def _calibration():
    path = MEASURED / "reproduction_study" / "calibration" / "calibration_scores.tsv"
    rows = read_tsv(path)
    reading = {}  # option -> [agree, compared] over the depth and width rows
    for r in rows:
        if r["choice"] in ("fcn-depth", "width"):
            counts = reading.setdefault(r["option"], [0, 0])
            counts[0] += int(r["verdicts_agree"])
            counts[1] += int(r["verdicts"])
    text = "; ".join(
        f"{option}: {agree}/{compared} verdicts agree" for option, (agree, compared) in reading.items()
    )
    source = "reproduction_study/calibration/calibration_scores.tsv"
    return f"what a k-layer FCN is (depth and width rows): {text}", source, "results/calibration.md"


def _noise():
    rows = {r["experiment"]: r for r in read_tsv(MEASURED / "noise_valleys" / "negative_vs_loss.tsv")}
    moved, grid = rows["displacement"], rows["sgd-grid"]
    span = float(moved["loss_max"]) / float(moved["loss_min"])
    return (
        f"negative-eigenvalue sum against loss, a minimum displaced along its non-degenerate directions: "
        f"slope {float(moved['slope']):.2f} ± {float(moved['slope_se']):.2f} "
        f"(the paper: {moved['paper_slope']}), "
        f"R² {float(moved['r2']):.4f}, losses over {span:.0f}x; SGD from a reached minimum keeps the loss at "
        f"the minimum (slope {float(grid['slope']):.1f}, R² {float(grid['r2']):.2f})",
        "noise_valleys/negative_vs_loss.tsv",
        "results/noise.md",
    )


HEADLINES = (
    ("4HHB, K = 1000 (Table 11)", _protein_4hhb),
    ("The power-law study's tables, its own regime", _reproduction),
    ("Protein speed", _protein_speed),
    ("Network top-K against the fastest correct peer", _network_peers),
    ("Your own network: CNN, transformer, ResNet18", _generic_peers),
    ("The study's protocol, calibration", _calibration),
    ("The noise study, Fig. 2a", _noise),
)


def index_page():
    lines = [
        "# Results",
        "",
        "Every number on these pages is read from a committed file in `benchmarks/measured/`, which",
        "holds the command that made it (see `benchmarks/measured/README.md`).",
        "",
        "| result | measured | file |",
        "|---|---|---|",
    ]
    for title, read in HEADLINES:
        text, source, page = read()
        lines.append(f"| [{title}](../{page}) | {text} | `{source}` |")
    return "\n".join(lines) + "\n"


def readme_table():
    """The README's headline table: the same lines, linking to the pages in docs/."""
    lines = ["| result | measured |", "|---|---|"]
    for title, read in HEADLINES:
        text, _, page = read()
        lines.append(f"| [{title}](docs/{page}) | {text} |")
    return "\n".join(lines)


# committed text outputs shown on the result pages: each run is "$ command   # note", then what
# the command printed (markdown tables among plain lines) up to a blank line; a file that keeps
# several runs is shown by its last (the earlier ones stay in the file for the spread)
TEXT_OUTPUTS = (
    "block_width_k100_n6000.txt",
    "block_width_k1000_n6000.txt",
    "krylov_floor_k100.txt",
    "krylov_floor_k1000.txt",
    "product_flops.txt",
    "protein_speed_structures.txt",
    "protein_speed_entries.txt",
    "protein_speed_crossover.txt",
)


def text_output(name):
    """The last run of a committed '$ command' text output as markdown: the command (and its
    note) in a code block, the printed lines after it, plain lines kept apart from the tables."""
    lines = (MEASURED / name).read_text().splitlines()
    first = max(i for i, line in enumerate(lines) if line.startswith("$ "))
    rest = lines[first + 1 :]
    rest = rest[: rest.index("")] if "" in rest else rest
    command, _, note = lines[first].removeprefix("$ ").partition("   # ")
    out = [f"`{name}`, made by:", "", "```", command.strip(), "```", ""]
    if note:
        out += [f"*{note.strip()}*", ""]
    for line, following in zip(rest, [*rest[1:], ""], strict=True):
        out.append(line if line.startswith("|") else f"{line.replace('#', chr(92) + '#', 1)}  ")
        if line.startswith("|") != following.startswith("|"):
            out.append("")
    return "\n".join(out) + "\n"


def solver_rows():
    """The solver comparisons of benchmarks/dnn_solvers.py (its JSON outputs) as one table."""
    lines = [
        "| K | method | products | HVPs | data passes | wall s | speed-up (same K, same file) "
        "| max rel. dev. | beta | d_ks |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("dnn_solvers_k300.json", "dnn_solvers_k1000.json"):
        for r in json.loads((MEASURED / name).read_text())["rows"]:
            lines.append(
                f"| {r['k']} | {r['method']} | {r['products']} | {r['hvps']} | {r['passes']} | "
                f"{r['seconds']:.1f} | {r['speedup']:.1f}x | {r['max_rel_dev']:.1e} | {r['beta']} | "
                f"{r['d_ks']} |"
            )
    costs = json.loads((MEASURED / "dnn_solvers_k300.json").read_text())["costs"]
    lines += ["", "| product | s per vector |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in costs.items()]
    return "\n".join(lines) + "\n"


def write_all():
    (DOCS / "results").mkdir(exist_ok=True)
    (DOCS / "results" / "index.md").write_text(index_page())
    generated = DOCS / "results" / "measured"
    generated.mkdir(exist_ok=True)
    for name in TEXT_OUTPUTS:
        (generated / name.replace(".txt", ".md")).write_text(text_output(name))
    (generated / "dnn_solvers.md").write_text(solver_rows())


if __name__ == "__main__":
    write_all()
