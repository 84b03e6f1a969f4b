"""The option table: every command option that has a config key, declared once.

An option's type, bounds, choices, default and help come from the config schema at its path.
The command-line flags (`cli.flags`), the settings a step resolves (explicit option, else
`--config FILE`, else the schema default) and the workflow's option strings (`command_line`)
are all generated from this table: adding an option is one schema entry plus one line here
(and its name in `COMMANDS`).
"""

import copy
import functools
import shlex
from collections.abc import Iterable

from hessian_powerlaw.config import load_schema

# option name -> (config path, flag); the flag is --name-with-dashes unless given.
TABLE = {
    "source": (("pdb", "source"), None),
    "local": (("pdb", "local"), None),
    "cache": (("pdb", "cache"), None),
    "batch_size": (("pdb", "batch_size"), None),
    "min_residues": (("pdb", "min_residues"), None),
    "max_residues": (("pdb", "max_residues"), None),
    "query_url": (("pdb", "query", "url"), None),
    "method": (("pdb", "query", "method"), None),
    "max_resolution": (("pdb", "query", "max_resolution"), None),
    "polymer_types": (("pdb", "query", "polymer_types"), None),
    "identity_cutoff": (("pdb", "query", "identity_cutoff"), None),
    "rows_per_page": (("pdb", "query", "rows_per_page"), None),
    "max_entries": (("pdb", "query", "max_entries"), None),
    "base_url": (("pdb", "download", "base_url"), None),
    "workers": (("pdb", "download", "workers"), None),
    "retries": (("pdb", "download", "retries"), None),
    "timeout": (("pdb", "download", "timeout"), None),
    "cutoff": (("anm", "cutoff"), None),
    "gamma": (("anm", "gamma"), None),
    "zero_mode_tol": (("anm", "zero_mode_tol"), None),
    "disconnected": (("anm", "disconnected"), None),
    "eigen_backend": (("anm", "eigen_backend"), None),
    "k": (("fit", "k"), None),
    "compare": (("fit", "compare"), None),
    "bootstrap": (("fit", "bootstrap"), None),
    "bootstrap_seed": (("fit", "bootstrap_seed"), None),
    "data_root": (("dnn", "data_root"), None),
    "device": (("dnn", "device"), None),
    "lr": (("dnn", "training", "lr"), None),
    "weight_decay": (("dnn", "training", "weight_decay"), None),
    "normalization": (("dnn", "training", "normalization"), None),
    "label_noise": (("dnn", "training", "label_noise"), None),
    "labels": (("dnn", "training", "labels"), None),
    "label_smoothing": (("dnn", "training", "label_smoothing"), None),
    "spectrum_k": (("dnn", "spectrum", "k"), "--k"),
    "n_eval": (("dnn", "spectrum", "n_eval"), None),
    "solver": (("dnn", "spectrum", "solver"), None),
    "tol": (("dnn", "spectrum", "tol"), None),
    "dtype": (("dnn", "spectrum", "dtype"), None),
    "verify": (("dnn", "spectrum", "verify"), None),
    "slq_steps": (("dnn", "spectrum", "slq_steps"), None),
    "block_size": (("dnn", "spectrum", "block_size"), None),
    "hessian": (("dnn", "spectrum", "hessian"), None),
    "cache_gib": (("dnn", "spectrum", "cache_gib"), None),
    "weight_decay_term": (("dnn", "spectrum", "weight_decay_term"), None),
    "eval_split": (("dnn", "spectrum", "eval_split"), None),
    "eval_dataset": (("dnn", "spectrum", "eval_dataset"), None),
    "operator": (("dnn", "spectrum", "operator"), None),
    "gradient_batch": (("dnn", "spectrum", "gradient_batch"), None),
    "gap_k": (("dnn", "spectrum", "gap_k"), None),
    "trace_probes": (("dnn", "spectrum", "trace_probes"), None),
    "curvature_n_eval": (("dnn", "curvature", "n_eval"), None),
    "curvature_estimator": (("dnn", "curvature", "estimator"), None),
    "curvature_n_hvps": (("dnn", "curvature", "n_hvps"), None),
    "curvature_top_k": (("dnn", "curvature", "top_k"), None),
    "curvature_bottom_k": (("dnn", "curvature", "bottom_k"), None),
    "curvature_tol": (("dnn", "curvature", "tol"), None),
    "toy_repeats": (("noise", "toy", "repeats"), "--repeats"),
    "toy_equilibrate_steps": (("noise", "toy", "equilibrate_steps"), "--equilibrate-steps"),
    "toy_measure_steps": (("noise", "toy", "measure_steps"), "--measure-steps"),
    "toy_batch_size": (("noise", "toy", "batch_size"), "--batch-size"),
    "toy_data_size": (("noise", "toy", "data_size"), "--data-size"),
    "net_n_images": (("noise", "network", "n_images"), "--n-images"),
    "net_width": (("noise", "network", "width"), "--width"),
    "net_pool": (("noise", "network", "pool"), "--pool"),
    "net_label_smoothing": (("noise", "network", "label_smoothing"), "--label-smoothing"),
    "net_data_seed": (("noise", "network", "data_seed"), "--data-seed"),
    "minimum_epochs": (("noise", "network", "minimum_epochs"), "--epochs"),
    "minimum_lr": (("noise", "network", "minimum_lr"), "--lr"),
    "minimum_refine_steps": (("noise", "network", "minimum_refine_steps"), "--refine-steps"),
    "equilibrium_steps": (("noise", "equilibrium", "steps"), "--steps"),
    "equilibrium_every": (("noise", "equilibrium", "every"), "--every"),
    "trace_batch_size": (("noise", "trace", "batch_size"), "--batch-size"),
    "trace_steps": (("noise", "trace", "steps"), "--steps"),
    "trace_every": (("noise", "trace", "every"), "--every"),
    "trace_top_k": (("noise", "trace", "top_k"), "--top-k"),
    "trace_refresh": (("noise", "trace", "refresh"), "--refresh"),
    "trace_rate_from": (("noise", "trace", "rate_from"), "--rate-from"),
}

