"""The promkit dashboards, declared as data from the catalog's metrics and the rules.

Panels read the recording rules of ``prometheus/rules/`` (named
``level:metric:operations``; see :mod:`.rules`) where one exists for what they
show: RED by route, latency quantiles, SLO error ratios and budget, cost and
the CPU-hours budget. Where a rule drops a label the panel needs (``instance``,
``error_code``, status code) or none is defined, the panel queries the raw
catalog metric. Every selector carries ``service="$service"``; template
variables ``$route``, ``$stage`` and ``$instance`` are regexes (All = ``.*``).
"""

from __future__ import annotations

from promkit.tools.generate._burn import BURN_WINDOWS, burn_factor
from promkit.tools.generate._durations import format_duration, parse_duration
from promkit.tools.generate._grafana_model import (
    DashboardSpec,
    PanelSpec,
    RowSpec,
    TargetSpec,
    VariableSpec,
)
from promkit.tools.generate._promql import num
from promkit.tools.generate.config import Config

__all__ = ["ALERT_PANELS", "dashboard_specs"]

SVC = 'service="$service"'
ROUTE = 'http_route=~"$route"'
STAGE = 'stage=~"$stage"'
INSTANCE = 'instance=~"$instance"'
RATE = "[$__rate_interval]"
QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))

ALERT_PANELS: dict[str, tuple[str, str]] = {
    "HTTPErrorRatioHigh": ("promkit-service-overview", "error-ratio-by-route"),
    "HTTP5xxRateHigh": ("promkit-service-overview", "top-failing-routes"),
    "HTTPLatencyP95High": ("promkit-service-overview", "latency-by-route"),
    "TargetDown": ("promkit-self", "targets-up"),
    "QueueDepthHigh": ("promkit-jobs", "queue-depth"),
    "QueueOldestItemTooOld": ("promkit-jobs", "queue-oldest-age"),
    "QueueReadFailing": ("promkit-jobs", "queue-up"),
    "DiskUsageHigh": ("promkit-resources", "disk-used"),
    "AuthFailureSpike": ("promkit-service-overview", "auth-attempts"),
    "StageFailureRatioHigh": ("promkit-jobs", "stage-failure-ratio"),
    "ExternalErrorRatioHigh": ("promkit-external-cost", "external-error-ratio"),
    "ExternalLatencyP95High": ("promkit-external-cost", "external-latency"),
    "LLMLatencyP95High": ("promkit-external-cost", "llm-latency"),
    "JobLatencyP95High": ("promkit-jobs", "job-latency-quantiles"),
    "CPUBudgetBurn": ("promkit-external-cost", "cpu-hours-month"),
    "CPUBudgetExhausted": ("promkit-external-cost", "cpu-hours-month"),
    "PromkitInstrumentationErrors": ("promkit-self", "instrumentation-errors"),
    "PromkitSeriesOverflow": ("promkit-self", "series-overflow"),
    "SLOBurnRatePage": ("promkit-slos", "burn-rate-page"),
    "SLOBurnRateTicket": ("promkit-slos", "burn-rate-ticket"),
    "SLOMetricAbsent": ("promkit-slos", "sli-events"),
}
"""Alert name -> (dashboard uid, panel key) of the panel that shows what fired."""


def _sel(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join((SVC, *matchers))}}}"


def _t(expr: str, legend: str = "", **kw: bool) -> TargetSpec:
    return TargetSpec(expr=expr, legend=legend, **kw)


def _raw_quantile(metric: str, q: str, by: str, *matchers: str) -> str:
    """A quantile from the raw buckets (exemplars attach to these series)."""
    labels = f"{by}, le" if by else "le"
    inner = f"sum by ({labels}) (rate({_sel(metric + '_bucket', *matchers)}{RATE}))"
    return f"histogram_quantile({q}, {inner})"


def _rule_quantiles(rule_base: str, legend: str, *matchers: str) -> list[TargetSpec]:
    return [_t(_sel(f"{rule_base}:{name}_5m", *matchers), f"{name} {legend}".strip())
            for name, _ in QUANTILES]


def _variables(config: Config, *names: str) -> tuple[VariableSpec, ...]:
    known = {
        "service": VariableSpec("service", "Service", "label_values(up, service)",
                                default=config.service),
        "instance": VariableSpec("instance", "Instance", f"label_values(up{{{SVC}}}, instance)",
                                 multi=True),
        "route": VariableSpec(
            "route", "Route",
            f"label_values(http_server_request_duration_seconds_count{{{SVC}}}, http_route)",
            multi=True),
        "stage": VariableSpec(
            "stage", "Stage", f"label_values(job_stage_duration_seconds_count{{{SVC}}}, stage)",
            multi=True),
    }
    return tuple(known[name] for name in names)


_FIRING = ("Firing alerts", f'ALERTS{{{SVC}, alertstate="firing"}}')


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


# -- Service overview ------------------------------------------------------------------------


