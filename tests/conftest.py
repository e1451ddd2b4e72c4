"""Shared fixtures. Integration fixtures (real Prometheus, Redis...) live in
``tests/integration/conftest.py``."""

import inspect

import pytest
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry


@pytest.fixture
def collector_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def registry(collector_registry: CollectorRegistry) -> MetricsRegistry:
    """A MetricsRegistry on its own prometheus-client registry (not the global one)."""
    return MetricsRegistry(collector_registry)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    # Run `async def` tests on asyncio through anyio's pytest plugin (anyio is a
    # promkit dependency), so no extra pytest plugin is needed. Marked as they are
    # collected, before anyio's own hook looks for the mark: anyio < 4 only sees
    # marks there (a mark added in pytest_collection_modifyitems is too late).
    if (
        inspect.iscoroutinefunction(obj)
        and name.startswith("test")
        and not any(m.name == "anyio" for m in getattr(obj, "pytestmark", ()))
    ):
        pytest.mark.anyio(obj)
