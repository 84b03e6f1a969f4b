"""Argument types, and the flags of the option table (`hessian_powerlaw.options`) for a command:
type, bounds, choices and help from the config schema, and their resolution (explicit option,
else `--config FILE`, else the schema default)."""

import argparse
import math

from hessian_powerlaw.config import ConfigError, defaults, load_config, validate
from hessian_powerlaw.options import COMMANDS, flag, schema_node, values, with_values


def number(text: str) -> float:
    """A finite float from a flag's text (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def integer(text: str, least: int | None = None, most: int | None = None) -> int:
    """An integer from a flag's text, within [least, most] where given (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    _bounds(value, text, least, most)
    return value


def positive(text: str) -> float:
    """A positive finite float (argparse type)."""
    value = number(text)
    _bounds(value, text, above=0)
    return value


def count(text: str) -> int:
    """A non-negative integer (argparse type)."""
    return integer(text, 0)


def positive_int(text: str) -> int:
    """A positive integer (argparse type)."""
    return integer(text, 1)


def k_value(text: str) -> float:
    """K of a protein fit: a fraction in (0, 1) of the non-zero modes, or an integer count."""
    value = number(text)
    if value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"K must be a fraction in (0, 1) or an integer count, got {text}")
    return value


def _bounds(value, text, least=None, most=None, above=None):
    if least is not None and value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text}")
    if above is not None and value <= above:
        raise argparse.ArgumentTypeError(f"must be > {above}, got {text}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"must be <= {most}, got {text}")


def _schema_type(node):
    """An argparse type function for a schema entry (integer or number, with its bounds)."""
    kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
    least, most, above = node.get("minimum"), node.get("maximum"), node.get("exclusiveMinimum")
    if "integer" in kinds:
        return lambda text: integer(text, least, most)
    if "number" in kinds:

        def bounded(text):
            value = number(text)
            _bounds(value, text, least, most, above)
            return value

        return bounded
    return str


TYPES = {"k": k_value}  # options whose check is more than the schema's bounds


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags of every table option of `command` (dest = option name, default None)."""
    for name in COMMANDS[command]:
        node = schema_node(name)
        default = node.get("default")
        text = node.get("description", "").strip()
        if node["type"] == "boolean":
            negate = default is True
            parser.add_argument(
                "--no-" + flag(name)[2:] if negate else flag(name),
                dest=name,
                action="store_false" if negate else "store_true",
                default=None,
                help=text or None,
            )
            continue
        kind = TYPES.get(name) or _schema_type(node)
        choices = node.get("enum")
        shown = "" if default in (None, "") else f" (default {default})"
        parser.add_argument(
            flag(name),
            dest=name,
            type=kind,
            choices=choices,
            metavar=None if choices else flag(name)[2:].upper().replace("-", "_"),
            default=None,
            help=(text + shown) if (text or shown) else None,
        )


def resolve(args: argparse.Namespace, command: str, names: list[str] | None = None) -> dict:
    """{name: value} of the command's table options: explicit options, then --config, then the
    schema defaults; the merged config is validated (cross-field checks included)."""
    names = names or COMMANDS[command]
    base = load_config(args.config) if getattr(args, "config", None) else defaults()
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if given:
        try:
            base = validate(with_values(base, given), source="options")
        except ConfigError as err:
            raise ConfigError(f"{command}: {err}") from None
    return values(base, names)


def config_arg(parser: argparse.ArgumentParser) -> None:
    """Add --config (a YAML file whose values fill the options left unset)."""
    parser.add_argument("--config", help="config YAML providing unset options")
