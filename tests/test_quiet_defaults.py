"""promkit prints nothing unless the application configured logging (issue 16).

Each case runs in a fresh interpreter, so structlog and ``logging`` start
unconfigured, as in an application, and the process's real stdout/stderr are
what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent(
    """
    import asyncio, logging, sys, time

    import httpx
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from promkit.instrument import MetricsRegistry
    from promkit.instrument.middleware import HttpMetricsMiddleware
    from promkit.instrument.stages import stage_timer

    registry = MetricsRegistry(CollectorRegistry())

    async def item(request):
        return PlainTextResponse("ok")

    async def fail(request):
        return PlainTextResponse("no", status_code=500)

    app = Starlette(routes=[Route("/items/{i}", item), Route("/fail", fail)])
    app.add_middleware(HttpMetricsMiddleware, registry=registry)

    @stage_timer("ocr", registry=registry)
    def ocr():
        return 1

    @stage_timer("parse", registry=registry)
    async def parse():
        return 2

    def work(tag):
        async def run():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get(f"/items/{tag}")).status_code == 200
                assert (await client.get("/fail")).status_code == 500
            await parse()
        asyncio.run(run())
        ocr()
        try:
            with stage_timer("upload", registry=registry):
                raise ValueError("boom")
        except ValueError:
            pass
        sys.stdout.flush()
        sys.stderr.flush()
        print("--- " + tag, flush=True)
    """
)


def run(body: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_nothing_configured_prints_nothing():
    proc = run("""
        logging.getLogger("httpx").setLevel(logging.WARNING)
        work("a")
        work("b")
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "--- a\n--- b\n"  # no request, stage or failure line
    assert proc.stderr == ""


def test_configure_logging_later_makes_lines_appear():
    proc = run("""
        work("quiet")
        from promkit.instrument.logs import configure_logging
        configure_logging(service="svc")
        work("loud")
        """)
    assert proc.returncode == 0, proc.stderr
    quiet, loud = proc.stdout.split("--- quiet\n")
    assert quiet == ""
    events = [json.loads(line) for line in loud.splitlines() if line.startswith("{")]
    names = [(e["event"], e.get("http_status"), e.get("stage")) for e in events]
    assert ("http_request", 200, None) in names
    assert ("http_request", 500, None) in names
    assert ("stage completed", None, "ocr") in names
    assert ("stage completed", None, "parse") in names
    assert ("stage failed", None, "upload") in names
    assert all(e["service"] == "svc" for e in events)


def test_stdlib_basic_config_gets_promkit_records_within_a_second():
    proc = run("""
        work("quiet")
        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        time.sleep(1.1)  # promkit looks at the logging set-up again at most once a second
        work("loud")
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "--- quiet\n--- loud\n"  # structlog's console printer stays unused
    lines = proc.stderr.splitlines()
    assert any(line.startswith("promkit.access INFO http_request http_method=GET "
                               "http_path=/items/{i} http_status=200 latency_ms=")
               for line in lines), lines
    assert any(line.startswith("promkit.access ERROR http_request") for line in lines), lines
    assert any(line.startswith("promkit.worker DEBUG stage started stage=ocr")
               for line in lines), lines
    assert any(line.startswith("promkit.worker INFO stage completed stage=parse")
               for line in lines), lines
    assert any(line.startswith("promkit.worker ERROR stage failed stage=upload")
               for line in lines), lines


def test_the_apps_own_structlog_gets_promkit_events():
    proc = run("""
        import structlog
        structlog.configure(processors=[structlog.processors.add_log_level,
                                        structlog.processors.JSONRenderer(sort_keys=True)])
        work("a")
        """)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    names = {(e["event"], e.get("stage")) for e in events}
    assert ("http_request", None) in names
    assert ("stage completed", "ocr") in names
    assert ("stage started", "ocr") in names  # the app's chain has no level filter
    assert proc.stderr == ""


def test_promkit_processors_in_the_apps_own_chain():
    proc = run("""
        import structlog
        from promkit.instrument.correlation import bind_correlation_id
        from promkit.instrument.logs import processors

        structlog.configure(processors=[
            structlog.processors.add_log_level,
            *processors(service="shop", pii_keys=["card"]),
            structlog.processors.KeyValueRenderer(key_order=["event", "level"]),
        ])
        log = structlog.get_logger("app")
        with bind_correlation_id("5b0c6a4e-9d7f-4c1e-8a57-0f3e2d1c9b8a"):
            log.info("order", email="a@b.example", user_id="u-17", card="4111", n=2)
        work("a")
        """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    order = next(line for line in lines if line.startswith("event='order'"))
    # the app's own renderer (key=value), with promkit's correlation ID, service and redaction
    assert order.startswith("event='order' level='info' ")
    assert "correlation_id='5b0c6a4e-9d7f-4c1e-8a57-0f3e2d1c9b8a'" in order
    assert "service='shop'" in order
    assert "a@b.example" not in order and "4111" not in order and "u-17" not in order
    assert "user_id_hash='" in order
    assert "n=2" in order
    # promkit's own request line goes through the same chain, correlation ID included
    request = next(line for line in lines if line.startswith("event='http_request'"))
    assert "http_path='/items/{i}'" in request and "correlation_id='" in request


def test_schema_processor_orders_keys_for_the_apps_renderer():
    from promkit.instrument.logs import order_schema_keys, processors

    assert processors(schema=True)[-1] is order_schema_keys
    out = order_schema_keys(None, "info", {"queue": "ocr", "event": "e", "level": "info",
                                           "job_id": None})
    assert list(out) == ["level", "event", "extra"]
    assert out["extra"] == {"queue": "ocr"}


def test_configure_logging_at_debug_later_logs_stage_started():
    proc = run("""
        work("quiet")
        from promkit.instrument.logs import configure_logging
        configure_logging(service="svc", level="DEBUG")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        work("loud")
        """)
    assert proc.returncode == 0, proc.stderr
    quiet, loud = proc.stdout.split("--- quiet\n")
    assert quiet == ""
    events = [json.loads(line) for line in loud.splitlines() if line.startswith("{")]
    names = {(e["event"], e.get("stage")) for e in events}
    assert ("stage started", "ocr") in names
    assert ("stage completed", "ocr") in names
