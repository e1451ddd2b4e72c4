"""The service's own view of a load step, read from Prometheus (``--prometheus``):
throughput, p95 and error ratio from the catalog's HTTP histogram, queue depth and oldest
item age from the queue gauges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from promkit.tools._load_config import LoadConfig
from promkit.tools._load_flows import LoadError


@dataclass
class ServerView:
    """What the service's own metrics (from Prometheus) say about one step."""

    window_seconds: int
    rps: float | None = None
    p95: float | None = None
    error_ratio: float | None = None
    queue_depth: float | None = None
    oldest_age: float | None = None
    error: str | None = None
    """Why the view could not be read (a failed query), else None."""

    def to_dict(self) -> dict[str, Any]:
        return {"window_seconds": self.window_seconds, "rps": self.rps,
                "p95_seconds": self.p95, "error_ratio": self.error_ratio,
                "queue_depth_max": self.queue_depth,
                "queue_oldest_age_seconds_max": self.oldest_age, "error": self.error}


def server_queries(window_seconds: int, job: str | None) -> dict[str, str]:
    """PromQL for a step's server view: the catalog's HTTP histogram and queue gauges."""
    from promkit.tools.report.queries import HTTP, selector

    w = f"{window_seconds}s"
    sel = selector(job)
    err = selector(job, 'http_response_status_class="5xx"')
    return {
        "rps": f"sum(rate({HTTP}_count{sel}[{w}]))",
        "p95": f"histogram_quantile(0.95, sum by (le) (rate({HTTP}_bucket{sel}[{w}])))",
        "error_ratio": f"(sum(rate({HTTP}_count{err}[{w}])) or vector(0)) / "
                       f"sum(rate({HTTP}_count{sel}[{w}]))",
        "queue_depth": f"max(max_over_time(queue_depth{sel}[{w}]))",
        "oldest_age": f"max(max_over_time(queue_oldest_item_age_seconds{sel}[{w}]))",
    }


def read_server_view(client: Any, window_seconds: int, job: str | None) -> ServerView:
    """The server view over the last ``window_seconds``; a failed query is noted, not raised."""
    from promkit.tools.report import PrometheusError

    view = ServerView(window_seconds)
    for name, expr in server_queries(window_seconds, job).items():
        try:
            samples = client.query(expr)
        except PrometheusError as exc:
            view.error = str(exc)
            return view
        value = samples[0].value if samples else None
        if value is not None and math.isfinite(value):
            setattr(view, name, value)
    return view


def prometheus_client(config: LoadConfig) -> Any:
    """A client for ``config.prometheus`` that answers and has the service's HTTP series."""
    if config.prometheus is None:
        return None
    from promkit.tools.report import PrometheusClient, PrometheusError
    from promkit.tools.report.queries import HTTP, selector

    try:
        client = PrometheusClient(config.prometheus, timeout=5.0)
        found = client.query(f"count({HTTP}_count{selector(config.prometheus_job)})")
    except PrometheusError as exc:
        raise LoadError(str(exc)) from None
    if not found:
        where = f" with job={config.prometheus_job!r}" if config.prometheus_job else ""
        raise LoadError(f"Prometheus at {config.prometheus} has no {HTTP} series{where}; "
                        "is it scraping the service (and is --prometheus-job right)?")
    return client
