"""promkit's recording side: everything that measures inside a process.

The catalog declares the standard metrics; :class:`MetricsRegistry` records
them; the middleware, stage timers, job tracker, external-call wrappers,
resource sampler and queue collectors build on it. Correlation IDs, logging
and tracing tie the measurements of one request or job together.
"""

from promkit.instrument.catalog import STANDARD_CATALOG, Catalog, CatalogError, MetricSpec
from promkit.instrument.correlation import (
    bind_correlation_id,
    ensure_correlation_id,
    get_correlation_id,
    new_correlation_id,
)
from promkit.instrument.external import ExternalCall, external_call, instrument_httpx, record_retry
from promkit.instrument.jobs import JobRun, JobTracker
from promkit.instrument.logs import (
    TimestampRFC3339,
    add_correlation_context,
    add_trace_context,
    configure_logging,
    get_logger,
    redact_pii,
    render_json_line,
    sample_events,
)
from promkit.instrument.metrics import OVERFLOW_VALUE, Counter, Gauge, Histogram
from promkit.instrument.middleware import HttpMetricsMiddleware
from promkit.instrument.queues import (
    QueueSpec,
    dequeue,
    enqueue,
    send_webhook,
    work,
)
from promkit.instrument.registry import MetricsRegistry, default_registry
from promkit.instrument.resources import ResourceSampler
from promkit.instrument.stages import StageTimer, set_error_code_mapper, stage_timer
from promkit.instrument.tracing import current_trace_ids, start_span, tracing_active
from promkit.instrument.usage import (
    PriceTable,
    record_cpu_seconds,
    record_llm_tokens,
    record_usage,
    set_monthly_budgets,
)
from promkit.instrument.uvicorn_logging import uvicorn_log_config

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
    "ResourceSampler",
    "StageTimer",
    "TimestampRFC3339",
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
    "uvicorn_log_config",
    "work",
]
