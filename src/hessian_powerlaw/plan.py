"""What the workflow makes, as pure functions of the validated config: run names, the expansion
of sweeps, curvature runs, noise runs and reproduction experiments, and every final target.
The Snakefile's rules use them; tests call them without Snakemake.

`config` is the workflow configuration after validation (every default filled in)."""

import itertools
import re
from collections.abc import Iterable

RUN_DIMS = ("model", "dataset", "optimizer", "batch_size", "n_train", "width", "depth", "seed", "epochs")
RUN_PATTERN = (
    "{model}_{dataset}_{optimizer}_b{batch_size}_n{n_train}_w{width}_d{depth}_s{seed}_e{epochs}{labelset}"
)
CURVATURE_DIMS = (*RUN_DIMS, "lr", "schedule")
CURVATURE_PATTERN = (
    "{model}_{dataset}_{optimizer}_lr{lr}_{schedule}"
    "_b{batch_size}_n{n_train}_w{width}_d{depth}_s{seed}_e{epochs}"
)
TOY_RUN = "{valley}_{noise}_lr{lr}"
FIGURES = {  # network and protein figures -> their report category
    "overlay": "Comparison",
    "protein_spectra": "Proteins",
    "protein_size_bins": "Proteins",
    "dnn_spectra": "Networks",
    "dnn_eigengaps": "Networks",
    "dnn_sweeps": "Networks",
}
CURVATURE_FIGURES = ("curvature_trace", "curvature_lr", "curvature_negative", "curvature_noise")
NOISE_TABLES = ("toy_trace_rate", "toy_anticorrelated", "negative_vs_loss")
NOISE_FIGURES = ("noise_toy_trace", "noise_toy_rate", "noise_anticorrelated", "noise_negative", "noise_trace")


def lr_text(value: float) -> str:
    """A learning rate as it appears in run names: 0.05 -> '0.05', 1e-05 -> '1e-05'."""
    return f"{value:g}"


def labelset(label_noise: float | None = None, labels: str | None = None) -> str:
    """The run-name suffix of the label dimensions: _ln0.2 (flipped fraction), _shuffled; empty
    when a sweep leaves them out (then dnn.training applies)."""
    noise = "" if label_noise is None else f"_ln{label_noise:g}"
    return noise + ("_shuffled" if labels == "shuffled" else "")


def label_settings(suffix: str) -> dict:
    """The `train` settings a labelset suffix stands for: {label_noise, labels} as present."""
    noise, shuffled = re.fullmatch(r"(?:_ln([0-9.]+))?(_shuffled)?", suffix).groups()
    settings = {"label_noise": float(noise)} if noise else {}
    if shuffled:
        settings["labels"] = "shuffled"
    return settings


def spectrum_settings(settings: dict) -> dict:
    """Spectrum settings as the option table names them: `k` is the table's spectrum_k (the one
    place where that rename happens); `name` (a variant's) is not an option."""
    return {("spectrum_k" if key == "k" else key): value for key, value in settings.items() if key != "name"}


def dnn_runs(config: dict) -> dict[str, int]:
    """{run name: top-K} of every dnn.sweeps combination and (optionally) its initialisation."""
    dnn = config["dnn"]
    runs = {}
    if not dnn["enabled"]:
        return runs
    for sweep in dnn["sweeps"]:
        k = sweep.get("k", dnn["spectrum"]["k"])
        dims = [sweep[d] for d in RUN_DIMS] + [sweep.get("label_noise", [None]), sweep.get("labels", [None])]
        for combo in itertools.product(*dims):
            spec = dict(zip(RUN_DIMS, combo, strict=False))
            spec["labelset"] = labelset(*combo[len(RUN_DIMS) :])
            runs[RUN_PATTERN.format(**spec)] = k
            if dnn["random_init_control"]:
                runs[RUN_PATTERN.format(**{**spec, "epochs": 0})] = k
    return runs


def trained_runs(runs: Iterable[str]) -> list[str]:
    """The runs of `runs` that train (not those at initialisation, epochs 0)."""
    return [run for run in runs if not re.search(r"_e0(_|$)", run)]


def curvature_runs(config: dict) -> list[str]:
    """Names of the curvature runs: every combination of every entry of dnn.curvature.runs."""
    if not config["dnn"]["enabled"]:
        return []
    runs = set()
    for entry in config["dnn"]["curvature"]["runs"]:
        for combo in itertools.product(*(entry[d] for d in CURVATURE_DIMS)):
            spec = dict(zip(CURVATURE_DIMS, combo, strict=True))
            runs.add(CURVATURE_PATTERN.format(**{**spec, "lr": lr_text(spec["lr"])}))
    return sorted(runs)


