"""The exporter server's connections: scrapes over real loopback sockets, limits, errors."""

from __future__ import annotations

import gzip
import socket
import threading
import time

import httpx
import pytest
from _metrics_servers import (
    TOKEN,
    closed_by_server,
    filled_registry,
    raw_request,
    read_response,
    running_server,
    status_of,
    wait_until,
)
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from promkit.exporters import MetricsServer, ServerLimits, start_metrics_server
from promkit.instrument import MetricsRegistry

registry = pytest.fixture(filled_registry, name="registry")
server = pytest.fixture(running_server, name="server")


def test_text_exposition(server: MetricsServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    response = httpx.get(server.url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'orders_total{channel="web"} 3.0' in response.text
    assert 'checkout_seconds_bucket{le="1.0"} 2.0' in response.text


def test_openmetrics_parses_strictly(server: MetricsServer) -> None:
    response = httpx.get(server.url, headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["orders"].samples[0].value == 3


@pytest.mark.parametrize("how", ["query", "accept"])
def test_json_snapshot(server: MetricsServer, how: str) -> None:
    if how == "query":
        response = httpx.get(server.url, params={"format": "json"})
    else:
        response = httpx.get(server.url, headers={"accept": "application/json"})
    assert response.headers["content-type"] == "application/json"
    metrics = {m["name"]: m for m in response.json()["metrics"]}
    assert metrics["orders_total"]["samples"] == [{"labels": {"channel": "web"}, "value": 3.0}]
    histogram = metrics["checkout_seconds"]["samples"][0]
    assert histogram["count"] == 2 and histogram["buckets"]["+Inf"] == 2


def test_gzip_when_accepted(registry: MetricsRegistry, server: MetricsServer) -> None:
    many = registry.counter("items_total", "Items.", ["item"])
    for i in range(200):
        many.labels(f"item-{i}").inc()
    plain = httpx.get(server.url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.Client() as client, client.stream(
        "GET", server.url, headers={"accept-encoding": "gzip"}
    ) as response:
        assert response.headers["content-encoding"] == "gzip"
        compressed = b"".join(response.iter_raw())
    assert int(response.headers["content-length"]) == len(compressed)
    assert 'items_total{item="item-199"} 1.0' in gzip.decompress(compressed).decode()


def test_head_has_headers_and_no_body(server: MetricsServer) -> None:
    request = b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = raw_request(server, request)
    head, _, body = response.partition(b"\r\n\r\n")
    assert status_of(response) == 200 and body == b""
    assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) > 0


def test_token_required_when_configured(registry: MetricsRegistry) -> None:
    with start_metrics_server(registry=registry, token=TOKEN) as server:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            response = httpx.get(server.url, headers=headers)
            assert response.status_code == 401
            assert "orders_total" not in response.text
        ok = httpx.get(server.url, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "orders_total" in ok.text


def test_not_found_and_index_page(server: MetricsServer) -> None:
    base = server.url.removesuffix("/metrics")
    missing = httpx.get(base + "/nope")
    assert missing.status_code == 404 and "orders_total" not in missing.text
    assert httpx.get(base + "/metrics/extra").status_code == 404
    index = httpx.get(base + "/")
    assert index.status_code == 200 and 'href="/metrics"' in index.text
    assert httpx.post(base + "/").status_code == 405
    assert httpx.post(server.url).status_code == 405


def test_keep_alive_serves_several_requests_on_one_connection(server: MetricsServer) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = raw_request(server, request + request + last)  # pipelined
    assert response.count(b"HTTP/1.1 200 OK") == 3
    assert response.count(b"connection: keep-alive") == 2
    assert response.count(b"connection: close") == 1


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET metrics HTTP/1.1\r\n\r\n", 400),
        (b"G(T /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.x\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /met\x00rics HTTP/1.1\r\n\r\n", 400),
        (b"GET /%ff HTTP/1.1\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4, 400),  # TLS
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nbad name: x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         400),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         501),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 8000) for i in range(20)) + b"\r\n", 431),
    ],
)
def test_bad_requests_are_refused_and_the_server_keeps_serving(
    server: MetricsServer, data: bytes, status: int
) -> None:
    response = raw_request(server, data)
    assert status_of(response) == status
    assert b"connection: close" in response
    assert b"orders_total" not in response
    assert httpx.get(server.url).status_code == 200


GET = b"GET /metrics HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (GET + b"\r\n", b"HTTP/1.1 request without a Host header"),
        (GET + b"Host: a\r\nHost: a\r\n\r\n", b"more than one Host header"),
        (GET + b"Host: a\r\nX: y\r\nhost: b\r\n\r\n", b"more than one Host header"),
        (b"GET /metrics HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", b"more than one Host"),
        (GET + b"Host: a b\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: a/b\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: user@a\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: a:80x\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: a:80:81\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: [::1\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: a%zz\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: \xc3\xa9.example\r\n\r\n", b"invalid Host header"),
        (GET + b"Host: a\\b\r\n\r\n", b"invalid Host header"),
    ],
)
def test_host_is_validated_as_rfc_9112_says(server: MetricsServer, head: bytes,
                                            message: bytes) -> None:
    response = raw_request(server, head)
    assert status_of(response) == 400 and message in response
    assert b"orders_total" not in response


