"""The records the noise study's tables and figures accept: each experiment's keys, and the
checks that keep records of different networks, or one run given twice, out of one table."""

from collections.abc import Iterable

from hessian_powerlaw.report.noise import POINT_COLUMNS

# What the tables and figures read from each kind of record.
RECORD_KEYS = {
    "toy-valley": (
        "model",
        "noise",
        "lr",
        "repeats",
        "equilibrate_steps",
        "measure_steps",
        "trace_rate",
        "trace_rate_se",
        "predicted_trace_rate",
        "predicted_logdet_rate",
        "trace_change",
        "trace_change_se",
        "logdet_change",
        "logdet_change_se",
        "left_region",
        "trajectory",
    ),
    "equilibrium": POINT_COLUMNS,
    "trace-run": ("noise", "lr", "init_seed", "trace_rate", "trace_start", "trace_end", "history"),
}


def missing_keys(record: dict) -> list[str]:
    """The keys a record lacks for its experiment.

    Parameters
    ----------
    record : dict
        A record of `toy-valley`, `noise-equilibrium` or `noise-trace`.

    Returns
    -------
    list of str
        The missing keys of RECORD_KEYS; ['experiment (...)'] when it names no known experiment.
    """
    if not isinstance(record, dict) or record.get("experiment") not in RECORD_KEYS:
        return ["experiment (toy-valley, equilibrium or trace-run)"]
    return [key for key in RECORD_KEYS[record["experiment"]] if key not in record]


NETWORK = ("n_params", "n_train_used", "label_smoothing", "pool", "width")  # one network's settings
RUN_KEY = {
    "equilibrium": ("init_seed", "batch_size", "lr", "steps", "seed"),
    "trace-run": ("init_seed", "noise", "lr", "batch_size", "steps", "seed"),
}


def check_records(records: list[dict], paths: Iterable[str]) -> None:
    """Refuse records that would merge or count twice.

    Parameters
    ----------
    records : list of dict
        The noise study's records.
    paths : iterable of str
        Their files, named in errors.

    Raises
    ------
    ValueError
        When the network records (equilibrium, trace-run) come from different networks (their
        rows would merge) or one run appears twice (it would count as two samples).
    """
    networks, runs = {}, {}
    for record, path in zip(records, paths, strict=True):
        if record["experiment"] not in RUN_KEY:
            continue
        network = tuple(record.get(key) for key in NETWORK)
        networks.setdefault(network, path)
        run = (record["experiment"], *(record.get(key) for key in RUN_KEY[record["experiment"]]))
        if run in runs:
            raise ValueError(f"{path} repeats the run of {runs[run]}; each run counts once")
        runs[run] = path
    if len(networks) > 1:
        (a, first), (b, second) = list(networks.items())[:2]
        differ = ", ".join(f"{k} {x} vs {y}" for k, x, y in zip(NETWORK, a, b, strict=True) if x != y)
        raise ValueError(
            f"{first} and {second} come from different networks ({differ}); tabulate each network apart"
        )