def _service_overview(config: Config) -> DashboardSpec:
    t = config.thresholds
    http = "http_server_request_duration_seconds"
    by_route = "{{http_request_method}} {{http_route}}"
    stats = RowSpec("Now", (
        PanelSpec("requests-rate", "Requests per second",
                  "HTTP requests per second over 5 minutes, all routes "
                  "(service:http_requests:rate5m).", "reqps",
                  (_t(_sel("service:http_requests:rate5m"), "requests/s", instant=True),),
                  kind="stat", width=6, height=4),
        PanelSpec("error-ratio", "Error ratio (5xx)",
                  "Share of HTTP requests answered 5xx over 5 minutes "
                  f"(service:http_error_ratio:ratio_rate5m); alert above "
                  f"{_pct(t.http_error_ratio)}.", "percentunit",
                  (_t(_sel("service:http_error_ratio:ratio_rate5m"), "5xx ratio", instant=True),),
                  kind="stat", width=6, height=4, decimals=2,
                  thresholds=((t.http_error_ratio / 2, "orange"), (t.http_error_ratio, "red"))),
        PanelSpec("latency-p95", "Latency p95",
                  "95th percentile of request duration over 5 minutes, all routes "
                  f"(service:{http}:p95_5m); alert per route above {t.http_p95_seconds:g}s.",
                  "s", (_t(_sel(f"service:{http}:p95_5m"), "p95", instant=True),),
                  kind="stat", width=6, height=4,
                  thresholds=((t.http_p95_seconds, "red"),)),
        PanelSpec("in-flight-total", "Requests in flight",
                  "HTTP requests being served now, summed over the selected instances "
                  "(http_server_active_requests).", "short",
                  (_t(f"sum({_sel('http_server_active_requests', INSTANCE)})", "in flight",
                      instant=True),),
                  kind="stat", width=6, height=4),
    ))
    red = RowSpec("Rate, errors, duration by route", (
        PanelSpec("requests-by-route", "Requests per second by route",
                  "HTTP requests per second over 5 minutes by method and route template "
                  "(service_route:http_requests:rate5m).", "reqps",
                  (_t(_sel("service_route:http_requests:rate5m", ROUTE), by_route),),
                  width=8),
        PanelSpec("error-ratio-by-route", "Error ratio by route (5xx)",
                  "Share of requests answered 5xx over 5 minutes by route "
                  "(service_route:http_error_ratio:ratio_rate5m); only routes that answered "
                  f"a 5xx have a line. The service alert fires above "
                  f"{_pct(t.http_error_ratio)}.", "percentunit",
                  (_t(_sel("service_route:http_error_ratio:ratio_rate5m", ROUTE), by_route),),
                  width=8, min=0, thresholds=((t.http_error_ratio, "red"),)),
        PanelSpec("latency-by-route", "Latency p50 / p95 / p99 by route",
                  "Request duration quantiles over 5 minutes by route "
                  f"(service_route:{http}:p50_5m, p95_5m, p99_5m), and the p99 of the "
                  "selected routes together from the raw buckets with exemplars (click a "
                  "dot for its trace ID).", "s",
                  (*_rule_quantiles(f"service_route:{http}", by_route, ROUTE),
                   _t(_raw_quantile(http, "0.99", "", ROUTE), "p99 selected routes",
                      exemplar=True)),
                  width=8, thresholds=((t.http_p95_seconds, "red"),)),
    ))
    top = RowSpec("Top routes and status codes", (
        PanelSpec("top-slow-routes", "Top 10 slow routes (p95)",
                  "The ten routes with the highest 95th percentile duration over 5 minutes "
                  f"(service_route:{http}:p95_5m).", "s",
                  (_t(f"topk(10, {_sel(f'service_route:{http}:p95_5m', ROUTE)})", by_route,
                      instant=True),),
                  kind="bargauge", width=8, thresholds=((t.http_p95_seconds, "red"),)),
        PanelSpec("top-failing-routes", "Top 10 failing routes (5xx per second)",
                  "The ten routes answering the most 5xx per second over 5 minutes "
                  f"(service_route:http_errors:rate5m); the service alert fires above "
                  f"{t.http_5xx_rate:g}/s.", "reqps",
                  (_t(f"topk(10, {_sel('service_route:http_errors:rate5m', ROUTE)})", by_route,
                      instant=True),),
                  kind="bargauge", width=8),
        PanelSpec("status-codes", "Responses by status code",
                  "Responses per second by HTTP status code, stacked (raw "
                  f"{http}_count: no recording rule keeps the code).", "reqps",
                  (_t(f"sum by (http_response_status_code) "
                      f"(rate({_sel(http + '_count', ROUTE)}{RATE}))",
                      "{{http_response_status_code}}"),),
                  width=8, stacked=True),
    ))
    more = RowSpec("Concurrency, exceptions, auth", (
        PanelSpec("in-flight", "Requests in flight by instance",
                  "HTTP requests being served now, per instance and method "
                  "(http_server_active_requests).", "short",
                  (_t(f"sum by (instance, http_request_method) "
                      f"({_sel('http_server_active_requests', INSTANCE)})",
                      "{{instance}} {{http_request_method}}"),),
                  width=8, min=0),
        PanelSpec("unhandled-exceptions", "Unhandled exceptions per second",
                  "Exceptions that escaped the application (answered 500) by route and type "
                  "(service_route:http_server_unhandled_exceptions:rate5m).", "cps",
                  (_t(_sel("service_route:http_server_unhandled_exceptions:rate5m", ROUTE),
                      "{{http_route}} {{error_type}}"),),
                  width=8, min=0),
        PanelSpec("auth-attempts", "Auth attempts by type and outcome",
                  "Authentication attempts per second by type and outcome "
                  "(service_auth:auth_attempts:rate5m); the alert fires above "
                  f"{t.auth_failures_15m:g} failures in 15 minutes.", "cps",
                  (_t(_sel("service_auth:auth_attempts:rate5m"), "{{auth_type}} {{outcome}}"),),
                  width=8, min=0, stacked=True),
    ))
    payloads = RowSpec("Payloads and disconnects", (
        PanelSpec("request-size", "Request body size p95 by route",
                  "95th percentile of request body sizes over 5 minutes by route "
                  "(service_route:http_server_request_body_size_bytes:p95_5m).", "bytes",
                  (_t(_sel("service_route:http_server_request_body_size_bytes:p95_5m", ROUTE),
                      by_route),),
                  width=8, min=0),
        PanelSpec("response-size", "Response body size p95 by route",
                  "95th percentile of response body sizes over 5 minutes by route "
                  "(service_route:http_server_response_body_size_bytes:p95_5m).", "bytes",
                  (_t(_sel("service_route:http_server_response_body_size_bytes:p95_5m", ROUTE),
                      by_route),),
                  width=8, min=0),
        PanelSpec("client-disconnects", "Client disconnects per second by route",
                  "Requests whose client went away before the response was complete, per "
                  "second (service_route:http_server_client_disconnects:rate5m): timeouts "
                  "on the client side, or users giving up on a slow route.", "cps",
                  (_t(_sel("service_route:http_server_client_disconnects:rate5m", ROUTE),
                      by_route),),
                  width=8, min=0),
    ))
    return DashboardSpec(
        "promkit-service-overview", "service-overview.json", "promkit / Service overview",
        "RED metrics of the HTTP service: rate, errors and duration by route, top slow and "
        "failing routes, status codes, in-flight requests, payload sizes, client disconnects.",
        _variables(config, "service", "route", "instance"), (stats, red, top, more, payloads),
        annotations=(_FIRING,))


