"""Where multiprocess mode keeps its files: the directory named by the environment.

Below both the registry (which switches multiprocess mode on when it is set)
and the multiprocess exemplar store (which writes beside the mmap files), so
neither has to import the other for it.
"""

from __future__ import annotations

import os

__all__ = ["multiprocess_dir"]


def multiprocess_dir() -> str | None:
    """The multiprocess directory from the environment, or None."""
    # The lower-case name is prometheus-client's deprecated spelling, still honoured.
    legacy = os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or legacy
