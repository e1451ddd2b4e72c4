"""What the exporter server's tests share: a registry with data, a running server, raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from promkit.exporters import MetricsServer, start_metrics_server
from promkit.instrument import MetricsRegistry

TOKEN = "s3cret-token-for-tests"


def filled_registry() -> MetricsRegistry:
    """The ``registry`` fixture of these tests: a counter and a histogram with data."""
    registry = MetricsRegistry(CollectorRegistry())
    orders = registry.counter("orders_total", "Orders placed.", ["channel"])
    orders.labels("web").inc(3)
    latency = registry.histogram("checkout_seconds", "Checkout time.", buckets=[0.1, 1.0])
    latency.observe(0.05)
    latency.observe(0.5)
    return registry


def running_server(registry: MetricsRegistry) -> Iterator[MetricsServer]:
    """The ``server`` fixture of these tests: a started server, stopped afterwards."""
    server = start_metrics_server(port=0, registry=registry)
    yield server
    server.stop()


def raw_request(server: MetricsServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def wait_until(check, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closed ``sock`` (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and content-length body) from a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body
