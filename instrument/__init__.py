"""promkit's recording side: everything that measures inside a process.

The catalog declares the standard metrics; :class:`MetricsRegistry` records
them; the middleware, stage timers, job tracker, external-call wrappers,
resource sampler and queue collectors build on it. Correlation IDs, logging
and tracing tie the measurements of one request or job together.
"""

from instrument._metrics import OVERFLOW_VALUE, Counter, Gauge, Histogram
from instrument._version import __version__
from instrument.catalog import STANDARD_CATALOG, Catalog, CatalogError, MetricSpec
from instrument.correlation import (
    bind_correlation_id,
    ensure_correlation_id,
    get_correlation_id,
    new_correlation_id,
)
from instrument.external import ExternalCall, external_call, instrument_httpx, record_retry
from instrument.jobs import JobRun, JobTracker
from instrument.logs import (
    TimestampRFC3339,
    add_correlation_context,
    add_trace_context,
    configure_logging,
    get_logger,
    redact_pii,
    render_json_line,
    sample_events,
)
from instrument.middleware import HttpMetricsMiddleware
from instrument.queues import (
    QueueSpec,
    RedisQueueCollector,
    dequeue,
    enqueue,
    send_webhook,
    work,
)
from instrument.registry import MetricsRegistry, default_registry
from instrument.resources import ResourceSampler
from instrument.stages import StageTimer, set_error_code_mapper, stage_timer
from instrument.tracing import current_trace_ids, start_span, tracing_active
from instrument.usage import (
    PriceTable,
    record_cpu_seconds,
    record_llm_tokens,
    record_usage,
    set_monthly_budgets,
)

__all__ = [
    "OVERFLOW_VALUE",
    "STANDARD_CATALOG",
    "Catalog",
    "CatalogError",
    "Counter",
    "ExternalCall",
    "Gauge",
    "Histogram",
    "HttpMetricsMiddleware",
    "JobRun",
    "JobTracker",
    "MetricSpec",
    "MetricsRegistry",
    "PriceTable",
    "QueueSpec",
    "RedisQueueCollector",
    "ResourceSampler",
    "StageTimer",
    "TimestampRFC3339",
    "__version__",
    "add_correlation_context",
    "add_trace_context",
    "bind_correlation_id",
    "configure_logging",
    "current_trace_ids",
    "default_registry",
    "dequeue",
    "enqueue",
    "ensure_correlation_id",
    "external_call",
    "get_correlation_id",
    "get_logger",
    "instrument_httpx",
    "new_correlation_id",
    "record_cpu_seconds",
    "record_llm_tokens",
    "record_retry",
    "record_usage",
    "redact_pii",
    "render_json_line",
    "sample_events",
    "send_webhook",
    "set_error_code_mapper",
    "set_monthly_budgets",
    "stage_timer",
    "start_span",
    "tracing_active",
    "work",
]
