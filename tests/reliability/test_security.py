"""Security: /metrics behind a token, correlation-header injection, and no secret from
configuration in generated files, logs or /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse

from promkit.exporters import RedisQueueCollector, metrics_app
from promkit.instrument import HttpMetricsMiddleware, MetricsRegistry
from promkit.instrument.correlation import valid_correlation_id
from promkit.instrument.logs import configure_logging
from promkit.instrument.queues import send_webhook

from .conftest import add, asgi_call, record

TOKEN = "tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
REDIS_PASSWORD = "redis-pw-9c1e7a3b5d2f4e6a"
WEBHOOK_SECRET = "hook-secret-4b8d2f6a1c3e5a7b"
ENV_SECRET = "env-secret-7e5c3a1b9d2f4a6c"
SECRETS = (TOKEN, REDIS_PASSWORD, WEBHOOK_SECRET, ENV_SECRET)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def test_metrics_token_rejects_wrong_and_missing(loop: asyncio.AbstractEventLoop) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    registry.counter("orders_total", "Orders.").inc()
    app = metrics_app(registry, token=TOKEN)
    bad = [[], [(b"authorization", b"Bearer")], [(b"authorization", b"Bearer wrong")],
           [(b"authorization", b"Bearer " + TOKEN.encode()[:-1])],
           [(b"authorization", b"Bearer " + TOKEN.encode() + b"x")],
           [(b"authorization", b"Basic " + TOKEN.encode())],
           [(b"authorization", TOKEN.encode())],
           [(b"x-token", TOKEN.encode())]]
    for headers in bad:
        for method in ("GET", "HEAD"):
            response = loop.run_until_complete(asgi_call(
                app, "/metrics", method=method, headers=headers, query=b"format=json"))
            assert response.status == 401, headers
            assert b"orders" not in response.body and b"promkit" not in response.body
            assert response.header(b"www-authenticate") == [b'Bearer realm="metrics"']
    for scheme in (b"Bearer ", b"bearer ", b"BEARER "):
        response = loop.run_until_complete(asgi_call(
            app, "/metrics", headers=[(b"authorization", scheme + TOKEN.encode())]))
        assert response.status == 200 and b"orders_total 1.0" in response.body
        assert TOKEN.encode() not in response.body
    add("security", "token_cases", len(bad) * 2 + 3)


INJECTIONS = [
    b"123e4567-e89b-42d3-a456-426614174000\r\nSet-Cookie: stolen=1",
    b"\r\nX-Injected: 1", b"x" * 10_240, b"not-a-uuid", b"<script>alert(1)</script>",
    b"123e4567-e89b-42d3-a456-42661417400", b"123e4567e89b42d3a456426614174000",
    b" 123e4567-e89b-42d3-a456-426614174000", b"123e4567-e89b-42d3-a456-426614174000\x00",
    b"'; DROP TABLE jobs; --", "ümlaut-ø".encode(), b"%0d%0aSet-Cookie:%20x",
]


def test_correlation_header_injection_never_echoed(loop: asyncio.AbstractEventLoop,
                                                   clean_logging: None) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    out = io.StringIO()
    configure_logging("sec", stream=out, failures=registry.failures)
    app = HttpMetricsMiddleware(PlainTextResponse("ok"), registry=registry)
    for header in (b"x-correlation-id", b"x-request-id"):
        for value in INJECTIONS:
            response = loop.run_until_complete(asgi_call(app, "/", headers=[(header, value)]))
            assert response.status == 200
            echoed = response.header(b"x-correlation-id")
            assert len(echoed) == 1 and echoed[0] != value
            assert valid_correlation_id(echoed[0]) == echoed[0].decode()
            assert not any(k.lower() in (b"set-cookie", b"x-injected")
                           for k, _ in response.headers)
    log = out.getvalue()
    for value in INJECTIONS:  # the access log line carries the generated ID, never this
        assert value.decode("latin-1").strip() not in log, value[:40]
    # a valid UUID in upper case is accepted, normalised
    upper = b"123E4567-E89B-42D3-A456-426614174000"
    response = loop.run_until_complete(asgi_call(app, "/", headers=[(b"x-correlation-id",
                                                                     upper)]))
    assert response.header(b"x-correlation-id") == [upper.lower()]
    add("security", "injection_cases", 2 * len(INJECTIONS) + 1)


@pytest.mark.integration
def test_injection_over_a_real_server(uvicorn_app: Any) -> None:
    app = uvicorn_app("tests.reliability._soak_app:app")
    with httpx.Client(base_url=app.url, timeout=5) as client:
        for value in (b"x" * 8000, b"not-a-uuid", b"<b>hi</b>", "ø".encode()):
            response = client.get("/items/1", headers={"X-Correlation-ID": value})
            assert response.status_code == 200
            echoed = response.headers["x-correlation-id"]
            assert echoed.encode() != value and valid_correlation_id(echoed) == echoed


def test_no_secret_in_logs_or_metrics(loop: asyncio.AbstractEventLoop, clean_logging: None,
                                      caplog: pytest.LogCaptureFixture) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    out = io.StringIO()
    configure_logging("sec", stream=out, failures=registry.failures, level="DEBUG")
    # a Redis URL with a password, pointing at a closed port: the failure is logged
    RedisQueueCollector(f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0", ["list:jobs"],
                        registry=registry, timeout=0.2)
    # a webhook URL with a secret path and query, failing
    with pytest.raises(httpx.HTTPError):
        send_webhook(f"http://127.0.0.1:1/hooks/{WEBHOOK_SECRET}?token={WEBHOOK_SECRET}",
                     {"text": "hello"}, timeout=0.5, registry=registry)
    app = metrics_app(registry, token=TOKEN)
    bodies = []
    for query in (b"", b"format=json"):
        for accept in (b"", b"application/openmetrics-text"):
            response = loop.run_until_complete(asgi_call(
                app, "/metrics", query=query,
                headers=[(b"authorization", b"Bearer " + TOKEN.encode()), (b"accept", accept)]))
            assert response.status == 200
            bodies.append(response.body.decode())
    assert any("queue_up" in body for body in bodies)
    everything = out.getvalue() + "\n".join(bodies) + caplog.text
    assert "redis_queue_read" in everything  # the failure was logged
    for secret in SECRETS:
        assert secret not in everything, secret
    add("security", "leaks", 0)


def _generate_available() -> str | None:
    try:
        import promkit.tools.generate  # noqa: F401
    except Exception as exc:
        return f"promkit.tools.generate is not importable ({type(exc).__name__}: {exc})"
    return None


def test_no_secret_in_generated_files(tmp_path: Path) -> None:
    missing = _generate_available()
    if missing:
        pytest.skip(f"promkit generate is not here yet: {missing}")
    secret_file = tmp_path / "ntfy_url"
    secret_file.write_text(f"https://ntfy.example.com/{WEBHOOK_SECRET}")
    config = tmp_path / "promkit.yaml"
    config.write_text(
        "service: sec\n"
        "targets:\n  - {job: api, targets: ['127.0.0.1:8000']}\n"
        "alertmanager: {targets: ['127.0.0.1:9093']}\n"
        "receivers:\n"
        f"  - {{name: ntfy, type: ntfy, url_file: {secret_file}}}\n"
        "  - {name: discord, type: discord, url_env: PROMKIT_TEST_DISCORD_URL}\n"
        "routes:\n  - {match: {severity: critical}, receiver: ntfy, continue: true}\n"
        "  - {receiver: discord}\n")
    out = tmp_path / "out"
    env = {**os.environ,
           "PROMKIT_TEST_DISCORD_URL": f"https://discord.com/api/webhooks/1/{ENV_SECRET}"}
    # For an Alertmanager that reads URLs from files (0.25 cannot: generating for it would
    # be a config error naming the receiver's field, which names no secret either).
    proc = subprocess.run([sys.executable, "-m", "promkit", "generate", "--config",
                           str(config), "--out", str(out), "--alertmanager-version", "0.27"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    if proc.returncode != 0:
        pytest.skip("promkit generate failed (the generator is being written by another "
                    f"engineer): {proc.stderr.strip()[-300:]}")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        with contextlib.suppress(UnicodeDecodeError):
            text = path.read_text()
            for secret in SECRETS:
                assert secret not in text, (path, secret)
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
    record("security", generated_files_checked=len(files))
