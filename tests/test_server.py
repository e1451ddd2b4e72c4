"""The exporter server's lifecycle: start, stop, a busy port, serving in the foreground."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
import pytest
from _metrics_servers import TOKEN, filled_registry, running_server
from prometheus_client import CollectorRegistry

from promkit.exporters import MetricsServer, ServerLimits, serve_metrics, start_metrics_server
from promkit.instrument import MetricsRegistry

registry = pytest.fixture(filled_registry, name="registry")
server = pytest.fixture(running_server, name="server")


def test_stop_frees_the_port_and_is_idempotent(registry: MetricsRegistry) -> None:
    server = start_metrics_server(registry=registry)
    port = server.port
    assert httpx.get(server.url).status_code == 200
    server.stop()
    server.stop()
    assert not server._thread.is_alive()
    assert not any(t.name == "promkit-metrics-server" and t.is_alive()
                   for t in threading.enumerate())
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)
    with socket.socket() as sock:  # the port is ours to bind again
        sock.bind(("127.0.0.1", port))
    again = start_metrics_server(port=port, registry=registry)
    try:
        assert again.port == port and httpx.get(again.url).status_code == 200
    finally:
        again.stop()


def test_stop_while_a_connection_is_open(registry: MetricsRegistry) -> None:
    server = start_metrics_server(registry=registry)
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        time.sleep(0.1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5 and not server._thread.is_alive()


def test_a_busy_port_raises_oserror(server: MetricsServer, registry: MetricsRegistry) -> None:
    with pytest.raises(OSError):
        start_metrics_server(port=server.port, registry=registry)


def test_bad_arguments(registry: MetricsRegistry) -> None:
    with pytest.raises(ValueError, match="port must be an integer from 0 to 65535"):
        start_metrics_server(port=70000, registry=registry)
    with pytest.raises(ValueError, match="metrics token is empty"):
        start_metrics_server(registry=registry, token=" ")
    with pytest.raises(ValueError, match="max_headers must be positive"):
        ServerLimits(max_headers=0)


def test_serve_metrics_in_the_foreground(registry: MetricsRegistry) -> None:
    async def main() -> tuple[int, str]:
        started: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.create_task(
            serve_metrics("127.0.0.1", 0, registry, TOKEN, on_started=started.put_nowait))
        url = await asyncio.wait_for(started.get(), 5)
        async with httpx.AsyncClient() as client:
            response = await client.get(url, headers={"authorization": f"Bearer {TOKEN}"})
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return response.status_code, url

    status, url = asyncio.run(main())
    assert status == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_stop_with_an_idle_keep_alive_connection_logs_no_error(caplog):
    # Prometheus keeps a connection open between scrapes; stopping must be quiet.
    server = start_metrics_server(port=0, registry=MetricsRegistry(CollectorRegistry()))
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with caplog.at_level(logging.WARNING):
            server.stop()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
