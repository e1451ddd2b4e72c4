"""``rules/recording.yml``: the recording rules every dashboard and alert reads.

Every rule keeps the ``service`` label and is named ``level:metric:operations``
(docs/rules.md documents each one). The CPU-hours budget's rules come from
:mod:`._rules_budget`.
"""

from __future__ import annotations

from promkit.tools.generate._promql import Group, sel
from promkit.tools.generate._promql import by_labels as _by
from promkit.tools.generate._promql import mean_rule as _mean
from promkit.tools.generate._promql import quantile_rules as _quantiles
from promkit.tools.generate._promql import rate_rule as _rate
from promkit.tools.generate._promql import record_rule as _record
from promkit.tools.generate._rules_budget import cpu_budget_groups
from promkit.tools.generate.config import Config

__all__ = ["recording_groups"]

_ROUTE = ("http_request_method", "http_route")
_EXTERNAL = ("peer_service", "operation")
_LLM = ("gen_ai_provider_name", "gen_ai_request_model")


def recording_groups(config: Config) -> list[Group]:
    c = config
    http = "http_server_request_duration_seconds"
    groups: list[Group] = []
    groups.append({"name": "promkit-http", "rules": [
        _rate(c, "service_route", "http_requests", f"{http}_count", _ROUTE),
        _rate(c, "service_route", "http_errors", f"{http}_count", _ROUTE,
              http_response_status_class="5xx"),
        _record("service_route:http_error_ratio:ratio_rate5m",
                "service_route:http_errors:rate5m\n/\nservice_route:http_requests:rate5m"),
        _rate(c, "service", "http_requests", f"{http}_count", ()),
        _record("service:http_errors:rate5m",
                "sum by (service) (rate("
                f"{sel(c, http + '_count', http_response_status_class='5xx')}[5m]))\n"
                "or\nservice:http_requests:rate5m * 0"),
        _record("service:http_error_ratio:ratio_rate5m",
                "service:http_errors:rate5m\n/\nservice:http_requests:rate5m"),
        *_quantiles(c, "service_route", http, _ROUTE),
        *_quantiles(c, "service", http, ()),
        _record("service:http_server_active_requests:sum",
                f"sum by (service) ({sel(c, 'http_server_active_requests')})"),
        _rate(c, "service_route", "http_server_unhandled_exceptions",
              "http_server_unhandled_exceptions_total", (*_ROUTE, "error_type")),
        _rate(c, "service_route", "http_server_client_disconnects",
              "http_server_client_disconnects_total", _ROUTE),
        *_quantiles(c, "service_route", "http_server_response_body_size_bytes", _ROUTE)[1:2],
        *_quantiles(c, "service_route", "http_server_request_body_size_bytes", _ROUTE)[1:2],
    ]})
    groups.append({"name": "promkit-websocket-auth-db", "rules": [
        _record("service_route:websocket_server_active_connections:sum",
                f"sum by ({_by(('http_route',))}) "
                f"({sel(c, 'websocket_server_active_connections')})"),
        _rate(c, "service_route", "websocket_server_messages", "websocket_server_messages_total",
              ("http_route", "direction")),
        _rate(c, "service_route", "websocket_server_closes", "websocket_server_closes_total",
              ("http_route", "close_code")),
        *_quantiles(c, "service_route", "websocket_server_session_duration_seconds",
                    ("http_route",))[1:2],
        _rate(c, "service_auth", "auth_attempts", "auth_attempts_total", ("auth_type", "outcome")),
        _record("service:auth_failures:increase15m",
                f"sum by (service) (increase({sel(c, 'auth_attempts_total', outcome='!success')}"
                "[15m]))"),
        _record("service:auth_failure_ratio:ratio_rate5m",
                f"sum by (service) (rate({sel(c, 'auth_attempts_total', outcome='!success')}[5m]))"
                f"\n/\nsum by (service) (rate({sel(c, 'auth_attempts_total')}[5m]))"),
        *_quantiles(c, "service_db", "db_client_operation_duration_seconds",
                    ("db_system_name", "db_operation_name")),
        _rate(c, "service_db", "db_client_operations", "db_client_operation_duration_seconds_count",
              ("db_system_name", "db_operation_name")),
    ]})
    groups.append({"name": "promkit-jobs-stages", "rules": [
        _rate(c, "service_stage", "job_stage_runs", "job_stage_duration_seconds_count", ("stage",)),
        _rate(c, "service_stage", "job_stage_failures", "job_stage_failures_total", ("stage",)),
        _record("service_stage:job_stage_failure_ratio:ratio_rate5m",
                "service_stage:job_stage_failures:rate5m\n/\nservice_stage:job_stage_runs:rate5m"),
        *_quantiles(c, "service_stage", "job_stage_duration_seconds", ("stage",)),
        _rate(c, "service_stage", "job_stage_cpu_seconds", "job_stage_cpu_seconds_total",
              ("stage",)),
        *(rule for metric in ("job_queue_wait_seconds", "job_run_duration_seconds",
                              "job_duration_seconds")
          for rule in (*_quantiles(c, "service_queue", metric, ("queue",)),
                       _mean(c, "service_queue", metric, ("queue",)))),
        _rate(c, "service_queue", "jobs_created", "jobs_created_total", ("queue", "job_type")),
        _rate(c, "service_queue", "jobs_finished", "jobs_finished_total",
              ("queue", "job_type", "outcome")),
        _record("service_queue:job_failure_ratio:ratio_rate5m",
                f"sum by ({_by(('queue',))}) (rate("
                f"{sel(c, 'jobs_finished_total', outcome='!success')}[5m]))\n/\n"
                f"sum by ({_by(('queue',))}) (rate({sel(c, 'jobs_finished_total')}[5m]))"),
        _record("service:jobs_in_flight:sum",
                f"sum by ({_by(('job_type',))}) ({sel(c, 'jobs_in_flight')})"),
        _rate(c, "service", "jobs_skipped", "jobs_skipped_total", ("job_type", "reason")),
        _rate(c, "service", "jobs_recovered", "jobs_recovered_total", ("job_type", "reason")),
        _rate(c, "service", "job_persist_failures", "job_persist_failures_total", ("store",)),
        _rate(c, "service", "worker_cold_starts", "worker_cold_starts_total", ("worker_type",)),
        _record("service_cache:cache_hit_ratio:ratio_rate5m",
                f"sum by ({_by(('cache',))}) (rate({sel(c, 'cache_requests_total', result='hit')}"
                f"[5m]))\n/\nsum by ({_by(('cache',))}) "
                f"(rate({sel(c, 'cache_requests_total')}[5m]))"),
        *_quantiles(c, "service_queue", "job_enqueue_queue_depth", ("queue",))[1:2],
    ]})
    groups.append({"name": "promkit-queues", "rules": [
        _record("service_queue:queue_depth:max",
                f"max by ({_by(('queue',))}) ({sel(c, 'queue_depth')})"),
        _record("service_queue:queue_oldest_item_age_seconds:max",
                f"max by ({_by(('queue',))}) ({sel(c, 'queue_oldest_item_age_seconds')})"),
        _record("service_queue:queue_stream_pending:max",
                f"max by ({_by(('queue', 'group'))}) ({sel(c, 'queue_stream_pending')})"),
        _record("service_queue:queue_stream_lag:max",
                f"max by ({_by(('queue', 'group'))}) ({sel(c, 'queue_stream_lag')})"),
    ]})
    groups.append({"name": "promkit-external-llm", "rules": [
        _rate(c, "service_external", "external_calls", "external_calls_total",
              (*_EXTERNAL, "outcome")),
        _record("service_external:external_call_error_ratio:ratio_rate5m",
                f"sum by ({_by(_EXTERNAL)}) (rate("
                f"{sel(c, 'external_calls_total', outcome='!success')}[5m]))\n/\n"
                f"sum by ({_by(_EXTERNAL)}) (rate({sel(c, 'external_calls_total')}[5m]))"),
        *_quantiles(c, "service_external", "external_call_duration_seconds", _EXTERNAL),
        _rate(c, "service_external", "external_call_retries", "external_call_retries_total",
              _EXTERNAL),
        *_quantiles(c, "service_llm", "gen_ai_client_operation_duration_seconds", _LLM),
        _rate(c, "service_llm", "gen_ai_client_tokens", "gen_ai_client_tokens_total",
              (*_LLM, "gen_ai_token_type")),
    ]})
    usage_labels = ("resource", "provider", "model", "role")
    by_usage = _by(usage_labels)
    groups.append({"name": "promkit-usage-cost", "rules": [
        _rate(c, "service_usage", "usage_units", "usage_units_total", usage_labels),
        _record("service_usage:usage_cost:rate5m",
                f"service_usage:usage_units:rate5m\n* on ({by_usage}) group_left\n"
                f"max by ({by_usage}) ({sel(c, 'usage_unit_price')})"),
        _record("service:usage_cost:rate5m",
                "sum by (service) (service_usage:usage_cost:rate5m)"),
    ]})
    groups.append({"name": "promkit-resources-self", "rules": [
        _record("service_instance:process_memory_usage_bytes:max",
                f"max by ({_by(('job', 'instance'))}) ({sel(c, 'process_memory_usage_bytes')})"),
        _rate(c, "service_instance", "process_cpu_time_seconds",
              "process_cpu_time_seconds_total", ("job", "instance")),
        _record("service_instance:process_open_file_descriptors:max",
                f"max by ({_by(('job', 'instance'))}) ({sel(c, 'process_open_file_descriptors')})"),
        _record("service_instance:system_filesystem_utilization_ratio:max",
                f"max by ({_by(('instance', 'path'))}) "
                f"({sel(c, 'system_filesystem_utilization_ratio')})"),
        *_quantiles(c, "service_instance", "python_event_loop_lag_seconds",
                    ("job", "instance"))[2:],
        _rate(c, "service", "promkit_instrumentation_errors",
              "promkit_instrumentation_errors_total", ("cause",)),
        _rate(c, "service", "promkit_series_overflow", "promkit_series_overflow_total",
              ("metric",)),
        *_quantiles(c, "service", "promkit_exposition_duration_seconds", ("format",))[2:],
    ]})
    groups += cpu_budget_groups(config)
    return groups
