"""The HTTP side's dashboards: service overview (RED by route), WebSockets, database."""

from __future__ import annotations

from promkit.tools.generate._grafana_kit import (
    FIRING,
    INSTANCE,
    RATE,
    ROUTE,
    pct,
    raw_quantile,
    rule_quantiles,
    sel,
    target,
    variables,
)
from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, RowSpec
from promkit.tools.generate.config import Config

__all__ = ["database_dashboard", "service_overview_dashboard", "websockets_dashboard"]


# -- Service overview ------------------------------------------------------------------------


def service_overview_dashboard(config: Config) -> DashboardSpec:
    t = config.thresholds
    http = "http_server_request_duration_seconds"
    by_route = "{{http_request_method}} {{http_route}}"
    stats = RowSpec("Now", (
        PanelSpec("requests-rate", "Requests per second",
                  "HTTP requests per second over 5 minutes, all routes "
                  "(service:http_requests:rate5m).", "reqps",
                  (target(sel("service:http_requests:rate5m"), "requests/s", instant=True),),
                  kind="stat", width=6, height=4),
        PanelSpec("error-ratio", "Error ratio (5xx)",
                  "Share of HTTP requests answered 5xx over 5 minutes "
                  f"(service:http_error_ratio:ratio_rate5m); alert above "
                  f"{pct(t.http_error_ratio)}.", "percentunit",
                  (target(sel("service:http_error_ratio:ratio_rate5m"), "5xx ratio",
                          instant=True),),
                  kind="stat", width=6, height=4, decimals=2,
                  thresholds=((t.http_error_ratio / 2, "orange"), (t.http_error_ratio, "red"))),
        PanelSpec("latency-p95", "Latency p95",
                  "95th percentile of request duration over 5 minutes, all routes "
                  f"(service:{http}:p95_5m); alert per route above {t.http_p95_seconds:g}s.",
                  "s", (target(sel(f"service:{http}:p95_5m"), "p95", instant=True),),
                  kind="stat", width=6, height=4,
                  thresholds=((t.http_p95_seconds, "red"),)),
        PanelSpec("in-flight-total", "Requests in flight",
                  "HTTP requests being served now, summed over the selected instances "
                  "(http_server_active_requests).", "short",
                  (target(f"sum({sel('http_server_active_requests', INSTANCE)})", "in flight",
                          instant=True),),
                  kind="stat", width=6, height=4),
    ))
    red = RowSpec("Rate, errors, duration by route", (
        PanelSpec("requests-by-route", "Requests per second by route",
                  "HTTP requests per second over 5 minutes by method and route template "
                  "(service_route:http_requests:rate5m).", "reqps",
                  (target(sel("service_route:http_requests:rate5m", ROUTE), by_route),),
                  width=8),
        PanelSpec("error-ratio-by-route", "Error ratio by route (5xx)",
                  "Share of requests answered 5xx over 5 minutes by route "
                  "(service_route:http_error_ratio:ratio_rate5m); only routes that answered "
                  f"a 5xx have a line. The service alert fires above "
                  f"{pct(t.http_error_ratio)}.", "percentunit",
                  (target(sel("service_route:http_error_ratio:ratio_rate5m", ROUTE), by_route),),
                  width=8, min=0, thresholds=((t.http_error_ratio, "red"),)),
        PanelSpec("latency-by-route", "Latency p50 / p95 / p99 by route",
                  "Request duration quantiles over 5 minutes by route "
                  f"(service_route:{http}:p50_5m, p95_5m, p99_5m), and the p99 of the "
                  "selected routes together from the raw buckets with exemplars (click a "
                  "dot for its trace ID).", "s",
                  (*rule_quantiles(f"service_route:{http}", by_route, ROUTE),
                   target(raw_quantile(http, "0.99", "", ROUTE), "p99 selected routes",
                          exemplar=True)),
                  width=8, thresholds=((t.http_p95_seconds, "red"),)),
    ))
    top = RowSpec("Top routes and status codes", (
        PanelSpec("top-slow-routes", "Top 10 slow routes (p95)",
                  "The ten routes with the highest 95th percentile duration over 5 minutes "
                  f"(service_route:{http}:p95_5m).", "s",
                  (target(f"topk(10, {sel(f'service_route:{http}:p95_5m', ROUTE)})", by_route,
                          instant=True),),
                  kind="bargauge", width=8, thresholds=((t.http_p95_seconds, "red"),)),
        PanelSpec("top-failing-routes", "Top 10 failing routes (5xx per second)",
                  "The ten routes answering the most 5xx per second over 5 minutes "
                  f"(service_route:http_errors:rate5m); the service alert fires above "
                  f"{t.http_5xx_rate:g}/s.", "reqps",
                  (target(f"topk(10, {sel('service_route:http_errors:rate5m', ROUTE)})", by_route,
                          instant=True),),
                  kind="bargauge", width=8),
        PanelSpec("status-codes", "Responses by status code",
                  "Responses per second by HTTP status code, stacked (raw "
                  f"{http}_count: no recording rule keeps the code).", "reqps",
                  (target(f"sum by (http_response_status_code) "
                          f"(rate({sel(http + '_count', ROUTE)}{RATE}))",
                          "{{http_response_status_code}}"),),
                  width=8, stacked=True),
    ))
    more = RowSpec("Concurrency, exceptions, auth", (
        PanelSpec("in-flight", "Requests in flight by instance",
                  "HTTP requests being served now, per instance and method "
                  "(http_server_active_requests).", "short",
                  (target(f"sum by (instance, http_request_method) "
                          f"({sel('http_server_active_requests', INSTANCE)})",
                          "{{instance}} {{http_request_method}}"),),
                  width=8, min=0),
        PanelSpec("unhandled-exceptions", "Unhandled exceptions per second",
                  "Exceptions that escaped the application (answered 500) by route and type "
                  "(service_route:http_server_unhandled_exceptions:rate5m).", "cps",
                  (target(sel("service_route:http_server_unhandled_exceptions:rate5m", ROUTE),
                          "{{http_route}} {{error_type}}"),),
                  width=8, min=0),
        PanelSpec("auth-attempts", "Auth attempts by type and outcome",
                  "Authentication attempts per second by type and outcome "
                  "(service_auth:auth_attempts:rate5m); the alert fires above "
                  f"{t.auth_failures_15m:g} failures in 15 minutes.", "cps",
                  (target(sel("service_auth:auth_attempts:rate5m"), "{{auth_type}} {{outcome}}"),),
                  width=8, min=0, stacked=True),
    ))
    payloads = RowSpec("Payloads and disconnects", (
        PanelSpec("request-size", "Request body size p95 by route",
                  "95th percentile of request body sizes over 5 minutes by route "
                  "(service_route:http_server_request_body_size_bytes:p95_5m). Empty unless the "
                  "middleware records sizes (HttpMetricsMiddleware(record_sizes=True)).", "bytes",
                  (target(sel("service_route:http_server_request_body_size_bytes:p95_5m", ROUTE),
                          by_route),),
                  width=8, min=0),
        PanelSpec("response-size", "Response body size p95 by route",
                  "95th percentile of response body sizes over 5 minutes by route "
                  "(service_route:http_server_response_body_size_bytes:p95_5m). Empty unless the "
                  "middleware records sizes (HttpMetricsMiddleware(record_sizes=True)).", "bytes",
                  (target(sel("service_route:http_server_response_body_size_bytes:p95_5m", ROUTE),
                          by_route),),
                  width=8, min=0),
        PanelSpec("client-disconnects", "Client disconnects per second by route",
                  "Requests whose client went away before the response was complete, per "
                  "second (service_route:http_server_client_disconnects:rate5m): timeouts "
                  "on the client side, or users giving up on a slow route.", "cps",
                  (target(sel("service_route:http_server_client_disconnects:rate5m", ROUTE),
                          by_route),),
                  width=8, min=0),
    ))
    return DashboardSpec(
        "promkit-service-overview", "service-overview.json", "promkit / Service overview",
        "RED metrics of the HTTP service: rate, errors and duration by route, top slow and "
        "failing routes, status codes, in-flight requests, payload sizes, client disconnects.",
        variables(config, "service", "route", "instance"), (stats, red, top, more, payloads),
        annotations=(FIRING,))


