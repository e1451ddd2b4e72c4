"""What every ``promkit`` subcommand module shares with :mod:`promkit.tools.cli`: the type
of the subparsers it adds its parser to, and :class:`UsageError`, the bad argument or
setting ``main`` prints as one line with exit code 2."""

from __future__ import annotations

import argparse
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or setting: printed as ``promkit: error: ...``, exit code 2."""