# -- WebSockets --------------------------------------------------------------------------------


def _websockets(config: Config) -> DashboardSpec:
    ws = "{{http_route}}"
    connections = RowSpec("Connections", (
        PanelSpec("ws-open", "Open connections",
                  "WebSocket connections open now, all routes "
                  "(service_route:websocket_server_active_connections:sum).", "short",
                  (_t(f"sum({_sel('service_route:websocket_server_active_connections:sum')})",
                      "open", instant=True),),
                  kind="stat", width=6, height=8),
        PanelSpec("ws-open-by-route", "Open connections by route",
                  "WebSocket connections open per route "
                  "(service_route:websocket_server_active_connections:sum).", "short",
                  (_t(_sel("service_route:websocket_server_active_connections:sum"), ws),),
                  width=9, min=0, stacked=True),
        PanelSpec("ws-session-duration", "Session duration p95 by route",
                  "95th percentile of the duration of WebSocket sessions that ended in the "
                  "last 5 minutes "
                  "(service_route:websocket_server_session_duration_seconds:p95_5m).", "s",
                  (_t(_sel("service_route:websocket_server_session_duration_seconds:p95_5m"),
                      ws),),
                  width=9, min=0),
    ))
    traffic = RowSpec("Messages and closes", (
        PanelSpec("ws-messages", "Messages per second by route and direction",
                  "WebSocket messages per second, received from clients and sent to them "
                  "(service_route:websocket_server_messages:rate5m).", "cps",
                  (_t(_sel("service_route:websocket_server_messages:rate5m"),
                      "{{http_route}} {{direction}}"),),
                  width=12, min=0),
        PanelSpec("ws-closes", "Closes per second by close code",
                  "Sessions closed per second by route and WebSocket close code "
                  "(service_route:websocket_server_closes:rate5m): 1000 normal, 1001 going "
                  "away, 1006 dropped without a close frame, 1011 server error.", "cps",
                  (_t(_sel("service_route:websocket_server_closes:rate5m"),
                      "{{http_route}} {{close_code}}"),),
                  width=12, min=0, stacked=True),
        PanelSpec("ws-close-reasons", "Close reasons, last hour",
                  "Sessions closed in the last hour by close code, all routes: what ends "
                  "the sessions (service_route:websocket_server_closes:rate5m, averaged).",
                  "short",
                  (_t(f"sum by (close_code) (avg_over_time("
                      f"{_sel('service_route:websocket_server_closes:rate5m')}[1h])) * 3600",
                      "{{close_code}}", instant=True),),
                  kind="bargauge", width=24, height=6),
    ))
    return DashboardSpec(
        "promkit-websockets", "websockets.json", "promkit / WebSockets",
        "WebSocket health: open connections, session duration, messages by direction, "
        "closes by close code.",
        _variables(config, "service"), (connections, traffic), annotations=(_FIRING,))


# -- Database ----------------------------------------------------------------------------------


def _database(config: Config) -> DashboardSpec:
    op = "{{db_system_name}} {{db_operation_name}}"
    db = "db_client_operation_duration_seconds"
    ops = RowSpec("Operations", (
        PanelSpec("db-ops-total", "Operations per second",
                  "Database operations per second, all systems and operations "
                  "(service_db:db_client_operations:rate5m).", "ops",
                  (_t(f"sum({_sel('service_db:db_client_operations:rate5m')})", "ops/s",
                      instant=True),),
                  kind="stat", width=6, height=8),
        PanelSpec("db-ops", "Operations per second by operation",
                  "Database operations per second by system and operation "
                  "(service_db:db_client_operations:rate5m).", "ops",
                  (_t(_sel("service_db:db_client_operations:rate5m"), op),),
                  width=18, min=0, stacked=True),
        PanelSpec("db-latency", "Operation latency p50 / p95 / p99",
                  f"Duration of database operations over 5 minutes (service_db:{db}:p50_5m, "
                  "p95_5m, p99_5m), and the p99 from the raw buckets with exemplars.", "s",
                  (*_rule_quantiles(f"service_db:{db}", op),
                   _t(_raw_quantile(db, "0.99", "db_system_name, db_operation_name"),
                      "p99 raw " + op, exemplar=True)),
                  width=12, min=0),
        PanelSpec("db-slowest", "Slowest operations (p95)",
                  f"The ten operations with the highest 95th percentile duration over 5 "
                  f"minutes (service_db:{db}:p95_5m).", "s",
                  (_t(f"topk(10, {_sel(f'service_db:{db}:p95_5m')})", op, instant=True),),
                  kind="bargauge", width=12),
        PanelSpec("db-time", "Time in the database by operation",
                  "Seconds spent in each operation per second of wall time (rate of "
                  f"{db}_sum): where the database time goes, frequency times duration; 1 is "
                  "one connection busy all the time.", "percentunit",
                  (_t(f"sum by (db_system_name, db_operation_name) "
                      f"(rate({_sel(db + '_sum')}{RATE}))", op),),
                  width=24, min=0, stacked=True),
    ))
    return DashboardSpec(
        "promkit-database", "database.json", "promkit / Database",
        "Database performance: operations per second, latency quantiles, the slowest "
        "operations and where the database time goes.",
        _variables(config, "service"), (ops,), annotations=(_FIRING,))


