"""MetricsRegistry: typed, validated, cardinality-bounded metrics on prometheus-client."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator
from typing import Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client import values as _pc_values

from promkit.instrument._compat import created_series_enabled, value_class_is_multiprocess
from promkit.instrument._multiproc_dir import multiprocess_dir
from promkit.instrument._safety import FailureSink
from promkit.instrument._secrets import contains_secret
from promkit.instrument.catalog import (
    STANDARD_CATALOG,
    Catalog,
    CatalogError,
    MetricKind,
    MetricSpec,
)
from promkit.instrument.metrics import Counter, Gauge, Histogram, MetricBase

__all__ = [
    "MetricsRegistry",
    "clean_label_value",
    "created_series_enabled",
    "default_registry",
    "multiprocess_dir",
]

M = TypeVar("M", bound=MetricBase)
LabelNames = list[str] | tuple[str, ...]

DEFAULT_MAX_LABEL_LENGTH = 128
REDACTED_VALUE = "__redacted__"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def clean_label_value(value: object, max_length: int = DEFAULT_MAX_LABEL_LENGTH) -> str:
    """Turn a label value into something safe to export.

    Query strings are cut from paths and URLs (they carry signed tokens), values
    that hold an email, a credential or a card number become ``__redacted__``
    (credentials and cards by the same patterns log redaction uses:
    ``promkit.instrument._secrets``), and the rest is capped at ``max_length``
    characters. Runs once per new label set, never
    on the cached hot path.
    """
    text = value if type(value) is str else str(value)
    if "?" in text and (text.startswith("/") or "://" in text):
        text = text.split("?", 1)[0]
    # Cap first: the checks below then run on at most max_length characters, so a
    # 10 KB value costs no more than a short one (no quadratic regex scans).
    if len(text) > max_length:
        text = text[:max_length]
    # Any "user@host" shape, even one the cap cut short, is treated as an email.
    if ("@" in text and _EMAIL.search(text)) or contains_secret(text):
        return REDACTED_VALUE
    if not text.isascii():
        # A lone surrogate cannot be encoded as UTF-8: left in, it would fail every scrape.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


_multiprocess_value_class: Any = None
_mp_lock = threading.Lock()


def _shared_multiprocess_value_class() -> Any:
    # prometheus-client picks its value class at import time. If it already
    # writes mmap files we must share its class (two writers on one file would
    # corrupt it); otherwise we make the one class all promkit metrics share.
    global _multiprocess_value_class
    with _mp_lock:
        if _multiprocess_value_class is None:
            if value_class_is_multiprocess(_pc_values.ValueClass):
                _multiprocess_value_class = _pc_values.ValueClass
            else:
                _multiprocess_value_class = _pc_values.MultiProcessValue()
        return _multiprocess_value_class


class _SharedState:
    """What all MetricsRegistry objects on one collector registry share."""

    def __init__(self, max_label_length: int, multiprocess: bool) -> None:
        self.catalog = STANDARD_CATALOG.copy()
        self.max_label_length = max_label_length
        self.multiprocess = multiprocess
        self.value_class = _shared_multiprocess_value_class() if multiprocess else None
        self.metrics: dict[str, MetricBase] = {}
        self.lock = threading.RLock()
        self.failures = FailureSink()


_states: weakref.WeakKeyDictionary[CollectorRegistry, _SharedState] = (
    weakref.WeakKeyDictionary()
)
_states_lock = threading.Lock()


class MetricsRegistry:
    """Get-or-create typed metrics, validated against a catalog.

    ``registry.histogram("http_server_request_duration_seconds")`` builds the
    catalog's definition; ``registry.counter("orders_total", "Orders placed.",
    ["channel"])`` defines a new one (added to this registry's catalog with
    the same validation). Asking again for the same name with the same
    definition returns the same metric; a different definition raises
    :class:`~promkit.instrument.catalog.CatalogError` naming both.

    Metrics are registered as collectors in ``collector_registry``
    (prometheus-client's default ``REGISTRY`` unless given), so existing
    prometheus-client metrics and tooling keep working beside them. Every
    MetricsRegistry on the same collector registry shares its metrics,
    catalog and self-metrics: ``MetricsRegistry()`` anywhere in a process
    sees the same metrics as :func:`default_registry`.
    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, or
    ``multiprocess=True``) values live in prometheus-client's mmap files.
    """

    def __init__(
        self,
        collector_registry: CollectorRegistry | None = None,
        *,
        catalog: Catalog | None = None,
        max_label_length: int = DEFAULT_MAX_LABEL_LENGTH,
        multiprocess: bool | None = None,
    ) -> None:
        if max_label_length < 1:
            raise ValueError(f"max_label_length must be at least 1, not {max_label_length}")
        self.collector_registry = (
            collector_registry if collector_registry is not None else prometheus_client.REGISTRY
        )
        if multiprocess is None:
            multiprocess = multiprocess_dir() is not None
        if multiprocess and multiprocess_dir() is None:
            raise ValueError("multiprocess=True needs PROMETHEUS_MULTIPROC_DIR set to a directory")
        # Every MetricsRegistry on one collector registry shares one state, so
        # a library's registry and the app's see the same metrics and
        # self-metrics instead of colliding.
        with _states_lock:
            state = _states.get(self.collector_registry)
            created = state is None
            if state is None:
                state = _SharedState(max_label_length, multiprocess)
                _states[self.collector_registry] = state
        if not created and (state.max_label_length, state.multiprocess) != (
            max_label_length, multiprocess
        ):
            raise ValueError(
                "a MetricsRegistry already exists on this collector registry with "
                f"max_label_length={state.max_label_length}, multiprocess={state.multiprocess}; "
                f"got max_label_length={max_label_length}, multiprocess={multiprocess}"
            )
        if catalog is not None and catalog is not state.catalog:
            state.catalog.extend(catalog)
        self.catalog = state.catalog
        self.max_label_length = state.max_label_length
        self.multiprocess = state.multiprocess
        self._value_class = state.value_class
        self._metrics = state.metrics
        self._lock = state.lock
        self.failures = state.failures
        if created:
            self.failures.errors = self.counter("promkit_instrumentation_errors_total")
            self.failures.overflows = self.counter("promkit_series_overflow_total")

    # -- typed helpers ------------------------------------------------------------------

    def counter(self, name: str, help: str | None = None, labels: LabelNames | None = None,
                *, unit: str | None = None, series_limit: int | None = None) -> Counter:
        """Get or create a counter (its name must end in ``_total``)."""
        return self._define(Counter, "counter", name, help, labels, unit=unit,
                            series_limit=series_limit)

    def gauge(self, name: str, help: str | None = None, labels: LabelNames | None = None,
              *, unit: str | None = None, series_limit: int | None = None,
              multiprocess_mode: str | None = None) -> Gauge:
        """Get or create a gauge."""
        return self._define(Gauge, "gauge", name, help, labels, unit=unit,
                            series_limit=series_limit, multiprocess_mode=multiprocess_mode)

    def histogram(self, name: str, help: str | None = None,
                  labels: list[str] | tuple[str, ...] | None = None, *,
                  buckets: list[float] | tuple[float, ...] | None = None, unit: str | None = None,
                  series_limit: int | None = None) -> Histogram:
        """Get or create a histogram."""
        return self._define(Histogram, "histogram", name, help, labels, unit=unit,
                            series_limit=series_limit, buckets=buckets)

    def metric(self, spec_or_name: MetricSpec | str) -> MetricBase:
        """Get or create a metric from a spec, or from its name in the catalog."""
        spec = self.catalog[spec_or_name] if isinstance(spec_or_name, str) else spec_or_name
        cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[spec.kind]
        return self._create(cls, spec)

    def get(self, name: str) -> MetricBase | None:
        """The metric already created under ``name``, if any."""
        return self._metrics.get(name)

    def __iter__(self) -> Iterator[MetricBase]:
        return iter(list(self._metrics.values()))

    def __len__(self) -> int:
        return len(self._metrics)

    def unregister(self, name: str) -> None:
        """Remove a metric from this registry and from the collector registry."""
        with self._lock:
            metric = self._metrics.pop(name, None)
            if metric is not None:
                self.collector_registry.unregister(metric)

    def clean_label_value(self, value: object) -> str:
        return clean_label_value(value, self.max_label_length)

    # -- internals --------------------------------------------------------------------

    def _define(self, cls: type[M], kind: MetricKind, name: str, help: str | None,
                labels: list[str] | tuple[str, ...] | None, **options: Any) -> M:
        given = {k: v for k, v in options.items() if v is not None}
        if help is not None:
            given["help"] = help
        if labels is not None:
            if isinstance(labels, str):
                raise CatalogError(
                    f"metric {name!r}: labels must be a list of names, not the string {labels!r}"
                )
            given["labels"] = tuple(labels)
        if "buckets" in given:
            given["buckets"] = tuple(given["buckets"])
        base = self._metrics[name].spec if name in self._metrics else self.catalog.get(name)
        if base is None:
            if "help" not in given:
                raise CatalogError(
                    f"metric {name!r} is not in the catalog; define it with a help text "
                    f"(and labels), e.g. registry.{kind}({name!r}, 'What it counts.', [...])"
                )
            spec = MetricSpec(name=name, kind=kind, **given)
        else:
            if base.kind != kind:
                raise CatalogError(
                    f"metric {name!r} is defined as {base.describe()}; it cannot also be a {kind}"
                )
            fields = {f: getattr(base, f) for f in
                      ("help", "labels", "unit", "buckets", "series_limit", "family",
                       "multiprocess_mode")}
            fields.update(given)
            spec = MetricSpec(name=name, kind=kind, **fields)
            if spec != base:
                raise CatalogError(
                    f"metric {name!r} is already defined as {base.describe()}; "
                    f"cannot redefine it as {spec.describe()}"
                )
        return self._create(cls, spec)

    def _create(self, cls: type[M], spec: MetricSpec) -> M:
        with self._lock:
            existing = self._metrics.get(spec.name)
            if existing is not None:
                if existing.spec != spec or not isinstance(existing, cls):
                    raise CatalogError(
                        f"metric {spec.name!r} is already defined as {existing.spec.describe()}; "
                        f"cannot redefine it as {spec.describe()}"
                    )
                return existing
            self.catalog.add(spec)
            metric = cls(spec, self.failures, self.clean_label_value, self._value_class)
            try:
                self.collector_registry.register(metric)
            except ValueError as exc:
                raise CatalogError(
                    f"metric {spec.name!r} collides with a collector already registered in "
                    f"the prometheus-client registry: {exc}"
                ) from None
            self._metrics[spec.name] = metric
            return metric


_default: MetricsRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> MetricsRegistry:
    """The process-wide MetricsRegistry, on prometheus-client's default REGISTRY."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MetricsRegistry()
        return _default


def catalog_metric(registry: MetricsRegistry, kind: type[M], name: str) -> M:
    """The catalog metric ``name`` of ``kind`` in ``registry``.

    For promkit's own recorders (external calls, usage): one dict lookup once
    the metric exists, created from the catalog on first use.
    """
    metric = registry.get(name)
    if not isinstance(metric, kind):
        metric = registry.metric(name)
        if not isinstance(metric, kind):
            raise CatalogError(f"metric {name!r} is a {metric.kind}, not a {kind.kind}")
    return metric
