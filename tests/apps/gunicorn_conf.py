"""gunicorn settings for multiprocess tests: the hooks docs/multiprocess.md recommends.

Used as ``gunicorn --config python:gunicorn_conf`` (tests/apps on PYTHONPATH).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from promkit.exporters import mark_process_dead


def on_starting(server: Any) -> None:
    # Runs once in the arbiter before any worker: values left by an earlier
    # run would otherwise be summed into this one.
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # mmap value files and the exemplar files beside them
    for pattern in ("*.db", "exemplars_*"):
        for name in glob.glob(os.path.join(path, pattern)):
            os.remove(name)


def child_exit(server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)