PROTEIN_SETTINGS = (
    "cutoff",
    "gamma",
    "k",
    "zero_mode_tol",
    "disconnected",
    "min_residues",
    "max_residues",
    "eigen_backend",
    "compare",
    "bootstrap",
    "bootstrap_seed",
)
TRAINING_SETTINGS = (
    "data_root",
    "device",
    "lr",
    "weight_decay",
    "normalization",
    "label_noise",
    "labels",
    "label_smoothing",
)
CURVATURE_SETTINGS = tuple(name for name in TABLE if name.startswith("curvature_"))

# command -> the table options it takes
COMMANDS = {
    "select": (
        "source",
        "local",
        "cache",
        "min_residues",
        "max_residues",
        "query_url",
        "method",
        "max_resolution",
        "polymer_types",
        "identity_cutoff",
        "rows_per_page",
        "max_entries",
    ),
    "download": ("batch_size", "cache", "base_url", "workers", "retries", "timeout"),
    "protein": ("batch_size", *PROTEIN_SETTINGS),
    "train": (*TRAINING_SETTINGS, *CURVATURE_SETTINGS),
    "dnn-spectrum": (
        "device",
        "spectrum_k",
        "n_eval",
        "solver",
        "tol",
        "dtype",
        "verify",
        "slq_steps",
        "block_size",
        "hessian",
        "cache_gib",
        "weight_decay_term",
        "bootstrap",
        "bootstrap_seed",
        "eval_split",
        "eval_dataset",
        "operator",
        "gradient_batch",
        "gap_k",
        "trace_probes",
    ),
    "toy-valley": (
        "toy_repeats",
        "toy_equilibrate_steps",
        "toy_measure_steps",
        "toy_batch_size",
        "toy_data_size",
    ),
    "noise-minimum": (
        "data_root",
        "net_n_images",
        "net_width",
        "net_pool",
        "net_label_smoothing",
        "net_data_seed",
        "minimum_epochs",
        "minimum_lr",
        "minimum_refine_steps",
    ),
    "noise-equilibrium": ("equilibrium_steps", "equilibrium_every"),
    "noise-trace": (
        "trace_batch_size",
        "trace_steps",
        "trace_every",
        "trace_top_k",
        "trace_refresh",
        "trace_rate_from",
    ),
}


def path(name: str) -> tuple[str, ...]:
    """The config path (tuple of keys) of option `name`."""
    return TABLE[name][0]


def flag(name: str) -> str:
    """The command-line flag of option `name`.

    Parameters
    ----------
    name : str
        An option of the table.

    Returns
    -------
    str
        The flag, e.g. ``--spectrum-k`` (the table's own flag where it names one).
    """
    return TABLE[name][1] or "--" + name.replace("_", "-")


@functools.cache
def _schema():
    return load_schema()


def schema_node(name: str) -> dict:
    """The config schema's entry for an option.

    Parameters
    ----------
    name : str
        An option of the table.

    Returns
    -------
    dict
        Its schema entry: type, bounds, enum, default, description.
    """
    node = _schema()
    for key in path(name):
        node = node["properties"][key]
    return node


def values(config: dict, names: Iterable[str]) -> dict:
    """The values of some options in a validated config.

    Parameters
    ----------
    config : dict
        A validated configuration.
    names : iterable of str
        Options of the table.

    Returns
    -------
    dict
        {name: value}, each read at the option's config path.
    """
    out = {}
    for name in names:
        value = config
        for key in path(name):
            value = value[key]
        out[name] = value
    return out


def with_values(config: dict, settings: dict) -> dict:
    """A copy of `config` with some options set.

    Parameters
    ----------
    config : dict
        A configuration (not changed).
    settings : dict
        {option name: value}, each set at the option's config path.

    Returns
    -------
    dict
        The changed copy (not validated).
    """
    config = copy.deepcopy(config)
    for name, value in settings.items():
        *parents, leaf = path(name)
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config


def command_line(settings: dict) -> str:
    """The flags that give these {option name: value} settings to a command, shell-quoted.

    A boolean becomes its flag when it differs from the schema default (`--verify`,
    `--no-compare`); None and empty strings are left out (the command's default applies).
    A name outside the option table (a command's own flag, e.g. `model`) becomes --name with
    underscores as dashes, a true boolean its bare flag."""
    parts = []
    for name, value in settings.items():
        default = schema_node(name).get("default", False) if name in TABLE else False
        text = flag(name) if name in TABLE else "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value != default:
                parts.append(text if value else "--no-" + text[2:])
        elif value is not None and value != "":
            parts += [text, shlex.quote(str(value))]
    return " ".join(parts)
