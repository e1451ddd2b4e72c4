"""The ``promkit`` command line.

Each subcommand group lives in a private module (``_cli_project``: init, generate and
generate-agent; ``_cli_serve``; ``_cli_report``; ``_cli_load``) whose
``add_<name>(subparsers)`` builds the subcommand's parser and sets ``handler`` with
``set_defaults``; :data:`SUBCOMMANDS` lists them, so a new subcommand is one function
and one entry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from promkit._version import __version__
from promkit.tools._cli_load import add_load
from promkit.tools._cli_project import add_generate, add_generate_agent, add_init
from promkit.tools._cli_report import add_report
from promkit.tools._cli_serve import add_serve
from promkit.tools._cli_usage import EXIT_USAGE, Subparsers, UsageError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    add_init, add_generate, add_generate_agent, add_serve, add_report, add_load,
]
"""The functions that add each subcommand's parser (each sets ``handler``)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promkit",
        allow_abbrev=False,
        description="Prometheus/OpenMetrics instrumentation kit for Python services.",
    )
    parser.add_argument("--version", action="version", version=f"promkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"promkit: error: {exc}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

