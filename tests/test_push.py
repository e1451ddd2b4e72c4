"""push_metrics against a real prometheus-pushgateway on 127.0.0.1, and against a
small HTTP server that demands basic auth; argument checks."""

import base64
import functools
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.parser import text_string_to_metric_families

from promkit.exporters import PushError, push_metrics
from promkit.instrument import MetricsRegistry

PUSHGATEWAY = "prometheus-pushgateway"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path) -> Iterator[str]:
    """A real Pushgateway without persistence; yields its base URL."""
    binary = shutil.which(PUSHGATEWAY) or (
        f"/usr/bin/{PUSHGATEWAY}" if shutil.which(f"/usr/bin/{PUSHGATEWAY}") else None)
    if binary is None:
        pytest.skip(f"{PUSHGATEWAY} is not installed (Debian package 'prometheus-pushgateway')")
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"{PUSHGATEWAY} exited with {process.returncode}: "
                            f"{(tmp_path / 'pushgateway.log').read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{PUSHGATEWAY} not ready after 20 s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def batch() -> MetricsRegistry:
    registry = MetricsRegistry(CollectorRegistry())
    registry.counter("batch_records_total", "Records processed.", ["stage"]).labels("load").inc(3)
    registry.gauge("batch_last_success_unixtime", "Last success.").set(1700000000)
    return registry


def gateway_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def find(url: str, name: str, **labels: str) -> list[float]:
    return [value for sample_name, sample_labels, value in gateway_samples(url)
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())]


@pytest.mark.integration
def test_push_then_read_back_with_grouping_labels(pushgateway: str,
                                                  batch: MetricsRegistry) -> None:
    assert push_metrics(pushgateway, "nightly", batch, grouping_key={"instance": "worker-1"})
    assert find(pushgateway, "batch_records_total", job="nightly", instance="worker-1",
                stage="load") == [3.0]
    assert find(pushgateway, "batch_last_success_unixtime", job="nightly",
                instance="worker-1") == [1700000000.0]
    # a grouping value with a slash travels base64-encoded and comes back intact
    assert push_metrics(pushgateway, "nightly", batch, grouping_key={"instance": "a/b"})
    assert find(pushgateway, "batch_records_total", job="nightly", instance="a/b") == [3.0]


@pytest.mark.integration
def test_push_replaces_the_group_and_pushadd_keeps_other_metrics(pushgateway: str,
                                                                 batch: MetricsRegistry) -> None:
    assert push_metrics(pushgateway, "nightly", batch)
    only_records = MetricsRegistry(CollectorRegistry())
    only_records.counter("batch_records_total", "Records processed.", ["stage"]).labels(
        "load").inc(7)

    assert push_metrics(pushgateway, "nightly", only_records, method="pushadd")
    assert find(pushgateway, "batch_records_total", job="nightly", stage="load") == [7.0]
    assert find(pushgateway, "batch_last_success_unixtime", job="nightly") == [1700000000.0]

    assert push_metrics(pushgateway, "nightly", only_records, method="push")
    assert find(pushgateway, "batch_records_total", job="nightly") == [7.0]
    assert find(pushgateway, "batch_last_success_unixtime", job="nightly") == []


@pytest.mark.integration
def test_delete_removes_only_its_group(pushgateway: str, batch: MetricsRegistry) -> None:
    assert push_metrics(pushgateway, "nightly", batch, grouping_key={"shard": "1"})
    assert push_metrics(pushgateway, "nightly", batch, grouping_key={"shard": "2"})
    assert push_metrics(pushgateway, "nightly", grouping_key={"shard": "1"}, method="delete")
    assert find(pushgateway, "batch_records_total", job="nightly", shard="1") == []
    assert find(pushgateway, "batch_records_total", job="nightly", shard="2") == [3.0]