# -- Jobs and stages -------------------------------------------------------------------------


def _jobs(config: Config) -> DashboardSpec:
    t = config.thresholds
    jobs = RowSpec("Jobs", (
        PanelSpec("job-throughput", "Jobs created and finished per second",
                  "Jobs enqueued per second by queue (service_queue:jobs_created:rate5m) and "
                  "finished per second by queue and outcome "
                  "(service_queue:jobs_finished:rate5m).", "cps",
                  (_t(f"sum by (queue) ({_sel('service_queue:jobs_created:rate5m')})",
                      "created {{queue}}"),
                   _t(f"sum by (queue, outcome) ({_sel('service_queue:jobs_finished:rate5m')})",
                      "finished {{queue}} {{outcome}}")),
                  width=8, min=0),
        PanelSpec("job-failure-ratio", "Job failure ratio by queue",
                  "Share of finished jobs whose outcome is not success, over 5 minutes "
                  "(service_queue:job_failure_ratio:ratio_rate5m).", "percentunit",
                  (_t(_sel("service_queue:job_failure_ratio:ratio_rate5m"), "{{queue}}"),),
                  width=8, min=0),
        PanelSpec("jobs-in-flight", "Jobs in flight",
                  "Jobs being run now by instance and job type (jobs_in_flight).", "short",
                  (_t(f"sum by (instance, job_type) ({_sel('jobs_in_flight', INSTANCE)})",
                      "{{instance}} {{job_type}}"),),
                  width=8, min=0),
        PanelSpec("job-latency-split", "Job time split: queue wait + run (mean, stacked)",
                  "Mean time a job waits in its queue and mean time it runs, stacked, over 5 "
                  "minutes (service_queue:job_queue_wait_seconds:mean5m, "
                  "service_queue:job_run_duration_seconds:mean5m); the stack's top is about "
                  "the mean total latency.", "s",
                  (_t(_sel("service_queue:job_queue_wait_seconds:mean5m"), "queue wait {{queue}}"),
                   _t(_sel("service_queue:job_run_duration_seconds:mean5m"), "run {{queue}}")),
                  width=12, stacked=True, min=0),
        PanelSpec("job-latency-quantiles", "Job latency p95: queue wait vs run vs total",
                  "95th percentiles over 5 minutes of queue wait, run time and total latency "
                  "(creation to terminal status) by queue (service_queue:*:p95_5m), and the "
                  "total p99 from the raw buckets with exemplars. The alert fires when total "
                  f"p95 is above {t.job_p95_seconds:g}s.", "s",
                  (_t(_sel("service_queue:job_queue_wait_seconds:p95_5m"),
                      "p95 queue wait {{queue}}"),
                   _t(_sel("service_queue:job_run_duration_seconds:p95_5m"), "p95 run {{queue}}"),
                   _t(_sel("service_queue:job_duration_seconds:p95_5m"), "p95 total {{queue}}"),
                   _t(_raw_quantile("job_duration_seconds", "0.99", "queue"), "p99 total {{queue}}",
                      exemplar=True)),
                  width=12, min=0, thresholds=((t.job_p95_seconds, "red"),)),
    ))
    stages = RowSpec("Stages", (
        PanelSpec("stage-latency", "Stage latency p50 / p95 / p99",
                  "Wall time of each job stage over 5 minutes "
                  "(service_stage:job_stage_duration_seconds:p50_5m, p95_5m, p99_5m), and the "
                  "p99 from the raw buckets with exemplars.", "s",
                  (*_rule_quantiles("service_stage:job_stage_duration_seconds", "{{stage}}",
                                    STAGE),
                   _t(_raw_quantile("job_stage_duration_seconds", "0.99", "stage", STAGE),
                      "p99 raw {{stage}}", exemplar=True)),
                  width=12, min=0),
        PanelSpec("stage-cpu", "CPU per stage (1 = one core)",
                  "CPU seconds per second spent in each stage, thread CPU clock "
                  "(service_stage:job_stage_cpu_seconds:rate5m); 100% is one core busy.",
                  "percentunit",
                  (_t(_sel("service_stage:job_stage_cpu_seconds:rate5m", STAGE), "{{stage}}"),),
                  width=12, stacked=True, min=0),
        PanelSpec("stage-failures", "Stage failures by stage and error code",
                  "Stage failures per second by stage and error code (raw "
                  "job_stage_failures_total: the recording rule drops error_code).", "cps",
                  (_t(f"sum by (stage, error_code) "
                      f"(rate({_sel('job_stage_failures_total', STAGE)}{RATE}))",
                      "{{stage}} {{error_code}}"),),
                  width=12, stacked=True, min=0),
        PanelSpec("stage-failure-ratio", "Stage failure ratio",
                  "Failed runs over all runs of each stage, over 5 minutes "
                  "(service_stage:job_stage_failure_ratio:ratio_rate5m); the alert fires "
                  f"above {_pct(t.stage_failure_ratio)}.", "percentunit",
                  (_t(_sel("service_stage:job_stage_failure_ratio:ratio_rate5m", STAGE),
                      "{{stage}}"),),
                  width=12, min=0, thresholds=((t.stage_failure_ratio, "red"),)),
    ))
    queues = RowSpec("Queues and cache", (
        PanelSpec("queue-depth", "Queue depth",
                  "Items waiting in each queue (service_queue:queue_depth:max); the alert "
                  f"fires above {t.queue_depth:g}.", "short",
                  (_t(_sel("service_queue:queue_depth:max"), "{{queue}}"),),
                  width=6, min=0, thresholds=((t.queue_depth, "red"),)),
        PanelSpec("queue-oldest-age", "Oldest item age",
                  "Age of the oldest item waiting in each queue "
                  "(service_queue:queue_oldest_item_age_seconds:max); the alert fires above "
                  f"{t.queue_oldest_age_seconds:g}s.", "s",
                  (_t(_sel("service_queue:queue_oldest_item_age_seconds:max"), "{{queue}}"),),
                  width=6, min=0, thresholds=((t.queue_oldest_age_seconds, "red"),)),
        PanelSpec("enqueue-depth", "Queue depth seen at enqueue (p95)",
                  "95th percentile of the queue depth a producer saw when it enqueued a job "
                  "(service_queue:job_enqueue_queue_depth:p95_5m).", "short",
                  (_t(_sel("service_queue:job_enqueue_queue_depth:p95_5m"), "{{queue}}"),),
                  width=6, min=0),
        PanelSpec("cache-hit-ratio", "Cache hit ratio",
                  "Cache hits over all lookups by cache, over 5 minutes "
                  "(service_cache:cache_hit_ratio:ratio_rate5m).", "percentunit",
                  (_t(_sel("service_cache:cache_hit_ratio:ratio_rate5m"), "{{cache}}"),),
                  width=6, min=0, max=1),
        PanelSpec("queue-up", "Queue reads up",
                  "1 when the queue exporter's last read of the queue succeeded, 0 when it "
                  "failed or timed out (queue_up); QueueReadFailing fires after 5 minutes "
                  "at 0, and depth and age are unknown meanwhile.", "bool_yes_no",
                  (_t(f"min by (queue) ({_sel('queue_up')})", "{{queue}}", instant=True),),
                  kind="stat", width=6, base_color="red", thresholds=((0.5, "green"),)),
        PanelSpec("stream-groups", "Stream consumer groups: pending and lag",
                  "Entries delivered to a consumer group but not acknowledged "
                  "(service_queue:queue_stream_pending:max) and entries not yet delivered to "
                  "it (service_queue:queue_stream_lag:max), per stream and group.", "short",
                  (_t(_sel("service_queue:queue_stream_pending:max"),
                      "pending {{queue}} {{group}}"),
                   _t(_sel("service_queue:queue_stream_lag:max"), "lag {{queue}} {{group}}")),
                  width=18, min=0),
        PanelSpec("job-exceptions", "Skipped, recovered jobs and cold starts",
                  "Jobs skipped or evicted (service:jobs_skipped:rate5m), recovered or "
                  "requeued (service:jobs_recovered:rate5m), and worker cold starts "
                  "(service:worker_cold_starts:rate5m), per second.", "cps",
                  (_t(_sel("service:jobs_skipped:rate5m"), "skipped {{job_type}} {{reason}}"),
                   _t(_sel("service:jobs_recovered:rate5m"),
                      "recovered {{job_type}} {{reason}}"),
                   _t(_sel("service:worker_cold_starts:rate5m"), "cold starts {{worker_type}}")),
                  width=24, min=0),
        PanelSpec("job-transitions", "Job status transitions per second",
                  "Jobs moving from one status to another per second by job type (raw "
                  "job_status_transitions_total: no recording rule keeps both statuses).",
                  "cps",
                  (_t(f"sum by (job_type, from_status, to_status) "
                      f"(rate({_sel('job_status_transitions_total')}{RATE}))",
                      "{{job_type}} {{from_status}} → {{to_status}}"),),
                  width=12, min=0, stacked=True),
        PanelSpec("job-persist-failures", "Job persist failures per second",
                  "Failures to store a job's state or result, per second by store "
                  "(service:job_persist_failures:rate5m): the job ran but its record may be "
                  "stale.", "cps",
                  (_t(_sel("service:job_persist_failures:rate5m"), "{{store}}"),),
                  width=12, min=0),
    ))
    return DashboardSpec(
        "promkit-jobs", "jobs-stages.json", "promkit / Jobs and stages",
        "Job throughput and outcomes, queue wait vs run vs total latency, per-stage latency, "
        "CPU and failures, queue depth and age, cache hit ratio.",
        _variables(config, "service", "stage", "instance"), (jobs, stages, queues),
        annotations=(_FIRING,))