@pytest.mark.parametrize(
    "head",
    [
        GET + b"Host: 127.0.0.1:9464\r\n\r\n",
        GET + b"Host: metrics.example.com\r\n\r\n",
        GET + b"Host: [::1]:9464\r\n\r\n",
        GET + b"Host: [fe80::1%25eth0]\r\n\r\n",
        GET + b"Host: a%2db:\r\n\r\n",  # pct-encoded, empty port: both allowed
        GET + b"Host:\r\n\r\n",  # empty: allowed when the URI has no authority
        b"GET /metrics HTTP/1.0\r\n\r\n",  # HTTP/1.0 may omit Host
    ],
)
def test_valid_hosts_and_http_1_0_without_host_are_served(server: MetricsServer,
                                                            head: bytes) -> None:
    request = head[:-2] + b"Connection: close\r\n\r\n"
    response = raw_request(server, request)
    assert status_of(response) == 200 and b"orders_total" in response


def test_a_client_that_stops_sending_gets_408(registry: MetricsRegistry) -> None:
    limits = ServerLimits(header_timeout=0.3)
    with start_metrics_server(registry=registry, limits=limits) as server:
        started = time.monotonic()
        response = raw_request(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert status_of(response) == 408
        assert time.monotonic() - started < 3
        assert httpx.get(server.url).status_code == 200


def test_slow_clients_do_not_block_others(server: MetricsServer) -> None:
    idle = [socket.create_connection((server.host, server.port)) for _ in range(5)]
    try:
        for sock in idle:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never finish
        assert httpx.get(server.url, timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_at_capacity_the_longest_idle_connection_is_evicted(registry: MetricsRegistry) -> None:
    limits = ServerLimits(max_connections=2)
    with start_metrics_server(registry=registry, limits=limits) as server, \
            socket.create_connection((server.host, server.port), timeout=5) as first, \
            socket.create_connection((server.host, server.port), timeout=5) as second:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        first.sendall(request)
        assert status_of(read_response(first)) == 200
        first.sendall(b"GET /metrics HTTP/1.1\r\nHo")  # then part of a next request
        second.sendall(request)  # idle (keep-alive) since after the first one
        assert status_of(read_response(second)) == 200
        wait_until(lambda: server._http.slots.idle == 2, what="two idle connections")

        started = time.monotonic()
        response = httpx.get(server.url, timeout=5)  # a third: over the limit
        assert response.status_code == 200 and "orders_total" in response.text
        assert time.monotonic() - started < 1
        assert closed_by_server(first)  # idle the longest, though it had begun a request
        assert server._http.slots.evicted == 1
        second.sendall(request)  # the other one still serves
        assert status_of(read_response(second)) == 200


class _GateCollector:
    """A collector whose collect() waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def collect(self):
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return []


def test_a_connection_being_answered_is_not_evicted(registry: MetricsRegistry) -> None:
    gate = _GateCollector()
    registry.collector_registry.register(gate)
    limits = ServerLimits(max_connections=1)
    with start_metrics_server(registry=registry, limits=limits) as server, \
            socket.create_connection((server.host, server.port), timeout=5) as busy:
        try:
            busy.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert gate.entered.wait(5)  # the one slot is answering this request
            refused = raw_request(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(refused) == 503 and b"too many connections" in refused
            assert server._http.slots.evicted == 0
        finally:
            gate.gate.set()
        response = read_response(busy)
        assert status_of(response) == 200 and b"orders_total" in response
        # answered and idle again: now a new connection takes its slot
        assert httpx.get(server.url, timeout=5).status_code == 200
        assert closed_by_server(busy)


def test_the_request_head_has_one_deadline_however_slowly_it_trickles(
        registry: MetricsRegistry) -> None:
    # A long keep-alive wait, a short head deadline counted from the request's first byte.
    limits = ServerLimits(header_timeout=0.5, keepalive_timeout=30)
    with start_metrics_server(registry=registry, limits=limits) as server, \
            socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        sock.settimeout(0.1)
        answer = b""
        while not answer:  # one header byte every 0.1 s: every read makes progress
            assert time.monotonic() - started < 5, "the slow request was never cut off"
            try:
                sock.sendall(b"a")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                pytest.fail("closed without a 408")
        elapsed = time.monotonic() - started
        assert status_of(answer) == 408
        assert 0.4 < elapsed < 2.5, elapsed


class _BrokenCollector:
    def collect(self):
        raise RuntimeError("collector exploded")


def test_an_error_inside_a_request_is_a_500_and_the_server_survives(
    registry: MetricsRegistry, server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _BrokenCollector()
    registry.collector_registry.register(broken)
    response = httpx.get(server.url)
    assert response.status_code == 500 and "exploded" not in response.text
    assert "error while serving GET /metrics" in caplog.text
    registry.collector_registry.unregister(broken)
    assert httpx.get(server.url).status_code == 200
