import glob
import os
import shlex
import sys
from pathlib import Path
from snakemake.utils import validate

from hessian_powerlaw import plan
from hessian_powerlaw.config import check_experiments
from hessian_powerlaw.options import (
    COMMANDS,
    PROTEIN_SETTINGS,
    TRAINING_SETTINGS,
    command_line,
    values,
)

validate(config, schema="../schemas/config.schema.yaml")
check_experiments(
    config["reproduction"]["experiments"] if config["reproduction"]["enabled"] else []
)


envvars:
    "PATH",


# Jobs find `hessian-powerlaw` next to the Python running Snakemake (e.g. .venv/bin) even when
# that environment is not activated; a conda job environment still comes first.
os.environ["PATH"] = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
)

RESULTS = config["results"]
PDB = config["pdb"]
DNN = config["dnn"]
CURVATURE = DNN["curvature"]
NOISE = config["noise"]
REPRO_DIR = f"{RESULTS}/reproduction"
# On the cuda backend one process owns the GPU; network jobs ask a cluster for a GPU unless
# the config pins them to the CPU.
PROTEIN_GPU = int(config["anm"]["eigen_backend"] == "cuda")
DNN_GPU = int(DNN["device"] != "cpu")
# a spectrum job on several devices runs its command under torchrun (data-parallel products)
SPECTRUM_GPUS = DNN["spectrum_gpus"]
SPECTRUM_COMMAND = (
    f"torchrun --standalone --nproc_per_node {SPECTRUM_GPUS} -m hessian_powerlaw"
    if SPECTRUM_GPUS > 1
    else "hessian-powerlaw"
)
DNN_RUNS = plan.dnn_runs(config)
VARIANTS = {variant["name"]: variant for variant in DNN["variants"]}
EXPERIMENTS = plan.experiments(config)


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


def options(names, **settings):
    """The flags of the option table's `names`, from the config (overridden by `settings`)."""
    return command_line({**values(config, names), **settings})


def final_outputs():
    """Every target of the default rule (hessian_powerlaw.plan.final_outputs)."""
    return plan.final_outputs(config)
