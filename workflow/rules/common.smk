import glob
import itertools
import re
import os
import shlex
import sys
from pathlib import Path
from snakemake.utils import validate

from hessian_powerlaw.config import check_experiments
from hessian_powerlaw.options import (
    COMMANDS,
    PROTEIN_SETTINGS,
    TRAINING_SETTINGS,
    command_line,
    values,
)

validate(config, schema="../schemas/config.schema.yaml")


envvars:
    "PATH",


# Jobs find `hessian-powerlaw` next to the Python running Snakemake (e.g. .venv/bin) even when
# that environment is not activated; a conda job environment still comes first.
os.environ["PATH"] = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
)

RESULTS = config["results"]
PDB = config["pdb"]
BATCH_SIZE = PDB["batch_size"]


wildcard_constraints:
    batch=r"\d+",
    model=r"[a-z0-9-]+",
    dataset=r"[a-z0-9-]+",
    optimizer=r"[a-z0-9-]+",
    batch_size=r"\d+",
    n_train=r"\d+",
    width=r"\d+",
    depth=r"\d+",
    seed=r"\d+",
    epochs=r"\d+",
    lr=r"[0-9.e-]+",
    schedule=r"step|constant",
    noise=r"sgd|gd|isotropic|isotropic-topk|none",
    valley=r"trace|anticorrelated",
    init=r"\d+",
    variant=r"[a-z0-9-]+",
    labelset=r"(_ln[0-9.]+)?(_shuffled)?",


def count_entries(path):
    with open(path) as handle:
        rows = [line for line in handle if line.strip() and not line.startswith("#")]
    return max(len(rows) - 1, 0)


