"""The ``promkit`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from instrument._version import __version__

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promkit",
        description="Prometheus/OpenMetrics instrumentation kit for Python services.",
    )
    parser.add_argument("--version", action="version", version=f"promkit {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
