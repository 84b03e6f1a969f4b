"""Configuration: one JSON schema for the workflow and the command line."""

import copy
import functools
import math
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    """An invalid configuration, with a message naming the offending key."""


def load_schema() -> dict:
    """The configuration schema (JSON Schema, read from the package's ``config.schema.yaml``).

    Returns
    -------
    dict
        A fresh copy: callers may change it.
    """
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema():
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate(config: dict, source: str = "config") -> dict:
    """Validate `config` in place, filling in defaults.

    Parameters
    ----------
    config : dict
        A configuration as read from YAML; changed in place (defaults added).
    source : str
        What to name in errors (the file, or 'options').

    Returns
    -------
    dict
        `config` itself, validated and complete.

    Raises
    ------
    ConfigError
        One line naming `source` and the offending key (schema and cross-field checks).
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    _check_finite(config, source)
    validator = _validator()
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {where}: {err.message}")
    _check_consistency(config, source)
    return config


@functools.cache
def _validator():
    return _with_defaults(jsonschema.Draft202012Validator)(_parsed_schema())


def _check_finite(value, source, where=()):
    """NaN and inf pass JSON-schema bounds (every comparison with NaN is false): refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"{source}: {'.'.join(map(str, where)) or '(top level)'}: {value} is not a finite number"
        )
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _check_finite(item, source, (*where, key))


def _check_consistency(config, source):
    results = config["results"]
    if results.startswith("/") or ".." in Path(results).parts:
        raise ConfigError(
            f"{source}: results: {results!r} leads outside the working directory; "
            "use a relative path below it"
        )
    pdb = config["pdb"]
    if pdb["min_residues"] > pdb["max_residues"]:
        raise ConfigError(f"{source}: pdb.min_residues is larger than pdb.max_residues")
    k = config["fit"]["k"]
    if k >= 1 and k != int(k):
        raise ConfigError(f"{source}: fit.k: a count must be an integer, got {k}")
    check_experiments(config["reproduction"]["experiments"], source)


def check_experiments(experiments: list[dict], source: str = "config") -> None:
    """One-line errors for reproduction experiments that cannot run: a repeated id, a `reuse`
    that names no network experiment holding its seeds, a network experiment with both or
    neither of `train` and `reuse`, a protein experiment with network settings."""
    by_id = {}
    for e in experiments:
        if e["id"] in by_id:
            raise ConfigError(f"{source}: reproduction.experiments: id {e['id']!r} appears twice")
        by_id[e["id"]] = e
    for e in experiments:
        where = f"{source}: reproduction.experiments: {e['id']}"
        if "protein" in e:
            if e.get("reuse") or e["train"] or e["spectrum"]:
                raise ConfigError(f"{where}: a protein experiment takes no train, spectrum or reuse")
            continue
        if "reuse" in e:
            source_experiment = by_id.get(e["reuse"])
            if source_experiment is None or "protein" in source_experiment or "reuse" in source_experiment:
                raise ConfigError(f"{where}: reuse {e['reuse']!r} names no experiment that trains networks")
            if e["train"]:
                raise ConfigError(f"{where}: give train settings or reuse, not both")
            missing = sorted(set(e["seeds"]) - set(source_experiment["seeds"]))
            if missing:
                raise ConfigError(f"{where}: seeds {missing} are not among {e['reuse']}'s")
        elif not e["train"]:
            raise ConfigError(f"{where}: give its train settings (or reuse another experiment's networks)")


MAX_CONFIG_BYTES = 1 << 20


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file.

    The file may hold at most 1 MiB and no YAML aliases (a 'billion laughs' document is refused
    before it expands); keys it leaves out get the schema's defaults.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    dict
        The validated configuration, defaults filled in.

    Raises
    ------
    ConfigError
        One line naming the file and the key that is wrong, or why the file cannot be read.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB, not a config file")
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read ({err})") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"{path}: YAML aliases (*name) are not allowed in a config")
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if config is None:  # an empty file: every default
        config = {}
    if not isinstance(config, dict):
        kind = "list" if isinstance(config, list) else type(config).__name__
        raise ConfigError(f"{path}: a config is a mapping of sections (pdb:, dnn:, ...), not a YAML {kind}")
    return validate(config, source=str(path))


def defaults() -> dict:
    """The configuration with every default filled in.

    Returns
    -------
    dict
        The validated configuration of an empty file: every key of the schema at its default.
    """
    return validate({}, source="defaults")