@pytest.mark.integration
def test_a_refused_push_says_why(pushgateway: str, batch: MetricsRegistry) -> None:
    assert push_metrics(pushgateway, "first", batch)
    clash = MetricsRegistry(CollectorRegistry())
    # the same name with another type: the gateway refuses the inconsistent push with a 400
    Gauge("batch_records_total", "Not a counter here.", registry=clash.collector_registry).set(1)
    with pytest.raises(PushError) as info:
        push_metrics(pushgateway, "second", clash)
    assert f"to pushgateway {pushgateway} failed" in str(info.value)
    assert "HTTP 400" in str(info.value)


def unreachable_gateway() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_an_unreachable_gateway_raises_push_error_naming_it(batch: MetricsRegistry) -> None:
    gateway = unreachable_gateway()
    with pytest.raises(PushError) as info:
        push_metrics(gateway, "nightly", batch, grouping_key={"instance": "w1"}, timeout=2)
    message = str(info.value)
    assert gateway in message and "job='nightly'" in message and "instance='w1'" in message
    assert "cannot reach it" in message
    assert info.value.gateway == gateway and info.value.method == "push"
    assert isinstance(info.value.__cause__, OSError)


def test_never_raise_returns_false_and_counts_the_failure(batch: MetricsRegistry,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    gateway = unreachable_gateway()
    for method in ("push", "pushadd", "delete"):
        assert push_metrics(gateway, "nightly", batch, timeout=2, method=method,
                            never_raise=True) is False
    errors = batch.collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "push:URLError"})
    assert errors == 3
    assert gateway in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gateway": ""}, "pushgateway URL must be a non-empty string"),
        ({"gateway": "ftp://gw:9091"}, "has scheme 'ftp'; use http:// or https://"),
        ({"gateway": "http://"}, "has no host"),
        ({"gateway": "http://gw:notaport"}, "has an invalid port"),
        ({"gateway": "http://gw:99999"}, "has an invalid port"),
        ({"gateway": "http://gw:9091?x=1"}, "must not have a query or fragment"),
        ({"gateway": "http://gw 9091"}, "contains whitespace or control characters"),
        ({"gateway": "http://user:pw@gw:9091"}, "carries credentials"),
        ({"gateway": "http://user:pw@gw:bad"}, "carries credentials"),
        ({"gateway": "ftp://user:pw@gw"}, "has scheme 'ftp'"),
        ({"job": ""}, "job must be a non-empty string"),
        ({"job": None}, "job must be a non-empty string"),
        ({"job": "a\nb"}, "contains control characters"),
        ({"grouping_key": {"job": "x"}}, "must not contain 'job'"),
        ({"grouping_key": {"bad-name": "x"}}, "is not a valid Prometheus label name"),
        ({"grouping_key": {"__name__": "x"}}, "is reserved"),
        ({"grouping_key": ["instance"]}, "must be a mapping"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"method": "put"}, "method must be one of ['delete', 'push', 'pushadd']"),
        ({"basic_auth": ("user", "pw"), "handler": default_handler},
         "give handler or basic_auth, not both"),
        ({"handler": "default_handler"}, "handler must be callable"),
        ({"basic_auth": "user:pw"}, "basic_auth must be a (username, password) pair"),
        ({"basic_auth": ("user", "pw", "x")}, "basic_auth must be a (username, password) pair"),
        ({"basic_auth": ("user", None)}, "basic_auth must be a (username, password) pair"),
        ({"basic_auth": ("", "pw")}, "basic_auth username is empty"),
        ({"basic_auth": ("us:er", "pw")}, "basic_auth username contains ':'"),
        ({"basic_auth": ("user", "p\nw")}, "contains control characters"),
    ],
)
def test_invalid_arguments_raise_value_error(batch: MetricsRegistry, kwargs: dict[str, object],
                                             message: str) -> None:
    args: dict[str, object] = {"gateway": "http://gw:9091", "job": "nightly",
                               "registry": batch, **kwargs}
    with pytest.raises(ValueError) as info:
        push_metrics(**args, never_raise=True)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "user:pw" not in str(info.value)  # credentials never echoed


# -- authentication: a gateway behind basic auth -------------------------------------------

USER, PASSWORD = "pusher", "pw-7c1e9a3b5d"


