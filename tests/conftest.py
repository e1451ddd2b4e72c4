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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Run `async def` tests on asyncio through anyio's pytest plugin (a
    # Starlette dependency), so no extra pytest plugin is needed.
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.add_marker(pytest.mark.anyio)
