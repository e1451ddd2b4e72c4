"""Integration fixtures: real Prometheus, Alertmanager, Redis and ASGI app servers.

All servers listen on 127.0.0.1 on free ports, keep their files in pytest's
tmp dirs and are stopped in finalizers (SIGTERM to the process group, SIGKILL
after a bounded wait). A missing binary skips the test with the reason;
``make test`` installs the Debian packages first, so normally they all run.
Every test under tests/integration/ is marked ``integration``.

Fixtures (see each docstring):

- ``prometheus(targets=..., rule_files=..., alertmanagers=..., ...) -> PrometheusServer``
- ``alertmanager(config=None, ...) -> AlertmanagerServer``
- ``redis_server -> RedisServer``
- ``uvicorn_app(app, env=None, workers=None, ...) -> AppServer``
- ``gunicorn_app(app, workers=2, env=None, ...) -> AppServer``
- ``multiproc_dir -> Path`` (a fresh, empty PROMETHEUS_MULTIPROC_DIR)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ._servers import (
    PACKAGES,
    AlertmanagerServer,
    AppServer,
    PrometheusServer,
    RedisServer,
    find_binary,
    prometheus_config,
    start_alertmanager,
    start_app,
    start_prometheus,
    start_redis,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def require_binary(name: str) -> str:
    """The path of a server binary, or skip the test saying which package provides it."""
    path = find_binary(name)
    if path is None:
        package = PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed (Debian package {package!r}; "
                    "`make test` installs it via scripts/ensure-debs.sh)")
    return path


class _Stack:
    """Stops what a factory started, last first, even when a test fails."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], None]] = []

    def push(self, stop: Callable[[], None]) -> None:
        self._stops.append(stop)

    def close(self) -> None:
        errors: list[BaseException] = []
        while self._stops:
            try:
                self._stops.pop()()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def _stack() -> Iterator[_Stack]:
    stack = _Stack()
    try:
        yield stack
    finally:
        stack.close()


_counter = itertools.count()


def _workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}-{next(_counter)}"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def prometheus(tmp_path: Path, _stack: _Stack) -> Callable[..., PrometheusServer]:
    """Factory: start a real Prometheus scraping ``targets``.

    ``prometheus(targets=["127.0.0.1:8000", "http://127.0.0.1:9000/other"],
    rule_files=[path, ...], alertmanagers=["127.0.0.1:9093"],
    scrape_interval="1s", evaluation_interval="1s", scrape_configs=[{...}],
    features=["exemplar-storage"], extra_args=[...], job="app")``

    Returns a :class:`PrometheusServer` (``.url``, ``.query(expr)``,
    ``.value(expr)``, ``.wait_for(expr, predicate, timeout)``,
    ``.wait_for_value(expr, predicate, timeout)``, ``.targets()``,
    ``.reload(new_config)``, ``.client`` for rules/alerts/exemplars). Build a
    new config for ``reload`` with ``_servers.prometheus_config(...)``.
    Started with ``--web.enable-lifecycle`` and ``--rules.alert.resend-delay=1s``;
    ready when ``/-/ready`` answers. Prometheus 2.42 applies discovered targets
    and Alertmanagers at most every 5 s, so the first scrape (and a target
    added by ``reload``) lands about 5-6 s after start: wait with
    ``client.wait_for_targets_up()`` / ``wait_for(...)``, never with sleeps.
    """
    binary = require_binary("prometheus")

    def start(targets: Iterable[str] = (), *, rule_files: Iterable[str | Path] = (),
              alertmanagers: Iterable[str] = (), scrape_interval: str = "1s",
              evaluation_interval: str = "1s", scrape_configs: Iterable[Mapping[str, Any]] = (),
              features: Iterable[str] = (), extra_args: Iterable[str] = (),
              job: str = "app", external_labels: Mapping[str, str] | None = None,
              ready_timeout: float = 20.0) -> PrometheusServer:
        config = prometheus_config(
            targets, job=job, scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval, rule_files=rule_files,
            alertmanagers=alertmanagers, scrape_configs=scrape_configs,
            external_labels=external_labels,
        )
        server = start_prometheus(_workdir(tmp_path, "prometheus"), config, binary=binary,
                                  features=features, extra_args=extra_args,
                                  ready_timeout=ready_timeout)
        _stack.push(server.stop)
        return server

    return start


