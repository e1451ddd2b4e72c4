"""Shared fixtures. Integration fixtures (real Prometheus, Redis...) live in
``tests/integration/conftest.py``."""

import pytest
from prometheus_client import CollectorRegistry

from instrument import MetricsRegistry


@pytest.fixture
def collector_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def registry(collector_registry: CollectorRegistry) -> MetricsRegistry:
    """A MetricsRegistry on its own prometheus-client registry (not the global one)."""
    return MetricsRegistry(collector_registry)
