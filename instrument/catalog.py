"""The metric catalog: every standard metric declared once, as data.

Instrumentation records into metrics built from these specs; the rule and
dashboard generators read the same specs. A team adds its own metrics with
:meth:`Catalog.add`, which validates them exactly like the standard ones.

Names follow Prometheus conventions (snake_case, base units, ``_total`` on
counters) and, where one exists, the OpenTelemetry semantic convention turned
into a Prometheus name (``http.server.request.duration`` becomes
``http_server_request_duration_seconds``, attribute ``http.route`` becomes the
label ``http_route``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BYTES_BUCKETS",
    "COUNT_BUCKETS",
    "DB_BUCKETS",
    "DEFAULT_SERIES_LIMIT",
    "HTTP_BUCKETS",
    "JOB_BUCKETS",
    "LLM_BUCKETS",
    "STANDARD_CATALOG",
    "Catalog",
    "CatalogError",
    "MetricKind",
    "MetricSpec",
]

MetricKind = Literal["counter", "gauge", "histogram"]

DEFAULT_SERIES_LIMIT = 1000
"""Label sets a metric keeps before new ones fold into the overflow series."""

# Latency buckets. The 0.2 s bound lets an SLO of "p95 < 200 ms" be read from
# the buckets exactly; the tail to 120 s covers slow LLM-backed endpoints.
HTTP_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)
JOB_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)
LLM_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
DB_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
BYTES_BUCKETS: tuple[float, ...] = (
    100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0, 100_000_000.0,
)
COUNT_BUCKETS: tuple[float, ...] = (
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 250.0, 1000.0,
)
LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

_METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Labels a scrape or the exposition formats own; a metric may not declare them.
_RESERVED_LABELS = frozenset({"le", "quantile", "job", "instance"})
# Suffixes the exposition formats add to sample names.
_RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")
# Units whose base unit Prometheus prefers: the name must say the base unit.
_NON_BASE_UNITS = {
    "milliseconds": "seconds", "microseconds": "seconds", "nanoseconds": "seconds",
    "ms": "seconds", "minutes": "seconds", "hours": "seconds", "days": "seconds",
    "kilobytes": "bytes", "megabytes": "bytes", "gigabytes": "bytes", "kb": "bytes",
    "mb": "bytes", "gb": "bytes", "bits": "bytes", "percent": "ratio", "pct": "ratio",
    # abbreviations promtool's linter flags
    "s": "seconds", "sec": "seconds", "secs": "seconds", "us": "seconds", "ns": "seconds",
    "m": "seconds", "h": "seconds", "d": "seconds", "b": "bytes", "tb": "bytes", "pb": "bytes",
}
# promtool's linter also flags a metric's own type in its name.
_TYPE_WORDS = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}
_UNITS = ("seconds", "bytes", "ratio", "celsius", "volts", "amperes", "joules", "grams", "meters")
# Gauge aggregation across processes, as prometheus-client names it.
_MULTIPROCESS_MODES = (
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
    "mostrecent", "livemostrecent",
)


class CatalogError(ValueError):
    """A metric definition breaks a naming, unit, label or bucket rule."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once.

    ``name`` is the full sample name: counters end in ``_total``; a unit, when
    given, is the base unit and appears in the name (``_seconds``, ``_bytes``).
    ``buckets`` are upper bounds for histograms (``+Inf`` is implied).
    ``series_limit`` caps the label sets; past it new sets fold into one
    overflow series. ``multiprocess_mode`` says how a gauge combines across
    worker processes (prometheus-client's modes).
    """

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] | None = None
    series_limit: int = DEFAULT_SERIES_LIMIT
    family: str = "custom"
    multiprocess_mode: str = "livesum"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Normalise sequences handed in as lists so specs compare and hash.
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.buckets is not None:
            object.__setattr__(self, "buckets", tuple(float(b) for b in self.buckets))
        _validate(self)

    @property
    def family_name(self) -> str:
        """The metric family name: a counter's name without ``_total``."""
        return self.name[: -len("_total")] if self.kind == "counter" else self.name

    def describe(self) -> str:
        """A one-line description used in error messages."""
        parts = [f"{self.kind} {self.name!r}", f"labels={list(self.labels)}"]
        if self.unit:
            parts.append(f"unit={self.unit!r}")
        if self.buckets is not None:
            parts.append(f"buckets={list(self.buckets)}")
        parts.append(f"series_limit={self.series_limit}")
        return "(" + ", ".join(parts) + ")"


def _validate(spec: MetricSpec) -> None:
    where = f"metric {spec.name!r}"
    if not isinstance(spec.name, str) or not _METRIC_NAME.match(spec.name):
        raise CatalogError(
            f"{where}: invalid name; use snake_case matching [a-z_][a-z0-9_]* "
            "(colons are reserved for recording rules)"
        )
    if spec.name.startswith("__"):
        raise CatalogError(f"{where}: names starting with '__' are reserved by Prometheus")
    if spec.kind not in ("counter", "gauge", "histogram"):
        raise CatalogError(f"{where}: kind must be counter, gauge or histogram, not {spec.kind!r}")
    if not spec.help or not spec.help.strip():
        raise CatalogError(f"{where}: help text is empty; say what the metric counts")
    if not spec.help.isascii():
        try:
            spec.help.encode("utf-8")
        except UnicodeEncodeError:
            raise CatalogError(
                f"{where}: help text holds a lone surrogate, which UTF-8 cannot encode"
            ) from None
    _validate_name_suffix(spec, where)
    _validate_unit(spec, where)
    _validate_labels(spec, where)
    _validate_buckets(spec, where)
    if isinstance(spec.series_limit, bool) or not isinstance(spec.series_limit, int) or (
        spec.series_limit < 1
    ):
        raise CatalogError(
            f"{where}: series_limit must be a positive integer, not {spec.series_limit!r}"
        )
    if spec.kind == "gauge" and spec.multiprocess_mode not in _MULTIPROCESS_MODES:
        raise CatalogError(
            f"{where}: multiprocess_mode {spec.multiprocess_mode!r} is not one of "
            f"{', '.join(_MULTIPROCESS_MODES)}"
        )


def _validate_name_suffix(spec: MetricSpec, where: str) -> None:
    if spec.kind == "counter":
        if not spec.name.endswith("_total") or spec.name == "_total":
            raise CatalogError(f"{where}: a counter's name must end in '_total'")
        if spec.family_name.endswith("_total"):
            raise CatalogError(f"{where}: the name ends in '_total' twice")
    elif spec.name.endswith(_RESERVED_SUFFIXES):
        suffix = next(s for s in _RESERVED_SUFFIXES if spec.name.endswith(s))
        hint = " (only counters end in '_total')" if suffix == "_total" else ""
        raise CatalogError(
            f"{where}: a {spec.kind}'s name may not end in {suffix!r}, which the exposition "
            f"formats add to sample names{hint}"
        )
    for word in spec.family_name.split("_"):
        if _TYPE_WORDS.get(word) == spec.kind:
            raise CatalogError(
                f"{where}: the name says {word!r}; the type is already in the metadata, "
                "so name what is measured"
            )
        if word in _NON_BASE_UNITS:
            raise CatalogError(
                f"{where}: {word!r} is not a base unit; record {_NON_BASE_UNITS[word]} "
                f"and name the metric with '_{_NON_BASE_UNITS[word]}'"
            )


def _validate_unit(spec: MetricSpec, where: str) -> None:
    if not spec.unit:
        return
    if spec.unit in _NON_BASE_UNITS:
        raise CatalogError(
            f"{where}: unit {spec.unit!r} is not a base unit; use {_NON_BASE_UNITS[spec.unit]!r}"
        )
    if spec.unit not in _UNITS:
        raise CatalogError(f"{where}: unknown unit {spec.unit!r}; use one of {', '.join(_UNITS)}")
    if not spec.family_name.endswith("_" + spec.unit):
        expected = f"..._{spec.unit}" + ("_total" if spec.kind == "counter" else "")
        raise CatalogError(
            f"{where}: unit is {spec.unit!r} but the name does not say so; name it {expected!r}"
        )


def _validate_labels(spec: MetricSpec, where: str) -> None:
    seen: set[str] = set()
    for label in spec.labels:
        if not isinstance(label, str) or not _LABEL_NAME.match(label):
            raise CatalogError(
                f"{where}: invalid label name {label!r}; use snake_case matching [a-z_][a-z0-9_]*"
            )
        if label.startswith("__"):
            raise CatalogError(f"{where}: label {label!r}: names starting with '__' are reserved")
        if label in _RESERVED_LABELS:
            raise CatalogError(
                f"{where}: label {label!r} is reserved (set by the exposition format or by "
                "Prometheus at scrape time)"
            )
        if label in seen:
            raise CatalogError(f"{where}: label {label!r} is declared twice")
        seen.add(label)


def _validate_buckets(spec: MetricSpec, where: str) -> None:
    if spec.kind != "histogram":
        if spec.buckets is not None:
            raise CatalogError(f"{where}: only histograms have buckets, this is a {spec.kind}")
        return
    if spec.buckets is None or len(spec.buckets) == 0:
        raise CatalogError(f"{where}: a histogram needs at least one finite bucket bound")
    bounds = list(spec.buckets)
    if bounds[-1] == math.inf:
        bounds.pop()  # +Inf is implied; accept it when written out
    if not bounds:
        raise CatalogError(f"{where}: a histogram needs at least one finite bucket bound")
    for i, bound in enumerate(bounds):
        if math.isnan(bound) or math.isinf(bound):
            raise CatalogError(f"{where}: bucket {i} is {bound}; bounds must be finite numbers")
        if i and bound <= bounds[i - 1]:
            raise CatalogError(
                f"{where}: buckets must strictly increase, but bucket {i} ({bound}) follows "
                f"{bounds[i - 1]}"
            )
    object.__setattr__(spec, "buckets", tuple(bounds))


class Catalog:
    """An ordered set of :class:`MetricSpec`, one per name.

    Adding a spec whose name is taken by a different definition raises
    :class:`CatalogError` naming both; adding the same definition again is a
    no-op, so modules can declare what they use without coordinating.
    """

    def __init__(self, specs: Iterable[MetricSpec] = ()) -> None:
        self._specs: dict[str, MetricSpec] = {}
        self._families: dict[str, MetricSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: MetricSpec) -> MetricSpec:
        if not isinstance(spec, MetricSpec):
            raise TypeError(f"Catalog.add takes a MetricSpec, not {type(spec).__name__}")
        existing = self._specs.get(spec.name)
        if existing is not None:
            if existing != spec:
                raise CatalogError(
                    f"metric {spec.name!r} is already defined as {existing.describe()}; "
                    f"cannot redefine it as {spec.describe()}"
                )
            return existing
        other = self._families.get(spec.family_name)
        if other is not None:
            raise CatalogError(
                f"metric {spec.name!r} would share the family name {spec.family_name!r} "
                f"with {other.describe()}"
            )
        self._specs[spec.name] = spec
        self._families[spec.family_name] = spec
        return spec

    def extend(self, specs: Iterable[MetricSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def get(self, name: str) -> MetricSpec | None:
        return self._specs.get(name)

    def __getitem__(self, name: str) -> MetricSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"metric {name!r} is not in the catalog") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def families(self) -> dict[str, list[MetricSpec]]:
        """Specs grouped by family (``http``, ``jobs``, ...), in declaration order."""
        grouped: dict[str, list[MetricSpec]] = {}
        for spec in self._specs.values():
            grouped.setdefault(spec.family, []).append(spec)
        return grouped

    def copy(self) -> Catalog:
        clone = Catalog()
        clone._specs = dict(self._specs)  # specs are frozen and already validated
        clone._families = dict(self._families)
        return clone


def _c(name: str, help: str, labels: tuple[str, ...] = (), **kw: Any) -> MetricSpec:
    return MetricSpec(name=name, kind="counter", help=help, labels=labels, **kw)


def _g(name: str, help: str, labels: tuple[str, ...] = (), **kw: Any) -> MetricSpec:
    return MetricSpec(name=name, kind="gauge", help=help, labels=labels, **kw)


def _h(name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...],
       **kw: Any) -> MetricSpec:
    return MetricSpec(name=name, kind="histogram", help=help, labels=labels, buckets=buckets, **kw)


_HTTP = ("http_request_method", "http_route", "http_response_status_code")
# The status class (2xx...) is derived from the code, so it adds no series;
# it keeps error-ratio queries free of regex matchers.
_HTTP_DURATION = (*_HTTP, "http_response_status_class")
_HTTP_ROUTE = ("http_request_method", "http_route")

STANDARD_CATALOG = Catalog([
    # HTTP server (OpenTelemetry http.server.* conventions).
    _h("http_server_request_duration_seconds",
       "Duration of HTTP server requests, from the first byte received to the last byte sent.",
       _HTTP_DURATION, HTTP_BUCKETS, unit="seconds", family="http", series_limit=2000),
    _g("http_server_active_requests", "HTTP server requests in flight.",
       ("http_request_method",), family="http"),
    _h("http_server_request_body_size_bytes", "Size of HTTP request bodies.",
       _HTTP_ROUTE, BYTES_BUCKETS, unit="bytes", family="http"),
    _h("http_server_response_body_size_bytes", "Size of HTTP response bodies.",
       _HTTP_ROUTE, BYTES_BUCKETS, unit="bytes", family="http"),
    _c("http_server_unhandled_exceptions_total",
       "Exceptions that escaped the application; each was answered as a 500 and re-raised.",
       (*_HTTP_ROUTE, "error_type"), family="http"),
    _c("http_server_client_disconnects_total",
       "HTTP requests whose client disconnected before the response was complete.",
       _HTTP_ROUTE, family="http"),
    # WebSocket.
    _g("websocket_server_active_connections", "Open WebSocket connections.",
       ("http_route",), family="websocket"),
    _c("websocket_server_messages_total", "WebSocket messages by direction (receive, transmit).",
       ("http_route", "direction"), family="websocket"),
    _h("websocket_server_session_duration_seconds", "Duration of WebSocket sessions.",
       ("http_route",), JOB_BUCKETS, unit="seconds", family="websocket"),
    _c("websocket_server_closes_total", "Closed WebSocket sessions by close code.",
       ("http_route", "close_code"), family="websocket"),
    # Auth.
    _c("auth_attempts_total",
       "Authentication attempts by type (password, token, oauth...) and outcome.",
       ("auth_type", "outcome"), family="auth"),
    # LLM / generative AI (OpenTelemetry gen_ai.client.* conventions).
    _c("gen_ai_client_tokens_total",
       "LLM tokens used, by provider, model and token type (input, output).",
       ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"), family="llm"),
    _h("gen_ai_client_operation_duration_seconds", "Duration of LLM calls.",
       ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name"),
       LLM_BUCKETS, unit="seconds", family="llm"),
    # Database (OpenTelemetry db.client.operation.duration).
    _h("db_client_operation_duration_seconds", "Duration of database operations.",
       ("db_system_name", "db_operation_name"), DB_BUCKETS, unit="seconds", family="db"),
    # Jobs.
    _c("jobs_created_total", "Jobs created (enqueued).", ("queue", "job_type"), family="jobs"),
    _h("job_enqueue_queue_depth", "Queue depth seen when a job was enqueued.",
       ("queue",), COUNT_BUCKETS, family="jobs"),
    _h("job_queue_wait_seconds", "Time from job creation to the start of its run.",
       ("queue", "job_type"), JOB_BUCKETS, unit="seconds", family="jobs"),
    _h("job_run_duration_seconds", "Time from the start of a job's run to its end.",
       ("queue", "job_type", "outcome"), JOB_BUCKETS, unit="seconds", family="jobs"),
    _h("job_duration_seconds", "Total job latency, from creation to a terminal status.",
       ("queue", "job_type", "outcome"), JOB_BUCKETS, unit="seconds", family="jobs"),
    _c("job_status_transitions_total", "Job status transitions.",
       ("job_type", "from_status", "to_status"), family="jobs"),
    _c("jobs_finished_total", "Jobs that reached a terminal status, by outcome and error code.",
       ("queue", "job_type", "outcome", "error_code"), family="jobs"),
    _g("jobs_in_flight", "Jobs being run now.", ("job_type",), family="jobs"),
    _c("jobs_recovered_total", "Jobs recovered or requeued, by reason.",
       ("job_type", "reason"), family="jobs"),
    _c("jobs_skipped_total", "Jobs skipped or evicted without running, by reason.",
       ("job_type", "reason"), family="jobs"),
    _c("job_persist_failures_total", "Failures to persist a job's state or result.",
       ("store",), family="jobs"),
    _c("worker_cold_starts_total", "Worker cold starts (first job after process start).",
       ("worker_type",), family="jobs"),
    _c("cache_requests_total", "Cache lookups by cache name and result (hit, miss).",
       ("cache", "result"), family="jobs"),
    # Worker stages.
    _h("job_stage_duration_seconds", "Wall time of a job stage.",
       ("stage",), JOB_BUCKETS, unit="seconds", family="stages"),
    _c("job_stage_cpu_seconds_total", "CPU time spent in a job stage (thread CPU clock).",
       ("stage",), unit="seconds", family="stages"),
    _c("job_stage_failures_total", "Job stage failures by stage and error code.",
       ("stage", "error_code"), family="stages"),
    # External calls. The callee is `peer_service` (OpenTelemetry's peer.service):
    # a plain `service` label would clash with the scrape target's own.
    _c("external_calls_total", "Calls to external services by outcome (success, error, timeout).",
       ("peer_service", "operation", "outcome", "status_class"), family="external"),
    _h("external_call_duration_seconds", "Duration of calls to external services.",
       ("peer_service", "operation", "outcome"), LLM_BUCKETS, unit="seconds",
       family="external"),
    _c("external_call_retries_total", "Retries of calls to external services.",
       ("peer_service", "operation"), family="external"),
    # Usage and cost.
    _c("usage_units_total",
       "Billable usage by resource (llm_tokens, ocr_pages, audio_seconds, cpu_seconds...).",
       ("resource", "provider", "model", "role"), family="usage"),
    _g("usage_unit_price", "Price of one usage unit in the configured currency.",
       ("resource", "provider", "model", "role"), family="usage", multiprocess_mode="livemax"),
    _g("usage_monthly_budget_units", "Monthly budget for a resource, in its usage units.",
       ("resource",), family="usage", multiprocess_mode="livemax"),
    # Queues.
    _g("queue_depth", "Items waiting in a queue.", ("queue",), family="queues",
       multiprocess_mode="max"),
    _g("queue_oldest_item_age_seconds", "Age of the oldest item waiting in a queue.",
       ("queue",), unit="seconds", family="queues", multiprocess_mode="max"),
    _g("queue_stream_pending", "Entries delivered to a stream consumer group but not acknowledged.",
       ("queue", "group"), family="queues", multiprocess_mode="max"),
    _g("queue_stream_lag", "Entries in a stream not yet delivered to a consumer group.",
       ("queue", "group"), family="queues", multiprocess_mode="max"),
    _g("queue_up", "1 when the last read of a queue succeeded, 0 when it failed or timed out.",
       ("queue",), family="queues", multiprocess_mode="min"),
    # Process resources (OpenTelemetry process.* conventions; prometheus-client's
    # own process_* collector keeps its names beside these).
    _g("process_memory_usage_bytes", "Resident memory of the process.", unit="bytes",
       family="resources", multiprocess_mode="liveall"),
    _c("process_cpu_time_seconds_total", "CPU time used by the process.", unit="seconds",
       family="resources"),
    _g("process_open_file_descriptors", "Open file descriptors of the process.",
       family="resources", multiprocess_mode="liveall"),
    _g("process_threads", "Threads of the process.", family="resources",
       multiprocess_mode="liveall"),
    _g("system_filesystem_utilization_ratio", "Used fraction of the filesystem holding a path.",
       ("path",), unit="ratio", family="resources", multiprocess_mode="livemax"),
    _h("python_event_loop_lag_seconds", "Delay of the asyncio event loop in running a timer.",
       (), LAG_BUCKETS, unit="seconds", family="resources"),
    # promkit's own health.
    _c("promkit_instrumentation_errors_total",
       "Failures inside promkit's recording, swallowed so the application never sees them.",
       ("cause",), family="self"),
    _c("promkit_series_overflow_total",
       "Recordings folded into a metric's overflow series because it reached its series limit.",
       ("metric",), family="self"),
    _h("promkit_exposition_duration_seconds", "Time to render a /metrics exposition.",
       ("format",), LAG_BUCKETS, unit="seconds", family="self"),
])