# -- External dependencies and cost ----------------------------------------------------------


_USAGE_BY = "resource, provider, model, role"


def _cost_month_to_date() -> str:
    return (f"sum(sum by ({_USAGE_BY}) (increase({_sel('usage_units_total')}[$__range]))\n"
            f"* on ({_USAGE_BY}) group_left\n"
            f"max by ({_USAGE_BY}) ({_sel('usage_unit_price')}))")


def _external(config: Config) -> DashboardSpec:
    t = config.thresholds
    dep = "{{peer_service}} {{operation}}"
    timeouts = _sel("service_external:external_calls:rate5m", 'outcome="timeout"')
    calls = RowSpec("External calls", (
        PanelSpec("external-calls", "Calls per second by service, operation and outcome",
                  "Calls to external services per second over 5 minutes "
                  "(service_external:external_calls:rate5m); the callee is peer_service.",
                  "cps",
                  (_t(_sel("service_external:external_calls:rate5m"), dep + " {{outcome}}"),),
                  width=8, stacked=True, min=0),
        PanelSpec("external-error-ratio", "Error ratio by dependency",
                  "Calls ending in an error or a timeout over all calls, over 5 minutes "
                  "(service_external:external_call_error_ratio:ratio_rate5m); the alert "
                  f"fires above {_pct(t.external_error_ratio)}.", "percentunit",
                  (_t(_sel("service_external:external_call_error_ratio:ratio_rate5m"), dep),),
                  width=8, min=0, thresholds=((t.external_error_ratio, "red"),)),
        PanelSpec("external-latency", "Latency p50 / p95 / p99 by dependency",
                  "Duration of external calls over 5 minutes "
                  "(service_external:external_call_duration_seconds:p50_5m, p95_5m, p99_5m) "
                  "and the p99 from the raw buckets with exemplars; the alert fires when p95 "
                  f"is above {t.external_p95_seconds:g}s.", "s",
                  (*_rule_quantiles("service_external:external_call_duration_seconds", dep),
                   _t(_raw_quantile("external_call_duration_seconds", "0.99",
                                    "peer_service, operation"), "p99 raw " + dep,
                      exemplar=True)),
                  width=8, min=0, thresholds=((t.external_p95_seconds, "red"),)),
        PanelSpec("external-retries", "Retries per second",
                  "Retries of external calls per second "
                  "(service_external:external_call_retries:rate5m).", "cps",
                  (_t(_sel("service_external:external_call_retries:rate5m"), dep),),
                  width=8, min=0),
        PanelSpec("external-timeouts", "Timeouts per second",
                  "External calls that timed out, per second "
                  "(service_external:external_calls:rate5m, outcome timeout).", "cps",
                  (_t(f"sum by (peer_service, operation) ({timeouts})", dep),),
                  width=8, min=0),
        PanelSpec("llm-latency", "LLM call latency p50 / p95 / p99",
                  "Duration of LLM calls by provider and model "
                  "(service_llm:gen_ai_client_operation_duration_seconds:p50_5m, p95_5m, "
                  "p99_5m) and the p99 from the raw buckets with exemplars.", "s",
                  (*_rule_quantiles("service_llm:gen_ai_client_operation_duration_seconds",
                                    "{{gen_ai_provider_name}} {{gen_ai_request_model}}"),
                   _t(_raw_quantile("gen_ai_client_operation_duration_seconds", "0.99",
                                    "gen_ai_provider_name, gen_ai_request_model"),
                      "p99 raw {{gen_ai_provider_name}} {{gen_ai_request_model}}",
                      exemplar=True)),
                  width=8, min=0, thresholds=((t.external_p95_seconds, "red"),)),
    ))
    budget = config.budgets.cpu_hours_per_month
    cpu_targets = [
        _t(_sel("service:cpu_hours:month_to_date"), "used this month"),
        _t(_sel("service:cpu_hours:projected_month_end"), "projected at month end"),
    ]
    if budget is not None:
        cpu_targets.append(_t(_sel("service:cpu_hours_budget:month"), "budget"))
    usage_panels: list[PanelSpec] = [
        PanelSpec("llm-tokens", "LLM tokens per second",
                  "LLM tokens per second by provider, model and token type "
                  "(service_llm:gen_ai_client_tokens:rate5m).", "suffix: tokens/s",
                  (_t(_sel("service_llm:gen_ai_client_tokens:rate5m"),
                      "{{gen_ai_request_model}} {{gen_ai_token_type}}"),),
                  width=8, stacked=True, min=0),
        PanelSpec("usage-rate", "Usage per hour by resource",
                  "Billable units used per hour (tokens, pages, CPU seconds...) by resource, "
                  "provider, model and role (service_usage:usage_units:rate5m x 3600).",
                  "suffix: units/h",
                  (_t(f"{_sel('service_usage:usage_units:rate5m')} * 3600",
                      "{{resource}} {{provider}} {{model}} {{role}}"),),
                  width=8, min=0),
        PanelSpec("cost-rate", "Cost per hour by resource",
                  "Cost per hour in the price table's currency: usage rate times "
                  "usage_unit_price (service_usage:usage_cost:rate5m x 3600).", "short",
                  (_t(f"sum by (resource) ({_sel('service_usage:usage_cost:rate5m')}) * 3600",
                      "{{resource}}"),
                   _t(f"{_sel('service:usage_cost:rate5m')} * 3600", "total")),
                  width=8, min=0),
        PanelSpec("cost-month-to-date", "Cost this month so far",
                  "Cost since the first of the month (UTC, the panel's time range now/M): "
                  "increase of usage_units_total times usage_unit_price. The currency is the "
                  "price table's.", "short",
                  (_t(_cost_month_to_date(), "month to date", instant=True),),
                  kind="stat", width=6, height=6, time_from="now/M"),
        PanelSpec("cost-projected", "Cost projected to month end",
                  "This month's cost so far divided by the elapsed fraction of the month: "
                  "where the month ends at the current pace, in the price table's currency.",
                  "short",
                  (_t(f"{_cost_month_to_date()}\n/ scalar(((day_of_month() - 1) * 86400 "
                      "+ time() % 86400) / (days_in_month() * 86400))", "projected",
                      instant=True),),
                  kind="stat", width=6, height=6, time_from="now/M"),
        PanelSpec("usage-vs-budget", "Usage this month vs monthly budget",
                  "Units used since the first of the month over usage_monthly_budget_units, "
                  "by resource (1 = the whole budget).", "percentunit",
                  (_t(f"sum by (resource) (increase({_sel('usage_units_total')}[$__range]))\n"
                      f"/ on (resource)\nmax by (resource) "
                      f"({_sel('usage_monthly_budget_units')})", "{{resource}}", instant=True),),
                  kind="bargauge", width=6, height=6, time_from="now/M", min=0, max=1,
                  thresholds=((0.8, "orange"), (1, "red"))),
        PanelSpec("cpu-hours-month", "CPU-hours this month vs budget",
                  "Stage CPU-hours used this month (service:cpu_hours:month_to_date), the "
                  "projection to the month's end at the last day's pace "
                  "(service:cpu_hours:projected_month_end)"
                  + (f" and the budget of {budget:g} CPU-hours "
                     "(service:cpu_hours_budget:month)." if budget is not None else "."),
                  "h", tuple(cpu_targets), width=6, height=6, min=0),
    ]
    usage = RowSpec("Usage and cost", tuple(usage_panels))
    return DashboardSpec(
        "promkit-external-cost", "external-cost.json",
        "promkit / External dependencies and cost",
        "Calls to external services (rate, errors, latency, retries, timeouts), LLM tokens, "
        "billable usage and cost, month-to-date against budget with the month-end projection.",
        _variables(config, "service"), (calls, usage), annotations=(_FIRING,))


