"""promkit's export side: getting measurements out of a process.

``metrics_app`` is the ``/metrics`` ASGI endpoint (Prometheus text,
OpenMetrics with exemplars, JSON snapshot, gzip, optional bearer token);
multiprocess aggregation for gunicorn/uvicorn workers, the standalone server,
the Pushgateway client and the Redis queue collector live beside it.
"""

from promkit.exporters._asgi import MetricsApp, choose_format, metrics_app
from promkit.exporters._exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    render_json,
    render_openmetrics,
    render_text,
)
from promkit.exporters._multiprocess import (
    cleanup_dead_processes,
    mark_process_dead,
    multiprocess_exposition,
    multiprocess_json,
)
from promkit.exporters._push import PushError, push_metrics
from promkit.exporters._redis_collector import QueueReading, RedisQueueCollector
from promkit.exporters._server import (
    MetricsServer,
    ServerLimits,
    serve_metrics,
    start_metrics_server,
)

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "MetricsApp",
    "MetricsServer",
    "PushError",
    "QueueReading",
    "RedisQueueCollector",
    "ServerLimits",
    "choose_format",
    "cleanup_dead_processes",
    "mark_process_dead",
    "metrics_app",
    "multiprocess_exposition",
    "multiprocess_json",
    "push_metrics",
    "render_json",
    "render_openmetrics",
    "render_text",
    "serve_metrics",
    "start_metrics_server",
]