# -- WebSockets --------------------------------------------------------------------------------


def websockets_dashboard(config: Config) -> DashboardSpec:
    ws = "{{http_route}}"
    connections = RowSpec("Connections", (
        PanelSpec("ws-open", "Open connections",
                  "WebSocket connections open now, all routes "
                  "(service_route:websocket_server_active_connections:sum).", "short",
                  (target(f"sum({sel('service_route:websocket_server_active_connections:sum')})",
                          "open", instant=True),),
                  kind="stat", width=6, height=8),
        PanelSpec("ws-open-by-route", "Open connections by route",
                  "WebSocket connections open per route "
                  "(service_route:websocket_server_active_connections:sum).", "short",
                  (target(sel("service_route:websocket_server_active_connections:sum"), ws),),
                  width=9, min=0, stacked=True),
        PanelSpec("ws-session-duration", "Session duration p95 by route",
                  "95th percentile of the duration of WebSocket sessions that ended in the "
                  "last 5 minutes "
                  "(service_route:websocket_server_session_duration_seconds:p95_5m).", "s",
                  (target(sel("service_route:websocket_server_session_duration_seconds:p95_5m"),
                          ws),),
                  width=9, min=0),
    ))
    traffic = RowSpec("Messages and closes", (
        PanelSpec("ws-messages", "Messages per second by route and direction",
                  "WebSocket messages per second, received from clients and sent to them "
                  "(service_route:websocket_server_messages:rate5m).", "cps",
                  (target(sel("service_route:websocket_server_messages:rate5m"),
                          "{{http_route}} {{direction}}"),),
                  width=12, min=0),
        PanelSpec("ws-closes", "Closes per second by close code",
                  "Sessions closed per second by route and WebSocket close code "
                  "(service_route:websocket_server_closes:rate5m): 1000 normal, 1001 going "
                  "away, 1006 dropped without a close frame, 1011 server error.", "cps",
                  (target(sel("service_route:websocket_server_closes:rate5m"),
                          "{{http_route}} {{close_code}}"),),
                  width=12, min=0, stacked=True),
        PanelSpec("ws-close-reasons", "Close reasons, last hour",
                  "Sessions closed in the last hour by close code, all routes: what ends "
                  "the sessions (service_route:websocket_server_closes:rate5m, averaged).",
                  "short",
                  (target(f"sum by (close_code) (avg_over_time("
                          f"{sel('service_route:websocket_server_closes:rate5m')}[1h])) * 3600",
                          "{{close_code}}", instant=True),),
                  kind="bargauge", width=24, height=6),
    ))
    return DashboardSpec(
        "promkit-websockets", "websockets.json", "promkit / WebSockets",
        "WebSocket health: open connections, session duration, messages by direction, "
        "closes by close code.",
        variables(config, "service"), (connections, traffic), annotations=(FIRING,))