# -- Resources ---------------------------------------------------------------------------------


def _resources(config: Config) -> DashboardSpec:
    t = config.thresholds
    who = "{{job}} {{instance}}"
    row = RowSpec("Process and host", (
        PanelSpec("memory-rss", "Resident memory (RSS)",
                  "Resident memory of each process (process_memory_usage_bytes).", "bytes",
                  (_t(f"max by (job, instance) ({_sel('process_memory_usage_bytes', INSTANCE)})",
                      who),),
                  width=8, min=0),
        PanelSpec("cpu", "CPU (1 = one core)",
                  "CPU seconds per second used by each process "
                  "(rate of process_cpu_time_seconds_total); 100% is one core busy.",
                  "percentunit",
                  (_t(f"sum by (job, instance) "
                      f"(rate({_sel('process_cpu_time_seconds_total', INSTANCE)}{RATE}))", who),),
                  width=8, min=0),
        PanelSpec("file-descriptors", "Open file descriptors and threads",
                  "Open file descriptors (process_open_file_descriptors) and threads "
                  "(process_threads) of each process.", "short",
                  (_t(f"max by (job, instance) "
                      f"({_sel('process_open_file_descriptors', INSTANCE)})", "fds " + who),
                   _t(f"max by (job, instance) ({_sel('process_threads', INSTANCE)})",
                      "threads " + who)),
                  width=8, min=0),
        PanelSpec("disk-used", "Disk used",
                  "Used fraction of the filesystem holding each watched path "
                  "(system_filesystem_utilization_ratio); the alert fires above "
                  f"{_pct(t.disk_used_ratio)}.", "percentunit",
                  (_t(f"max by (instance, path) "
                      f"({_sel('system_filesystem_utilization_ratio', INSTANCE)})",
                      "{{instance}} {{path}}"),),
                  width=12, min=0, max=1,
                  thresholds=((t.disk_used_ratio - 0.1, "orange"), (t.disk_used_ratio, "red"))),
        PanelSpec("event-loop-lag", "Event-loop lag p50 / p99",
                  "Delay of the asyncio event loop in running a timer, from the raw buckets "
                  "of python_event_loop_lag_seconds with exemplars: a busy or blocked loop "
                  "delays every request of that process.", "s",
                  (_t(_raw_quantile("python_event_loop_lag_seconds", "0.5", "job, instance",
                                    INSTANCE), "p50 " + who, exemplar=True),
                   _t(_raw_quantile("python_event_loop_lag_seconds", "0.99", "job, instance",
                                    INSTANCE), "p99 " + who, exemplar=True)),
                  width=12, min=0),
    ))
    return DashboardSpec(
        "promkit-resources", "resources.json", "promkit / Resources",
        "Memory, CPU, file descriptors and threads of each process, disk use, event-loop lag.",
        _variables(config, "service", "instance"), (row,), annotations=(_FIRING,))


