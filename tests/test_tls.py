"""The exporter server over TLS: server and client certificates, refusals, stop."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
import threading
import time

import httpx
import pytest
from _metrics_servers import TOKEN, filled_registry, raw_request, running_server

from promkit.exporters import MetricsServer, serve_metrics, start_metrics_server
from promkit.instrument import MetricsRegistry

registry = pytest.fixture(filled_registry, name="registry")
server = pytest.fixture(running_server, name="server")


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