# -- Database ----------------------------------------------------------------------------------


def database_dashboard(config: Config) -> DashboardSpec:
    op = "{{db_system_name}} {{db_operation_name}}"
    db = "db_client_operation_duration_seconds"
    ops = RowSpec("Operations", (
        PanelSpec("db-ops-total", "Operations per second",
                  "Database operations per second, all systems and operations "
                  "(service_db:db_client_operations:rate5m).", "ops",
                  (target(f"sum({sel('service_db:db_client_operations:rate5m')})", "ops/s",
                          instant=True),),
                  kind="stat", width=6, height=8),
        PanelSpec("db-ops", "Operations per second by operation",
                  "Database operations per second by system and operation "
                  "(service_db:db_client_operations:rate5m).", "ops",
                  (target(sel("service_db:db_client_operations:rate5m"), op),),
                  width=18, min=0, stacked=True),
        PanelSpec("db-latency", "Operation latency p50 / p95 / p99",
                  f"Duration of database operations over 5 minutes (service_db:{db}:p50_5m, "
                  "p95_5m, p99_5m), and the p99 from the raw buckets with exemplars.", "s",
                  (*rule_quantiles(f"service_db:{db}", op),
                   target(raw_quantile(db, "0.99", "db_system_name, db_operation_name"),
                          "p99 raw " + op, exemplar=True)),
                  width=12, min=0),
        PanelSpec("db-slowest", "Slowest operations (p95)",
                  f"The ten operations with the highest 95th percentile duration over 5 "
                  f"minutes (service_db:{db}:p95_5m).", "s",
                  (target(f"topk(10, {sel(f'service_db:{db}:p95_5m')})", op, instant=True),),
                  kind="bargauge", width=12),
        PanelSpec("db-time", "Time in the database by operation",
                  "Seconds spent in each operation per second of wall time (rate of "
                  f"{db}_sum): where the database time goes, frequency times duration; 1 is "
                  "one connection busy all the time.", "percentunit",
                  (target(f"sum by (db_system_name, db_operation_name) "
                          f"(rate({sel(db + '_sum')}{RATE}))", op),),
                  width=24, min=0, stacked=True),
    ))
    return DashboardSpec(
        "promkit-database", "database.json", "promkit / Database",
        "Database performance: operations per second, latency quantiles, the slowest "
        "operations and where the database time goes.",
        variables(config, "service"), (ops,), annotations=(FIRING,))
