"""Command-line interface: one subcommand per pipeline step, in one module per wing.

Options left unset take their value from `--config FILE` when given, else from the config
schema's defaults (the option table, `hessian_powerlaw.options`), so a step behaves the same
inside and outside Snakemake.
"""

import argparse
import shlex
import sys

from hessian_powerlaw import __version__
from hessian_powerlaw.cli import network, noise, protein, report
from hessian_powerlaw.config import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(
        prog="hessian-powerlaw",
        description="Power-law Hessian spectra of protein elastic networks and neural networks. "
        "Unset options come from --config FILE, else from the schema defaults.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for wing in (protein, network, noise, report):
        wing.register(sub)
    return parser


def portable_command(argv: list[str]) -> str:
    """The command line of `argv` with the value of --data-root written as "$DATA", so that it
    runs anywhere the data sets lie under $DATA (MNIST/, FashionMNIST/, ...)."""
    words, data_next = [], False
    for word in argv:
        if data_next:
            words.append('"$DATA"')
        elif word.startswith("--data-root="):
            words.append('--data-root="$DATA"')
        else:
            words.append(shlex.quote(word))
        data_next = word == "--data-root"
    return " ".join(["hessian-powerlaw", *words])


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit status (0 ok, 2 for a one-line error on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "hessian-powerlaw " + shlex.join(argv)
    args.portable_command = portable_command(argv)
    try:
        args.func(args)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        print(f"hessian-powerlaw {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