class AuthGateway:
    """A Pushgateway stand-in on 127.0.0.1 that demands HTTP Basic auth (the real
    one has no built-in auth; it is put behind a proxy that does this)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                auth = self.headers.get("authorization")
                gateway.requests.append((self.command, self.path, auth, body))
                if auth != expected:
                    self.send_response(401)
                    self.send_header("www-authenticate", 'Basic realm="pushgateway"')
                    answer = b"unauthorized\n"
                else:
                    self.send_response(200 if self.command != "DELETE" else 202)
                    answer = b""
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_PUT = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def auth_gateway() -> Iterator[AuthGateway]:
    gateway = AuthGateway()
    gateway.thread.start()
    try:
        yield gateway
    finally:
        gateway.server.shutdown()
        gateway.server.server_close()
        gateway.thread.join(10)


def test_basic_auth_is_sent_for_every_method(auth_gateway: AuthGateway,
                                             batch: MetricsRegistry) -> None:
    auth = (USER, PASSWORD)
    assert push_metrics(auth_gateway.url, "nightly", batch, grouping_key={"instance": "w1"},
                        basic_auth=auth)
    assert push_metrics(auth_gateway.url, "nightly", batch, method="pushadd", basic_auth=auth)
    assert push_metrics(auth_gateway.url, "nightly", method="delete", basic_auth=auth)
    methods = [(m, path) for m, path, _, _ in auth_gateway.requests]
    assert methods == [("PUT", "/metrics/job/nightly/instance/w1"),
                       ("POST", "/metrics/job/nightly"), ("DELETE", "/metrics/job/nightly")]
    assert b'batch_records_total{stage="load"} 3.0' in auth_gateway.requests[0][3]


def test_missing_or_wrong_credentials_raise_push_error_without_the_password(
        auth_gateway: AuthGateway, batch: MetricsRegistry) -> None:
    for kwargs in ({}, {"basic_auth": (USER, "wrong-" + PASSWORD)}):
        with pytest.raises(PushError) as info:
            push_metrics(auth_gateway.url, "nightly", batch, **kwargs)
        message = str(info.value)
        assert f"to pushgateway {auth_gateway.url} failed" in message
        assert "HTTP 401 Unauthorized: unauthorized" in message
        assert PASSWORD not in message
    assert auth_gateway.requests[0][2] is None  # the first push sent no credentials


def test_never_raise_counts_a_refused_push(auth_gateway: AuthGateway,
                                           batch: MetricsRegistry) -> None:
    assert push_metrics(auth_gateway.url, "nightly", batch, basic_auth=(USER, "wrong"),
                        never_raise=True) is False
    assert batch.collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "push:HTTPError"}) == 1


def test_any_prometheus_client_handler_is_accepted(auth_gateway: AuthGateway,
                                                   batch: MetricsRegistry) -> None:
    # prometheus-client's own basic-auth handler, given its credentials
    handler = functools.partial(basic_auth_handler, username=USER, password=PASSWORD)
    assert push_metrics(auth_gateway.url, "nightly", batch, handler=handler)

    # a handler of one's own, with default_handler's signature
    calls = []

    def recording_handler(url, method, timeout, headers, data):
        calls.append((url, method, timeout, list(headers), len(data)))
        return basic_auth_handler(url, method, timeout, headers, data, USER, PASSWORD)

    assert push_metrics(auth_gateway.url, "nightly", batch, timeout=3,
                        handler=recording_handler, method="pushadd")
    (url, method, timeout, headers, size), = calls
    assert url == f"{auth_gateway.url}/metrics/job/nightly" and method == "POST"
    assert timeout == 3 and size > 0 and ("Content-Type" in dict(headers))
    assert len(auth_gateway.requests) == 2
    assert all(auth is not None for _, _, auth, _ in auth_gateway.requests)

    def failing_handler(url, method, timeout, headers, data):
        raise RuntimeError("no route to the gateway's proxy")

    with pytest.raises(PushError, match="RuntimeError: no route to the gateway's proxy"):
        push_metrics(auth_gateway.url, "nightly", batch, handler=failing_handler)
