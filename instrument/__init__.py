"""promkit's recording side: catalog, registry and (in later releases) the
ASGI middleware, stage timers, job lifecycle, external calls, resource
sampler, queue collectors, correlation, logging and tracing."""

from instrument._metrics import OVERFLOW_VALUE, Counter, Gauge, Histogram
from instrument._version import __version__
from instrument.catalog import STANDARD_CATALOG, Catalog, CatalogError, MetricSpec
from instrument.registry import MetricsRegistry, default_registry

__all__ = [
    "OVERFLOW_VALUE",
    "STANDARD_CATALOG",
    "Catalog",
    "CatalogError",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricSpec",
    "MetricsRegistry",
    "__version__",
    "default_registry",
]