def batches(wildcards=None):
    """Batch indices of the checkpointed entry list."""
    entries = checkpoints.select_entries.get().output.entries
    return range((count_entries(entries) + BATCH_SIZE - 1) // BATCH_SIZE)


def options(names, **settings):
    """The flags of the option table's `names`, from the config (overridden by `settings`)."""
    return command_line({**values(config, names), **settings})


def spectrum_options(wildcards):
    """`dnn-spectrum` flags: dnn.spectrum, overridden by the variant's settings; run and variant."""
    variant = VARIANTS.get(wildcards.get("variant"), {})
    run = run_name(wildcards)
    settings = {
        ("spectrum_k" if key == "k" else key): v
        for key, v in variant.items()
        if key != "name"
    }
    settings.setdefault("spectrum_k", DNN_RUNS[run])
    flags = options(COMMANDS["dnn-spectrum"], **settings)
    return f"{flags} --run {run} --variant {variant.get('name', 'spectrum')}"


def blocks_options(wildcards):
    """`dnn-spectrum --blocks` flags: the run's spectrum flags at K = dnn.spectrum.blocks_k."""
    run = run_name(wildcards)
    flags = options(COMMANDS["dnn-spectrum"], spectrum_k=DNN["spectrum"]["blocks_k"])
    return f"{flags} --run {run}"


def curvature_train_options(wildcards):
    """`train` flags of a curvature run: the table's (lr from the run; weight decay and label
    smoothing from dnn.curvature), schedule, measurements."""
    flags = options(
        COMMANDS["train"],
        lr=float(wildcards.lr),
        weight_decay=CURVATURE["weight_decay"],
        label_smoothing=CURVATURE["label_smoothing"],
    )
    return f"{flags} --schedule {wildcards.schedule} --curvature-every {CURVATURE['every']}"


def k_label():
    k = config["fit"]["k"]
    return f"{k:.0%} of the non-zero modes" if k < 1 else f"{int(k)}"


def protein_batch_inputs(wildcards):
    inputs = {"entries": checkpoints.select_entries.get().output.entries}
    if PDB["source"] == "rcsb":
        inputs["downloads"] = rules.download_batch.output.status.format(
            batch=wildcards.batch
        )
    return inputs


# On the cuda backend one process owns the GPU and solves entries of equal size in batches;
# otherwise one worker process per thread.
PROTEIN_GPU = int(config["anm"]["eigen_backend"] == "cuda")


def protein_jobs(wildcards, threads):
    return 1 if PROTEIN_GPU else threads


def protein_outputs():
    if not PDB["enabled"]:
        return []
    return [
        f"{RESULTS}/protein/proteins.tsv",
        f"{RESULTS}/protein/size_bins.tsv",
        f"{RESULTS}/protein/size_bins.md",
        f"{RESULTS}/protein/failures.tsv",
    ]


# ---------------------------------------------------------------- networks

DNN = config["dnn"]
# Network jobs ask a cluster for a GPU unless the config pins them to the CPU.
DNN_GPU = int(DNN["device"] != "cpu")
RUN_DIMS = (
    "model",
    "dataset",
    "optimizer",
    "batch_size",
    "n_train",
    "width",
    "depth",
    "seed",
    "epochs",
)
RUN_PATTERN = "{model}_{dataset}_{optimizer}_b{batch_size}_n{n_train}_w{width}_d{depth}_s{seed}_e{epochs}{labelset}"


def labelset(label_noise=None, labels=None):
    """The run-name suffix of the label dimensions: _ln0.2 (flipped fraction), _shuffled;
    empty when a sweep leaves them out (then dnn.training applies)."""
    noise = "" if label_noise is None else f"_ln{label_noise:g}"
    return noise + ("_shuffled" if labels == "shuffled" else "")


def run_name(wildcards):
    return RUN_PATTERN.format(**{d: wildcards[d] for d in (*RUN_DIMS, "labelset")})


def train_options(wildcards):
    """`train` flags: dnn.training, overridden by the run's label dimensions."""
    noise, shuffled = re.fullmatch(
        r"(?:_ln([0-9.]+))?(_shuffled)?", wildcards.labelset
    ).groups()
    settings = {"label_noise": float(noise)} if noise else {}
    if shuffled:
        settings["labels"] = "shuffled"
    return options(TRAINING_SETTINGS, **settings)


def dnn_runs():
    """Run name -> top-K, for every sweep combination and (optionally) its initialisation."""
    runs = {}
    for sweep in DNN["sweeps"]:
        k = sweep.get("k", DNN["spectrum"]["k"])
        dims = [sweep[d] for d in RUN_DIMS]
        dims += [sweep.get("label_noise", [None]), sweep.get("labels", [None])]
        for combo in itertools.product(*dims):
            spec = dict(zip(RUN_DIMS, combo))
            spec["labelset"] = labelset(*combo[len(RUN_DIMS) :])
            runs[RUN_PATTERN.format(**spec)] = k
            if DNN["random_init_control"]:
                runs[RUN_PATTERN.format(**{**spec, "epochs": 0})] = k
    return runs


DNN_RUNS = dnn_runs() if DNN["enabled"] else {}
VARIANTS = {variant["name"]: variant for variant in DNN["variants"]}
TRAINED_RUNS = [run for run in DNN_RUNS if not re.search(r"_e0(_|$)", run)]


def dnn_records(wildcards=None):
    return [f"{RESULTS}/dnn/spectra/{run}.json" for run in DNN_RUNS]


def dnn_spectra(wildcards=None):
    return [f"{RESULTS}/dnn/spectra/{run}.npy" for run in DNN_RUNS]


FIGURES = {
    "overlay": "Comparison",
    "protein_spectra": "Proteins",
    "protein_size_bins": "Proteins",
    "dnn_spectra": "Networks",
    "dnn_eigengaps": "Networks",
    "dnn_sweeps": "Networks",
}


def plot_outputs():
    """PNG (in the report, with its caption) and PDF of every figure."""
    outputs = []
    for name, category in FIGURES.items():
        if category == "Networks" and not DNN_RUNS:
            continue
        png = f"{RESULTS}/plots/{name}.png"
        caption = f"../report/{name}.rst"
        in_report = report(png, caption=caption, category=category)
        outputs += [in_report, f"{RESULTS}/plots/{name}.pdf"]
    return outputs


def comparison_outputs():
    if not PDB["enabled"]:
        return []
    return [
        f"{RESULTS}/comparison/comparison.tsv",
        f"{RESULTS}/comparison/comparison.md",
        f"{RESULTS}/comparison/comparison.html",
        f"{RESULTS}/plots/overlay.png",
    ]


def dnn_outputs():
    if not DNN_RUNS:
        return []
    blocks = [
        f"{RESULTS}/dnn/blocks/{run}.{ext}"
        for run in DNN_RUNS
        for ext in ("tsv", "png", "pdf")
        if DNN["spectrum"]["blocks"]
    ]
    return [f"{RESULTS}/dnn/dnn.tsv", f"{RESULTS}/dnn/dnn.md", *blocks]


def fidelity_inputs(wildcards=None):
    """Spectrum records (and their eigenvalues) of the trained runs: main and every variant."""
    stems = [f"{RESULTS}/dnn/spectra/{run}" for run in TRAINED_RUNS]
    stems += [
        f"{RESULTS}/dnn/variants/{v}/{run}" for v in VARIANTS for run in TRAINED_RUNS
    ]
    return {
        "records": [f"{s}.json" for s in stems],
        "spectra": [f"{s}.npy" for s in stems],
    }


def fidelity_outputs():
    if not (VARIANTS and TRAINED_RUNS):
        return []
    return [
        f"{RESULTS}/dnn/fidelity.tsv",
        f"{RESULTS}/dnn/fidelity.md",
        f"{RESULTS}/plots/fidelity.png",
        f"{RESULTS}/plots/fidelity.pdf",
    ]


# ---------------------------------------------------------------- curvature along training

CURVATURE = DNN["curvature"]
CURVATURE_DIMS = (*RUN_DIMS, "lr", "schedule")
CURVATURE_PATTERN = (
    "{model}_{dataset}_{optimizer}_lr{lr}_{schedule}_b{batch_size}_n{n_train}"
    "_w{width}_d{depth}_s{seed}_e{epochs}"
)


def curvature_runs():
    """Names of the curvature runs: every combination of every entry of dnn.curvature.runs."""
    runs = []
    for entry in CURVATURE["runs"]:
        for combo in itertools.product(*(entry[d] for d in CURVATURE_DIMS)):
            spec = dict(zip(CURVATURE_DIMS, combo))
            runs.append(CURVATURE_PATTERN.format(**{**spec, "lr": f"{spec['lr']:g}"}))
    return sorted(set(runs))


CURVATURE_RUNS = curvature_runs() if DNN["enabled"] else []


def curvature_metrics(wildcards=None):
    return [f"{RESULTS}/curvature/metrics/{run}.json" for run in CURVATURE_RUNS]


CURVATURE_FIGURES = (
    "curvature_trace",
    "curvature_lr",
    "curvature_negative",
    "curvature_noise",
)


def curvature_outputs():
    if not CURVATURE_RUNS:
        return []
    figures = [
        f"{RESULTS}/plots/{name}.{ext}"
        for name in CURVATURE_FIGURES
        for ext in ("png", "pdf")
    ]
    return [
        f"{RESULTS}/curvature/runs.tsv",
        f"{RESULTS}/curvature/curvature.md",
        *figures,
    ]


# ---------------------------------------------------------------- the noise study

NOISE = config["noise"]
TOY_RUN = "{valley}_{noise}_lr{lr}"


def _lr(value):
    return f"{value:g}"


def noise_toy_records(wildcards=None):
    toy = NOISE["toy"]
    names = [
        TOY_RUN.format(valley="trace", noise=noise, lr=_lr(lr))
        for noise in ("sgd", "isotropic", "none")
        for lr in toy["trace_lrs"]
    ]
    names += [
        TOY_RUN.format(
            valley="anticorrelated", noise=noise, lr=_lr(toy["anticorrelated_lr"])
        )
        for noise in ("sgd", "isotropic", "none")
    ]
    return [f"{RESULTS}/noise/toy/{name}.json" for name in names]


def noise_equilibrium_records(wildcards=None):
    eq = NOISE["equilibrium"]
    return [
        f"{RESULTS}/noise/equilibrium/b{size}_lr{_lr(lr)}.json"
        for size in eq["batch_sizes"]
        for lr in eq["lrs"]
    ]


def noise_trace_records(wildcards=None):
    tr = NOISE["trace"]
    runs = [(noise, lr) for noise in ("sgd", "gd") for lr in tr["lrs"]]
    runs += [(noise, tr["compare_lr"]) for noise in ("isotropic", "isotropic-topk")]
    if tr["compare_lr"] not in tr["lrs"]:
        runs += [(noise, tr["compare_lr"]) for noise in ("sgd", "gd")]
    return [
        f"{RESULTS}/noise/trace/{noise}_lr{_lr(lr)}_init{init}.json"
        for noise, lr in runs
        for init in tr["init_seeds"]
    ]


def noise_records(wildcards=None):
    return noise_toy_records() + noise_equilibrium_records() + noise_trace_records()


NOISE_TABLES = ("toy_trace_rate", "toy_anticorrelated", "negative_vs_loss")
NOISE_FIGURES = (
    "noise_toy_trace",
    "noise_toy_rate",
    "noise_anticorrelated",
    "noise_negative",
    "noise_trace",
)


def noise_outputs():
    if not NOISE["enabled"]:
        return []
    return [
        *(f"{RESULTS}/noise/{name}.tsv" for name in NOISE_TABLES),
        f"{RESULTS}/noise/noise.md",
        *(
            f"{RESULTS}/noise/{name}.{ext}"
            for name in NOISE_FIGURES
            for ext in ("png", "pdf")
        ),
    ]


# ---------------------------------------------------------------- the power-law study

REPRO = config["reproduction"]
EXPERIMENTS = {e["id"]: e for e in REPRO["experiments"]} if REPRO["enabled"] else {}
REPRO_DIR = f"{RESULTS}/reproduction"


def _flags(settings):
    """--option value for each setting (underscores become dashes), shell-quoted."""
    return " ".join(
        f"--{key.replace('_', '-')} {shlex.quote(str(value))}"
        for key, value in settings.items()
    )


def trained_experiment(experiment):
    """The experiment whose networks `experiment` uses (itself unless it reuses another's)."""
    return EXPERIMENTS[experiment].get("reuse") or experiment


def repro_train_options(wildcards):
    """`train` flags of an experiment: its train settings, the data root and the device."""
    settings = EXPERIMENTS[wildcards.experiment]["train"]
    common = options(("data_root", "device"))
    return f"{_flags(settings)} {common}"


def repro_spectrum_options(wildcards):
    """`dnn-spectrum` flags of an experiment: dnn.spectrum overridden by its spectrum settings."""
    settings = {
        ("spectrum_k" if key == "k" else key): value
        for key, value in EXPERIMENTS[wildcards.experiment]["spectrum"].items()
    }
    table = {
        key: value for key, value in settings.items() if key in COMMANDS["dnn-spectrum"]
    }
    extra = {key: value for key, value in settings.items() if key not in table}
    flags = options(COMMANDS["dnn-spectrum"], **table)
    return f"{flags} {_flags(extra)} {options(('data_root',))} --run {wildcards.experiment}_s{wildcards.seed}"


def repro_model(wildcards):
    source = trained_experiment(wildcards.experiment)
    return f"{REPRO_DIR}/models/{source}_s{wildcards.seed}.pt"


def repro_records(part=None):
    """Network record paths of every experiment (of one part)."""
    return [
        f"{REPRO_DIR}/records/{e['id']}_s{seed}.json"
        for e in EXPERIMENTS.values()
        if (part is None or e["part"] == part) and "protein" not in e
        for seed in e["seeds"]
    ]


def repro_proteins(part=None):
    """Protein table paths of the protein experiments (of one part)."""
    return [
        f"{REPRO_DIR}/proteins/{e['id']}.tsv"
        for e in EXPERIMENTS.values()
        if (part is None or e["part"] == part) and "protein" in e
    ]


def repro_part_records(wildcards):
    return repro_records(wildcards.part)


def repro_part_proteins(wildcards):
    return repro_proteins(wildcards.part)


def repro_protein_files(wildcards):
    return sorted(glob.glob(EXPERIMENTS[wildcards.experiment]["protein"]["files"]))


def repro_protein_options(wildcards):
    """`protein` flags of a protein experiment: the protein settings, its K if given."""
    k = EXPERIMENTS[wildcards.experiment]["protein"].get("k")
    return options(PROTEIN_SETTINGS, **({} if k is None else {"k": k}))


def repro_study_flag():
    """--study FILE when the config names one (else the command's bundled study values)."""
    return f"--study {shlex.quote(REPRO['study'])}" if REPRO["study"] else ""


check_experiments(REPRO["experiments"] if REPRO["enabled"] else [])


def reproduction_outputs():
    if not EXPERIMENTS:
        return []
    parts = sorted({e["part"] for e in EXPERIMENTS.values()})
    return [f"{REPRO_DIR}/parts/{part}.tsv" for part in parts] + [
        f"{REPRO_DIR}/reproduction.tsv",
        f"{REPRO_DIR}/reproduction.md",
    ]
