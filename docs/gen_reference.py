"""The reference pages that are generated, never written by hand: the command line (from the
argparse parser) and the configuration (from config.schema.yaml). Run by the docs build
(docs/hooks.py); `python docs/gen_reference.py` writes them too."""

import argparse
from pathlib import Path

from hessian_powerlaw.cli import build_parser
from hessian_powerlaw.config import load_schema
from hessian_powerlaw.options import TABLE, schema_node

DOCS = Path(__file__).resolve().parent


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(action):
    """The value an unset flag takes: argparse's default, else the schema's for a table option."""
    default = action.default
    if default is None and action.dest in TABLE:
        default = schema_node(action.dest).get("default")
    if default in (None, "", argparse.SUPPRESS) or default is False:
        return ""
    return f"`{default}`"


def _kind(action):
    if action.choices:
        return " \\| ".join(f"`{choice}`" for choice in action.choices)
    if action.nargs == 0:
        return "flag"
    if action.dest in TABLE:
        return _type(schema_node(action.dest))
    name = getattr(action.type, "__name__", "str")
    return {
        "str": "text",
        "count": "integer >= 0",
        "positive_int": "integer >= 1",
        "positive": "number > 0",
    }.get(name, name)


def _flag_rows(parser):
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = (
            ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
        )
        kind = _kind(action)
        required = " (required)" if action.required and action.option_strings else ""
        rows.append(f"| {names}{required} | {kind} | {_default(action)} | {_cell(action.help or '')} |")
    return rows


def cli_page():
    """Markdown: every subcommand, its usage and every flag with its default."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    lines = [
        "# Command line",
        "",
        "Generated from the argparse parser of `hessian-powerlaw` (`docs/gen_reference.py`). Options left",
        "unset take their value from `--config FILE`, else from the schema defaults (see",
        "[Configuration](config.md)).",
        "",
    ]
    for name, command in sub.choices.items():
        lines += [
            f"## `{name}`",
            "",
            _cell(helps.get(name, "")),
            "",
            "```text",
            command.format_usage().strip(),
        ]
        lines += ["```", "", "| flag | type or choices | default | what it does |", "|---|---|---|---|"]
        lines += _flag_rows(command)
        lines.append("")
    return "\n".join(lines)


def _type(node):
    kind = node.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        kind = f"list of {_type(node['items'])}"
    if "enum" in node:
        kind += ": " + ", ".join(f"`{v}`" for v in node["enum"])
    return kind


def _bounds(node):
    parts = []
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    items = node.get("items")
    if isinstance(items, dict):
        parts += [f"each {b}" for b in _bounds(items)]
    return parts


def _walk(node, path, rows):
    for key, child in node.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        default = child.get("default")
        shown = "" if default is None or isinstance(default, dict) else f"`{default}`"
        rows.append(
            f"| `{here}` | {_cell(_type(child))} | {', '.join(_bounds(child))} | {_cell(shown)} "
            f"| {_cell(child.get('description', ''))} |"
        )
        if child.get("type") == "object":
            _walk(child, here, rows)
        items = child.get("items")
        if isinstance(items, dict) and items.get("type") == "object":
            _walk(items, f"{here}[]", rows)


def config_page():
    """Markdown: every key of the schema with its type, bounds, default and description."""
    rows = []
    _walk(load_schema(), "", rows)
    return "\n".join(
        [
            "# Configuration",
            "",
            "Generated from `src/hessian_powerlaw/config.schema.yaml` (`docs/gen_reference.py`): every key,",
            "its type, bounds, default and description. `config.yaml` at the top of the repository sets",
            "the default run; `hessian-powerlaw check-config FILE` validates a file.",
            "",
            "| key | type | bounds | default | description |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def write_all():
    out = DOCS / "reference"
    out.mkdir(exist_ok=True)
    (out / "cli.md").write_text(cli_page())
    (out / "config.md").write_text(config_page())


if __name__ == "__main__":
    write_all()