def noise_records(config: dict) -> list[str]:
    """Record paths of the noise study: toy valleys, equilibria and trace runs."""
    noise, results = config["noise"], config["results"]
    toy, eq, tr = noise["toy"], noise["equilibrium"], noise["trace"]
    names = [
        TOY_RUN.format(valley="trace", noise=kind, lr=lr_text(lr))
        for kind in ("sgd", "isotropic", "none")
        for lr in toy["trace_lrs"]
    ]
    names += [
        TOY_RUN.format(valley="anticorrelated", noise=kind, lr=lr_text(toy["anticorrelated_lr"]))
        for kind in ("sgd", "isotropic", "none")
    ]
    paths = [f"{results}/noise/toy/{name}.json" for name in names]
    paths += [
        f"{results}/noise/equilibrium/b{size}_lr{lr_text(lr)}.json"
        for size in eq["batch_sizes"]
        for lr in eq["lrs"]
    ]
    runs = [(kind, lr) for kind in ("sgd", "gd") for lr in tr["lrs"]]
    runs += [(kind, tr["compare_lr"]) for kind in ("isotropic", "isotropic-topk")]
    if tr["compare_lr"] not in tr["lrs"]:
        runs += [(kind, tr["compare_lr"]) for kind in ("sgd", "gd")]
    paths += [
        f"{results}/noise/trace/{kind}_lr{lr_text(lr)}_init{init}.json"
        for kind, lr in runs
        for init in tr["init_seeds"]
    ]
    return paths


def experiments(config: dict) -> dict[str, dict]:
    """{id: experiment} of the reproduction experiments (none when reproduction is off)."""
    repro = config["reproduction"]
    return {e["id"]: e for e in repro["experiments"]} if repro["enabled"] else {}


def trained_experiment(config: dict, experiment: str) -> str:
    """The experiment whose networks `experiment` uses (itself unless it reuses another's)."""
    return experiments(config)[experiment].get("reuse") or experiment


def repro_records(config: dict, part: str | None = None) -> list[str]:
    """Network record paths of every reproduction experiment (of one part)."""
    return [
        f"{config['results']}/reproduction/records/{e['id']}_s{seed}.json"
        for e in experiments(config).values()
        if (part is None or e["part"] == part) and "protein" not in e
        for seed in e["seeds"]
    ]


def repro_proteins(config: dict, part: str | None = None) -> list[str]:
    """Protein table paths of the protein experiments (of one part)."""
    return [
        f"{config['results']}/reproduction/proteins/{e['id']}.tsv"
        for e in experiments(config).values()
        if (part is None or e["part"] == part) and "protein" in e
    ]


def final_outputs(config: dict) -> list[str]:
    """Every target of the default rule `all`, in the order the sections appear."""
    results, pdb, dnn = config["results"], config["pdb"], config["dnn"]
    runs = dnn_runs(config)
    out = []
    if pdb["enabled"]:
        out += [f"{results}/protein/{name}" for name in ("proteins.tsv", "size_bins.tsv", "size_bins.md")]
        out += [f"{results}/protein/failures.tsv"]
    if runs:
        out += [f"{results}/dnn/dnn.tsv", f"{results}/dnn/dnn.md"]
        if dnn["spectrum"]["blocks"]:
            out += [f"{results}/dnn/blocks/{run}.{ext}" for run in runs for ext in ("tsv", "png", "pdf")]
    if pdb["enabled"]:
        out += [f"{results}/comparison/comparison.{ext}" for ext in ("tsv", "md", "html")]
        out += [f"{results}/plots/overlay.png"]
    if curvature_runs(config):
        out += [f"{results}/curvature/runs.tsv", f"{results}/curvature/curvature.md"]
        out += [f"{results}/plots/{name}.{ext}" for name in CURVATURE_FIGURES for ext in ("png", "pdf")]
    if dnn["variants"] and trained_runs(runs):
        out += [f"{results}/dnn/fidelity.{ext}" for ext in ("tsv", "md")]
        out += [f"{results}/plots/fidelity.{ext}" for ext in ("png", "pdf")]
    if config["noise"]["enabled"]:
        out += [f"{results}/noise/{name}.tsv" for name in NOISE_TABLES] + [f"{results}/noise/noise.md"]
        out += [f"{results}/noise/{name}.{ext}" for name in NOISE_FIGURES for ext in ("png", "pdf")]
    found = experiments(config)
    if found:
        parts = sorted({e["part"] for e in found.values()})
        out += [f"{results}/reproduction/parts/{part}.tsv" for part in parts]
        out += [f"{results}/reproduction/reproduction.{ext}" for ext in ("tsv", "md")]
    return out