# -- SLOs --------------------------------------------------------------------------------------


def _slos(config: Config) -> DashboardSpec:
    by_window: dict[str, list[str]] = {}
    for slo in config.slos:
        by_window.setdefault(format_duration(parse_duration(slo.window)), []).append(slo.name)
    sli_targets = []
    for window, names in by_window.items():
        which = 'slo=~"' + "|".join(names) + '"'
        sli_targets.append(_t(f"1 - {_sel(f'slo:sli_error:ratio_rate{window}', which)}",
                              f"{{{{slo}}}} SLI ({window})"))
    sli_targets.append(_t(_sel("slo:objective:ratio"), "{{slo}} objective"))
    objectives = ", ".join(f"{s.name} {s.objective * 100:g}% over {s.window}"
                           for s in config.slos)

    def burn(severity: str) -> tuple[tuple[TargetSpec, ...], str]:
        """Burn rate over each window divided by its alert's factor: 1 is the threshold."""
        targets: list[TargetSpec] = []
        factors: list[str] = []
        for window, names in by_window.items():
            which = 'slo=~"' + "|".join(names) + '"'
            said: list[str] = []
            for b in (b for b in BURN_WINDOWS if b.alert == severity):
                factor = num(burn_factor(window, b))
                said.append(f"{factor} for {b.long} & {b.short}")
                for w in (b.long, b.short):
                    targets.append(_t(
                        f"{_sel(f'slo:sli_error:ratio_rate{w}', which)}\n/ on (service, slo)\n"
                        f"(1 - {_sel('slo:objective:ratio', which)})\n/ {factor}",
                        f"{{{{slo}}}} {w}"))
            factors.append(f"{window} SLOs: {', '.join(said)}")
        return tuple(targets), "; ".join(factors)

    page, page_factors = burn("SLOBurnRatePage")
    ticket, ticket_factors = burn("SLOBurnRateTicket")
    explain = ("Burn rate (error ratio over the error budget, 1 - objective) over each window, "
               "divided by the factor of its alert (share of the budget x SLO window / long "
               "window, the SRE workbook's table scaled to the SLO's window): ")
    row = RowSpec("Objectives and budgets", (
        PanelSpec("sli-vs-objective", "SLI vs objective",
                  "Each SLO's indicator (good events over all) over its own window "
                  "(1 - slo:sli_error:ratio_rate<window>) against its objective "
                  f"(slo:objective:ratio). Objectives: {objectives}.", "percentunit",
                  tuple(sli_targets), width=12, max=1),
        PanelSpec("error-budget", "Error budget remaining",
                  "Share of each SLO's error budget left over its window "
                  "(slo:error_budget_remaining:ratio); below 0 the objective is missed.",
                  "percentunit",
                  (_t(_sel("slo:error_budget_remaining:ratio"), "{{slo}}", instant=True),),
                  kind="stat", width=12, decimals=1, base_color="red",
                  thresholds=((0.25, "orange"), (0.5, "green"))),
        PanelSpec("burn-rate-page", "Page burn rate vs threshold (1h & 5m, 6h & 30m)",
                  explain + f"{page_factors}. The page fires when both windows of a pair "
                  "are above 1 (2% of the budget in 1h, or 5% in 6h).", "suffix: x",
                  page, width=12, min=0, thresholds=((0.5, "orange"), (1, "red"))),
        PanelSpec("burn-rate-ticket", "Ticket burn rate vs threshold (1d & 2h, 3d & 6h)",
                  explain + f"{ticket_factors}. The ticket fires when both windows of a "
                  "pair are above 1 (10% of the budget in 1d, or 10% in 3d).", "suffix: x",
                  ticket, width=12, min=0, thresholds=((0.5, "orange"), (1, "red"))),
        PanelSpec("sli-events", "SLI events per second",
                  "Events each SLO counts per second over 5 minutes "
                  "(slo:sli_events:rate5m) and the bad ones (slo:sli_errors:rate5m); below "
                  f"{config.slo_min_events_per_hour:g} events per hour no burn-rate alert "
                  "fires. No line at all: the SLO's metric is absent.", "cps",
                  (_t(_sel("slo:sli_events:rate5m"), "{{slo}} events"),
                   _t(_sel("slo:sli_errors:rate5m"), "{{slo}} bad")),
                  width=12, min=0),
        PanelSpec("slo-alerts", "SLO alerts firing or pending",
                  "Burn-rate and absent-metric alerts of the SLOs now pending or firing "
                  "(Prometheus's ALERTS series; the SLI type is in sli).", "short",
                  (_t(f"ALERTS{{{SVC}, slo!=\"\"}}", "{{alertname}} {{slo}} {{alertstate}}",
                      instant=True, table=True),),
                  kind="table", width=12),
    ))
    return DashboardSpec(
        "promkit-slos", "slos.json", "promkit / SLOs",
        "Service level objectives from the project config: SLI against objective, error "
        "budget remaining, multiwindow burn rates, firing SLO alerts.",
        _variables(config, "service"), (row,), annotations=(_FIRING,))


