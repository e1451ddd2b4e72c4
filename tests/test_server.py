"""The standalone exporter server: scrapes over real loopback sockets, limits, stop()."""

import asyncio
import gzip
import logging
import socket
import ssl
import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from promkit.exporters import MetricsServer, ServerLimits, serve_metrics, start_metrics_server
from promkit.instrument import MetricsRegistry

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def registry() -> MetricsRegistry:
    registry = MetricsRegistry(CollectorRegistry())
    orders = registry.counter("orders_total", "Orders placed.", ["channel"])
    orders.labels("web").inc(3)
    latency = registry.histogram("checkout_seconds", "Checkout time.", buckets=[0.1, 1.0])
    latency.observe(0.05)
    latency.observe(0.5)
    return registry


@pytest.fixture
def server(registry: MetricsRegistry):
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
        wait_until(lambda: server._http.idle_connections == 2, what="two idle connections")

        started = time.monotonic()
        response = httpx.get(server.url, timeout=5)  # a third: over the limit
        assert response.status_code == 200 and "orders_total" in response.text
        assert time.monotonic() - started < 1
        assert closed_by_server(first)  # idle the longest, though it had begun a request
        assert server._http.evicted == 1
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
            assert server._http.evicted == 0
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


# -- TLS -----------------------------------------------------------------------------------


