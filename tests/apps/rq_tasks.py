"""Task functions for the RQ test: importable by RQ's worker, recorded by a JobTracker."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import get_correlation_id
from promkit.instrument.jobs import JobTracker

REGISTRY = MetricsRegistry(CollectorRegistry())
tracker = JobTracker(REGISTRY, queue="pdf")
seen: list[dict[str, Any]] = []  # what each run saw (SimpleWorker runs them in this process)


class RenderError(Exception):
    pass


@tracker.job()
def render(pages: int) -> int:
    """Takes only its own argument: promkit's fields are taken out of the kwargs."""
    seen.append({"task": "render", "pages": pages, "correlation_id": get_correlation_id()})
    if pages < 0:
        raise RenderError("negative page count")
    return pages * 2


@tracker.job("ocr")
def ocr(pages: int, job_id: str) -> str:
    """Names job_id as a parameter, so it is passed through."""
    seen.append({"task": "ocr", "job_id": job_id, "correlation_id": get_correlation_id()})
    return job_id