# -- promkit self-monitoring -------------------------------------------------------------------


def _self(config: Config) -> DashboardSpec:
    who = "{{job}} {{instance}}"
    row = RowSpec("promkit and scrapes", (
        PanelSpec("instrumentation-errors", "Instrumentation errors by cause",
                  "Failures inside promkit's recording per second, swallowed so the app never "
                  "saw them (promkit_instrumentation_errors_total); the process log says why, "
                  "once per cause.", "cps",
                  (_t(f"sum by (instance, cause) "
                      f"(rate({_sel('promkit_instrumentation_errors_total', INSTANCE)}{RATE}))",
                      "{{instance}} {{cause}}"),),
                  width=12, min=0),
        PanelSpec("series-overflow", "Recordings folded into overflow series",
                  "Recordings per second folded into a metric's __overflow__ series because "
                  "it hit its series limit (promkit_series_overflow_total): a label takes "
                  "unbounded values.", "cps",
                  (_t(f"sum by (instance, metric) "
                      f"(rate({_sel('promkit_series_overflow_total', INSTANCE)}{RATE}))",
                      "{{instance}} {{metric}}"),),
                  width=12, min=0),
        PanelSpec("exposition-duration", "/metrics render time p99",
                  "Time to render a /metrics exposition by format, p99 from the raw buckets "
                  "of promkit_exposition_duration_seconds with exemplars.", "s",
                  (_t(_raw_quantile("promkit_exposition_duration_seconds", "0.99",
                                    "instance, format", INSTANCE),
                      "{{instance}} {{format}}", exemplar=True),),
                  width=8, min=0),
        PanelSpec("scrape-duration", "Scrape duration",
                  "How long Prometheus took to scrape each target "
                  "(scrape_duration_seconds, written by Prometheus).", "s",
                  (_t(_sel("scrape_duration_seconds", INSTANCE), who),),
                  width=8, min=0),
        PanelSpec("targets-up", "Targets up",
                  "1 when Prometheus's last scrape of the target succeeded, 0 when it failed "
                  "(up); TargetDown fires after 2 minutes at 0.", "bool_yes_no",
                  (_t(_sel("up", INSTANCE), who, instant=True),),
                  kind="stat", width=8, base_color="red",
                  thresholds=((0.5, "green"),)),
    ))
    return DashboardSpec(
        "promkit-self", "promkit-self.json", "promkit / Self-monitoring",
        "promkit's own health: swallowed instrumentation errors, series overflow, /metrics "
        "render time, and Prometheus's view of the scrapes.",
        _variables(config, "service", "instance"), (row,), annotations=(_FIRING,))


def dashboard_specs(config: Config) -> list[DashboardSpec]:
    """Every dashboard for ``config`` (the SLO dashboard only when the config has SLOs)."""
    specs = [_service_overview(config), _websockets(config), _database(config), _jobs(config),
             _external(config), _resources(config)]
    if config.slos:
        specs.append(_slos(config))
    specs.append(_self(config))
    return specs