def client_context(tls_files, cert: str | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA, presenting ``cert`` ("client", "stranger")."""
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    if cert is not None:
        context.load_cert_chain(str(getattr(tls_files, f"{cert}_cert")),
                                str(getattr(tls_files, f"{cert}_key")))
    return context


def tls_scrape(server: MetricsServer, context: ssl.SSLContext) -> bytes:
    """One scrape over a raw TLS socket; whatever the server sent before it closed."""
    with socket.create_connection((server.host, server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server.host) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def assert_refused(server: MetricsServer, context: ssl.SSLContext) -> None:
    """The TLS handshake or the first read fails, and no response comes back."""
    try:
        response = tls_scrape(server, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return
    assert response == b"", response[:200]


def test_tls_scrape_verifies_the_server_certificate(registry: MetricsRegistry,
                                                    tls_files) -> None:
    with start_metrics_server(registry=registry, certfile=tls_files.server_cert,
                              keyfile=str(tls_files.server_key)) as server:
        assert server.url == f"https://127.0.0.1:{server.port}/metrics"
        response = httpx.get(server.url, verify=client_context(tls_files), timeout=5)
        assert response.status_code == 200 and "orders_total" in response.text
        assert response.http_version == "HTTP/1.1"
        # a client that does not trust the CA refuses the server, which keeps serving
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url, timeout=5)
        # without client CAs a client certificate is not asked for, and does no harm
        assert tls_scrape(server, client_context(tls_files, "stranger")).startswith(
            b"HTTP/1.1 200 ")


def test_tls_client_certificates_required(registry: MetricsRegistry, tls_files,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), start_metrics_server(
            registry=registry, certfile=tls_files.server_cert, keyfile=tls_files.server_key,
            client_cafile=tls_files.ca, client_auth_required=True) as server:
        ok = httpx.get(server.url, verify=client_context(tls_files, "client"), timeout=5)
        assert ok.status_code == 200 and "orders_total" in ok.text
        assert_refused(server, client_context(tls_files))  # no certificate
        assert_refused(server, client_context(tls_files, "stranger"))  # another CA's
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url, verify=client_context(tls_files), timeout=5)
        assert tls_scrape(server, client_context(tls_files, "client")).startswith(
            b"HTTP/1.1 200 ")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_tls_client_certificates_optional(registry: MetricsRegistry, tls_files) -> None:
    with start_metrics_server(registry=registry, certfile=tls_files.server_cert,
                              keyfile=tls_files.server_key,
                              client_capath=None, client_cafile=tls_files.ca) as server:
        for cert in (None, "client"):
            response = tls_scrape(server, client_context(tls_files, cert))
            assert response.startswith(b"HTTP/1.1 200 "), cert
        assert_refused(server, client_context(tls_files, "stranger"))  # presented, invalid


def test_tls_client_ca_directory(registry: MetricsRegistry, tls_files, tmp_path) -> None:
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(tls_files.ca)],
        capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    (tmp_path / f"{subject_hash}.0").write_bytes(tls_files.ca.read_bytes())  # as c_rehash
    with start_metrics_server(registry=registry, certfile=tls_files.server_cert,
                              keyfile=tls_files.server_key, client_capath=tmp_path,
                              client_auth_required=True) as server:
        assert tls_scrape(server, client_context(tls_files, "client")).startswith(
            b"HTTP/1.1 200 ")
        assert_refused(server, client_context(tls_files, "stranger"))


def test_plain_http_to_the_tls_port_is_refused_cleanly(
        registry: MetricsRegistry, tls_files, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="promkit"), start_metrics_server(
            registry=registry, certfile=tls_files.server_cert,
            keyfile=tls_files.server_key) as server:
        started = time.monotonic()
        answer = raw_request(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert time.monotonic() - started < 3  # closed at once, not at a timeout
        assert b"HTTP/1.1" not in answer and b"orders_total" not in answer
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https://", "http://"), timeout=5)
        response = httpx.get(server.url, verify=client_context(tls_files), timeout=5)
        assert response.status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_stop_with_an_open_tls_connection_is_quick(registry: MetricsRegistry,
                                                   tls_files) -> None:
    server = start_metrics_server(registry=registry, certfile=tls_files.server_cert,
                                  keyfile=tls_files.server_key)
    context = client_context(tls_files)
    with socket.create_connection((server.host, server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server.host) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # now idle, keep-alive
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3 and not server._thread.is_alive()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"keyfile": "server_key"}, "keyfile given without certfile"),
        ({"client_cafile": "ca", "client_auth_required": True},
         "client_cafile, client_auth_required given without certfile"),
        ({"certfile": "/nonexistent/cert.pem", "keyfile": "server_key"},
         "cannot read the TLS certificate file '/nonexistent/cert.pem': No such file"),
        ({"certfile": "server_cert", "keyfile": "/nonexistent/key.pem"},
         "cannot read the TLS key file '/nonexistent/key.pem': No such file"),
        ({"certfile": "server_key", "keyfile": "server_key"}, "holds no PEM certificate"),
        ({"certfile": "server_cert", "keyfile": "server_cert"},
         "the TLS key file '{server_cert}' holds no PEM private key"),
        ({"certfile": "server_cert"},
         "the TLS certificate file '{server_cert}' holds no PEM private key (pass the key"),
        ({"certfile": "server_cert", "keyfile": "client_key"},
         "the private key in the TLS key file '{client_key}' does not match the "
         "certificate in '{server_cert}'"),
        ({"certfile": "server_cert", "keyfile": "encrypted_key"}, "is encrypted"),
        ({"certfile": "server_cert", "keyfile": "server_key", "client_auth_required": True},
         "client_auth_required needs client_cafile or client_capath"),
        ({"certfile": "server_cert", "keyfile": "server_key", "client_cafile": "client_key"},
         "the TLS client CA file '{client_key}' holds no PEM certificate"),
        ({"certfile": "server_cert", "keyfile": "server_key",
          "client_cafile": "/nonexistent/ca.pem"},
         "cannot read the TLS client CA file '/nonexistent/ca.pem'"),
        ({"certfile": "server_cert", "keyfile": "server_key", "client_capath": "ca"},
         "the TLS client CA directory '{ca}' is not a directory"),
    ],
)
def test_bad_tls_files_raise_value_error_naming_the_file(
        registry: MetricsRegistry, tls_files, tmp_path, files: dict[str, object],
        message: str) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(tls_files.server_key), "-aes256",
                    "-passout", "pass:secret", "-out", str(encrypted)], check=True, timeout=30)
    paths = {name: str(getattr(tls_files, name)) for name in
             ("ca", "server_cert", "server_key", "client_key")}
    paths["encrypted_key"] = str(encrypted)
    kwargs = {name: paths.get(value, value) if isinstance(value, str) else value
              for name, value in files.items()}
    before = threading.active_count()
    with pytest.raises(ValueError) as info:
        start_metrics_server(registry=registry, **kwargs)
    assert message.format(**paths) in str(info.value)
    assert threading.active_count() == before  # nothing started


def test_serve_metrics_with_tls(registry: MetricsRegistry, tls_files) -> None:
    async def main() -> int:
        started: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.create_task(serve_metrics(
            "127.0.0.1", 0, registry, TOKEN, on_started=started.put_nowait,
            certfile=tls_files.server_cert, keyfile=tls_files.server_key,
            client_cafile=tls_files.ca, client_auth_required=True))
        url = await asyncio.wait_for(started.get(), 5)
        assert url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=client_context(tls_files, "client")) as client:
            assert (await client.get(url)).status_code == 401  # a certificate is not a token
            response = await client.get(url, headers={"authorization": f"Bearer {TOKEN}"})
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return response.status_code

    assert asyncio.run(main()) == 200
    with pytest.raises(ValueError, match="cannot read the TLS certificate file"):
        asyncio.run(serve_metrics("127.0.0.1", 0, registry, certfile="/nonexistent"))