@pytest.fixture
def alertmanager(tmp_path: Path, _stack: _Stack) -> Callable[..., AlertmanagerServer]:
    """Factory: start a real Alertmanager (clustering off, storage in a tmp dir).

    ``alertmanager(config=None | dict | yaml_text, extra_args=[...])``; the
    default config routes everything to a receiver that does nothing. Returns
    an :class:`AlertmanagerServer` (``.url``, ``.address`` for Prometheus's
    ``alertmanagers=``, ``.alerts(**label_filters)``, ``.wait_for_alerts(...)``,
    ``.post_alerts([...])``, ``.reload()``).
    """
    binary = require_binary("prometheus-alertmanager")

    def start(config: Mapping[str, Any] | str | None = None, *,
              extra_args: Iterable[str] = (), ready_timeout: float = 20.0) -> AlertmanagerServer:
        server = start_alertmanager(_workdir(tmp_path, "alertmanager"), config, binary=binary,
                                    extra_args=extra_args, ready_timeout=ready_timeout)
        _stack.push(server.stop)
        return server

    return start


@pytest.fixture
def debug_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server that also accepts ``DEBUG SLEEP`` from loopback (slow-Redis faults)."""
    binary = require_binary("redis-server")
    server = start_redis(_workdir(tmp_path, "debug-redis"), binary=binary,
                         extra_args=["--enable-debug-command", "local"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for this test (no persistence; ready when PING answers).

    ``.url`` (``redis://127.0.0.1:<port>/0``), ``.host``, ``.port``,
    ``.client(**kwargs)`` (a ``redis.Redis``).
    """
    binary = require_binary("redis-server")
    server = start_redis(_workdir(tmp_path, "redis"), binary=binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def uvicorn_app(tmp_path: Path, _stack: _Stack) -> Callable[..., AppServer]:
    """Factory: serve an ASGI app with uvicorn in a subprocess on a free port.

    ``uvicorn_app("module:attr", env={...}, workers=None, extra_args=[...],
    ready_path="/", ready=None, ready_timeout=20.0)``. ``module`` is imported
    from tests/apps/ (or the repo root). Ready when ``ready_path`` answers
    with a status below 500 (or ``ready(response)`` is true). Returns an
    :class:`AppServer` (``.url``, ``.address``, ``.pid``, ``.get(path)``).
    """
    def start(app: str, *, env: Mapping[str, str] | None = None, workers: int | None = None,
              extra_args: Iterable[str] = (), ready_path: str = "/",
              ready: Callable[..., bool] | None = None,
              ready_timeout: float = 20.0) -> AppServer:
        server = start_app(_workdir(tmp_path, "uvicorn"), app, server="uvicorn", workers=workers,
                           env=env, extra_args=extra_args, ready_path=ready_path, ready=ready,
                           ready_timeout=ready_timeout)
        _stack.push(server.stop)
        return server

    return start


@pytest.fixture
def gunicorn_app(tmp_path: Path, _stack: _Stack) -> Callable[..., AppServer]:
    """Factory: serve an ASGI app with gunicorn + ``uvicorn.workers.UvicornWorker``.

    Same arguments as ``uvicorn_app`` (``workers`` defaults to 2); pass e.g.
    ``extra_args=["--config", "python:gunicorn_conf"]`` for hooks.
    """
    def start(app: str, *, env: Mapping[str, str] | None = None, workers: int = 2,
              extra_args: Iterable[str] = (), ready_path: str = "/",
              ready: Callable[..., bool] | None = None,
              ready_timeout: float = 20.0) -> AppServer:
        server = start_app(_workdir(tmp_path, "gunicorn"), app, server="gunicorn",
                           workers=workers, env=env, extra_args=extra_args,
                           ready_path=ready_path, ready=ready, ready_timeout=ready_timeout)
        _stack.push(server.stop)
        return server

    return start


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory to use as PROMETHEUS_MULTIPROC_DIR for a subprocess app."""
    return _workdir(tmp_path, "multiproc")
