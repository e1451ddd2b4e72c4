"""HttpMetricsMiddleware on a real Starlette app (in-process ASGI)."""

import asyncio
import subprocess
import sys
import uuid

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from promkit.exporters import metrics_app
from promkit.instrument import MetricsRegistry, correlation
from promkit.instrument.middleware import OTHER_METHOD, UNMATCHED_ROUTE, HttpMetricsMiddleware

DURATION = "http_server_request_duration_seconds"


class Boom(Exception):
    pass


def make_app(registry, **options):
    seen = {}

    async def item(request):
        seen["cid"] = correlation.get_correlation_id()
        return PlainTextResponse("item " + request.path_params["item_id"])

    async def fail(request):
        raise Boom("from the app")

    async def teapot(request):
        return PlainTextResponse("no", status_code=418)

    async def slow_stream(request):
        async def body():
            for _ in range(3):
                await asyncio.sleep(0.05)
                yield b"x" * 10

        return StreamingResponse(body())

    async def user(request):
        return PlainTextResponse("user")

    async def echo(websocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text)
        await websocket.send_text(text)
        await websocket.close(code=1000)

    async def upload(request):
        body = await request.body()
        return PlainTextResponse(str(len(body)))

    app = Starlette(routes=[
        Route("/items/{item_id}", item),
        Route("/fail", fail),
        Route("/teapot", teapot),
        Route("/stream", slow_stream),
        Route("/upload", upload, methods=["POST"]),
        Route("/metrics", metrics_app(registry)),
        Mount("/api", routes=[Route("/users/{user_id}", user)]),
        WebSocketRoute("/ws/{room}", echo),
    ])
    app.add_middleware(HttpMetricsMiddleware, registry=registry, **options)
    return app, seen


def sample(registry, name, **labels):
    return registry.collector_registry.get_sample_value(name, labels)


def duration_count(registry, method, route, status):
    return sample(registry, DURATION + "_count", http_request_method=method, http_route=route,
                  http_response_status_code=str(status),
                  http_response_status_class=f"{str(status)[0]}xx")


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


async def test_requests_are_labelled_by_route_template_not_raw_path(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        for i in range(5):
            assert (await c.get(f"/items/{i}")).status_code == 200
        assert (await c.get("/teapot")).status_code == 418
        assert (await c.get("/api/users/42")).status_code == 200
        assert (await c.get("/no/such/path")).status_code == 404
        assert (await c.request("BREW", "/teapot")).status_code == 405
    assert duration_count(registry, "GET", "/items/{item_id}", 200) == 5
    assert duration_count(registry, "GET", "/teapot", 418) == 1
    assert duration_count(registry, "GET", "/api/users/{user_id}", 200) == 1
    assert duration_count(registry, "GET", UNMATCHED_ROUTE, 404) == 1
    assert duration_count(registry, OTHER_METHOD, "/teapot", 405) == 1
    series = {s.labels["http_route"] for m in registry.collector_registry.collect()
              if m.name == DURATION for s in m.samples}
    assert not any(route.startswith("/items/") and "{" not in route for route in series)


class WithoutScopeRoute:
    """Starlette before 1.7 on any Starlette: the router leaves no scope["route"]
    (only the endpoint), so the middleware matches the routes again."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def forgetful_send(message):
            scope.pop("route", None)
            await send(message)

        try:
            await self.app(scope, receive, forgetful_send)
        finally:
            scope.pop("route", None)


@pytest.mark.parametrize("route_in_scope", [True, False], ids=["scope-route", "rematched"])
async def test_route_templates_are_the_same_with_or_without_scope_route(route_in_scope):
    async def ok(request):
        return PlainTextResponse("ok")

    async def echo(websocket):
        await websocket.accept()
        await websocket.close(code=1000)

    outer, inner = MetricsRegistry(CollectorRegistry()), MetricsRegistry(CollectorRegistry())
    sub = Starlette(routes=[Route("/things/{thing_id}", ok)])  # its own middleware
    app = Starlette(routes=[
        Route("/users/{user_id}", ok, methods=["GET"]),
        Route("/users/{name}", ok, methods=["POST"]),  # Starlette's first full match wins
        Route("/teapot", ok),
        Mount("/api", routes=[Mount("/v1", routes=[Route("/items/{item_id}", ok)]),
                              WebSocketRoute("/ws/{room}", echo)]),
        Mount("/sub", app=sub),
    ])
    for starlette_app, registry in ((sub, inner), (app, outer)):
        if not route_in_scope:
            starlette_app.add_middleware(WithoutScopeRoute)
        starlette_app.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with client(app) as c:
        assert (await c.get("/users/1")).status_code == 200
        assert (await c.post("/users/ann")).status_code == 200
        assert (await c.request("BREW", "/teapot")).status_code == 405
        assert (await c.get("/api/v1/items/7")).status_code == 200
        assert (await c.get("/api/v1/nothing")).status_code == 404
        assert (await c.get("/nothing")).status_code == 404
        assert (await c.get("/sub/things/3")).status_code == 200
    with TestClient(app) as tc, tc.websocket_connect("/api/ws/lobby"):
        pass
    with TestClient(app, root_path="/x") as tc, tc.websocket_connect("/x/api/ws/lobby"):
        pass  # behind a proxy's prefix: the Mount's prefix is kept

    def routes(registry):
        return sorted((s.labels["http_request_method"], s.labels["http_route"],
                       s.labels["http_response_status_code"])
                      for m in registry.collector_registry.collect() if m.name == DURATION
                      for s in m.samples if s.name.endswith("_count"))

    assert routes(outer) == sorted([
        ("GET", UNMATCHED_ROUTE, "404"),  # /nothing, and /api/v1/nothing: no route in the Mount
        ("GET", "/api/v1/items/{item_id}", "200"),
        ("GET", "/sub/things/{thing_id}", "200"),
        ("GET", "/users/{user_id}", "200"),
        ("POST", "/users/{name}", "200"),
        (OTHER_METHOD, "/teapot", "405"),
    ])
    assert routes(inner) == [("GET", "/things/{thing_id}", "200")]  # below its own Mount
    assert duration_count(outer, "GET", UNMATCHED_ROUTE, 404) == 2
    assert sample(outer, "websocket_server_closes_total", http_route="/api/ws/{room}",
                  close_code="1000") == 2


async def test_unhandled_exception_is_counted_as_500_and_reraised_unchanged(registry):
    app, _ = make_app(registry)
    transport = httpx.ASGITransport(app=app)  # raise_app_exceptions=True
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        with pytest.raises(Boom, match="from the app"):
            await c.get("/fail")
    assert duration_count(registry, "GET", "/fail", 500) == 1
    assert sample(registry, "http_server_unhandled_exceptions_total", http_request_method="GET",
                  http_route="/fail", error_type="Boom") == 1
    assert sample(registry, "http_server_active_requests", http_request_method="GET") == 0


async def test_requests_in_flight_are_counted_while_they_run(registry):
    # Two middleware instances on one registry (Starlette rebuilds its stack)
    # count into the same series.
    entered, release = asyncio.Event(), asyncio.Event()

    async def wait(request):
        entered.set()
        await release.wait()
        return PlainTextResponse("done")

    inner = Starlette(routes=[Route("/wait", wait)])
    app = HttpMetricsMiddleware(HttpMetricsMiddleware(inner, registry=registry),
                                registry=registry)
    async with client(app) as c:
        pending = asyncio.ensure_future(c.get("/wait"))
        await asyncio.wait_for(entered.wait(), 5)
        assert sample(registry, "http_server_active_requests", http_request_method="GET") == 2
        release.set()
        assert (await pending).text == "done"
    assert sample(registry, "http_server_active_requests", http_request_method="GET") == 0


async def test_streaming_duration_ends_when_the_body_is_complete(registry):
    app, _ = make_app(registry, record_sizes=True)
    async with client(app) as c:
        response = await c.get("/stream")
    assert response.content == b"x" * 30
    total = sample(registry, DURATION + "_sum", http_request_method="GET", http_route="/stream",
                   http_response_status_code="200", http_response_status_class="2xx")
    assert total >= 0.15
    assert sample(registry, "http_server_response_body_size_bytes_sum", http_request_method="GET",
                  http_route="/stream") == 30


async def test_background_task_time_is_not_in_the_request_duration(registry):
    async def later():
        await asyncio.sleep(0.3)

    async def endpoint(request):
        return PlainTextResponse("ok", background=BackgroundTask(later))

    app = Starlette(routes=[Route("/bg", endpoint)])
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with client(app) as c:
        await c.get("/bg")
    total = sample(registry, DURATION + "_sum", http_request_method="GET", http_route="/bg",
                   http_response_status_code="200", http_response_status_class="2xx")
    assert total < 0.3


async def test_request_size_is_recorded_from_content_length(registry):
    app, _ = make_app(registry, record_sizes=True)
    async with client(app) as c:
        await c.post("/upload", content=b"a" * 1234)
    assert sample(registry, "http_server_request_body_size_bytes_sum", http_request_method="POST",
                  http_route="/upload") == 1234


async def test_body_sizes_are_opt_in(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        await c.post("/upload", content=b"a" * 1234)
    assert duration_count(registry, "POST", "/upload", 200) == 1
    for name in ("http_server_request_body_size_bytes_count",
                 "http_server_response_body_size_bytes_count"):
        assert sample(registry, name, http_request_method="POST", http_route="/upload") is None


async def test_metrics_endpoint_is_excluded_and_has_no_redirect(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        response = await c.get("/metrics")
    assert response.status_code == 200 and "http_server_request_duration_seconds" in response.text
    assert duration_count(registry, "GET", "/metrics", 200) is None


async def test_correlation_id_valid_header_is_kept_invalid_is_replaced(registry):
    app, seen = make_app(registry)
    given = str(uuid.uuid4())
    async with client(app) as c:
        kept = await c.get("/items/1", headers={"X-Correlation-ID": given})
        assert kept.headers["x-correlation-id"] == given and seen["cid"] == given
        # In X-Request-ID, out X-Request-ID (only): the client reads its own header.
        via_request_id = await c.get("/items/1", headers={"X-Request-ID": given})
        assert via_request_id.headers["x-request-id"] == given == seen["cid"]
        assert "x-correlation-id" not in via_request_id.headers
        for bad in ("x" * 10_000, "not-a-uuid", given + "\r\nSet-Cookie: a=b"):
            sent = bad.replace("\r\n", "")  # httpx itself refuses CR/LF in headers
            response = await c.get("/items/1", headers={"X-Correlation-ID": sent})
            returned = response.headers["x-correlation-id"]
            assert returned != bad and uuid.UUID(returned).version == 4
            assert seen["cid"] == returned
    assert correlation.get_correlation_id() is None


async def test_correlation_header_wins_over_request_id_in_any_order(registry):
    app, seen = make_app(registry)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    async with client(app) as c:
        for headers in ([("X-Request-ID", theirs), ("X-Correlation-ID", mine)],
                        [("X-Correlation-ID", mine), ("X-Request-ID", theirs)]):
            response = await c.get("/items/1", headers=headers)
            assert response.headers["x-correlation-id"] == mine == seen["cid"]
    strict, seen_strict = make_app(registry, accept_request_id=False)
    async with client(strict) as c:
        response = await c.get("/items/1", headers={"X-Request-ID": theirs})
    returned = response.headers["x-correlation-id"]
    assert returned != theirs and seen_strict["cid"] == returned


async def test_ids_from_neighbours_survive_as_given_in_their_own_header(registry):
    # uuid4().hex (asgi-correlation-id's default) and an upper-case UUID come back
    # unchanged, in the header they came in; a header that is not an ID gets a new one.
    app, seen = make_app(registry)
    hex_id, upper_id = uuid.uuid4().hex, str(uuid.uuid4()).upper()
    async with client(app) as c:
        response = await c.get("/items/1", headers={"X-Request-ID": hex_id})
        assert response.headers["x-request-id"] == hex_id == seen["cid"]
        response = await c.get("/items/1", headers={"X-Correlation-ID": hex_id})
        assert response.headers["x-correlation-id"] == hex_id == seen["cid"]
        assert "x-request-id" not in response.headers
        response = await c.get("/items/1", headers={"X-Correlation-ID": upper_id})
        assert response.headers["x-correlation-id"] == upper_id == seen["cid"]
        response = await c.get("/items/1", headers={"X-Request-ID": "req-42"})
        replaced = response.headers["x-request-id"]
        assert uuid.UUID(replaced).version == 4 and replaced == seen["cid"]
        # hex digits that are not a UUID (no version nibble) are not an ID either
        response = await c.get("/items/1", headers={"X-Request-ID": "0" * 32})
        assert response.headers["x-request-id"] != "0" * 32
        # An invalid correlation header, a valid X-Request-ID: the neighbour's ID wins.
        response = await c.get("/items/1", headers={"X-Correlation-ID": "junk",
                                                    "X-Request-ID": hex_id})
        assert response.headers["x-request-id"] == hex_id == seen["cid"]


def test_websocket_reads_the_same_headers_as_http(registry):
    app, _ = make_app(registry)
    seen = []

    async def who(websocket):
        seen.append(correlation.get_correlation_id())
        await websocket.accept()
        await websocket.close()

    app.router.routes.append(WebSocketRoute("/who", who))
    hex_id, dashed = uuid.uuid4().hex, str(uuid.uuid4())
    with TestClient(app) as tc:
        for headers in ({"X-Request-ID": hex_id}, {"X-Correlation-ID": dashed},
                        {"X-Request-ID": dashed, "X-Correlation-ID": hex_id}):
            with tc.websocket_connect("/who", headers=headers):
                pass
    assert seen == [hex_id, dashed, hex_id]


async def test_the_app_500_handler_reads_the_id_and_can_return_it(registry):
    # Starlette runs the 500 handler outside user middleware (ServerErrorMiddleware),
    # after the exception left this middleware: the ID must still be bound there.
    async def on_error(request, exc):
        cid = correlation.get_correlation_id()
        return PlainTextResponse(f"error {cid}", status_code=500,
                                 headers={"X-Correlation-ID": cid or ""})

    async def fail(request):
        raise Boom("from the app")

    app = Starlette(routes=[Route("/fail", fail)], exception_handlers={500: on_error})
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    given = str(uuid.uuid4())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/fail", headers={"X-Correlation-ID": given})
        generated = await c.get("/fail")
    assert response.status_code == 500
    assert response.text == f"error {given}" and response.headers["x-correlation-id"] == given
    assert uuid.UUID(generated.headers["x-correlation-id"]).version == 4
    assert duration_count(registry, "GET", "/fail", 500) == 2


async def test_fastapi_exception_handler_reads_the_id(registry):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.exception_handler(Exception)
    async def on_error(request, exc):
        return JSONResponse({"correlation_id": correlation.get_correlation_id()},
                            status_code=500)

    @app.get("/fail")
    async def fail():
        raise Boom("from the app")

    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    given = uuid.uuid4().hex
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/fail", headers={"X-Request-ID": given})
    assert response.status_code == 500 and response.json() == {"correlation_id": given}


async def test_the_documented_cors_recipe_lets_a_page_read_the_id(registry):
    from starlette.middleware.cors import CORSMiddleware

    app, _ = make_app(registry)
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example.com"],
                       allow_headers=["X-Correlation-ID", "X-Request-ID"],
                       expose_headers=["X-Correlation-ID", "X-Request-ID"])
    given = uuid.uuid4().hex
    async with client(app) as c:
        response = await c.get("/items/1", headers={"Origin": "https://app.example.com",
                                                    "X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    exposed = {h.strip().lower() for h in
               response.headers["access-control-expose-headers"].split(",")}
    assert {"x-correlation-id", "x-request-id"} <= exposed


async def test_echo_correlation_id_off_binds_the_id_without_sending_it(registry):
    app, seen = make_app(registry, echo_correlation_id=False)
    given = str(uuid.uuid4())
    async with client(app) as c:
        response = await c.get("/items/1", headers={"X-Correlation-ID": given})
        assert "x-correlation-id" not in response.headers and seen["cid"] == given
        response = await c.get("/items/1", headers={"X-Request-ID": given})
    assert "x-request-id" not in response.headers and seen["cid"] == given


async def test_exemplars_carry_the_correlation_id_in_openmetrics(registry):
    app, _ = make_app(registry)
    given = str(uuid.uuid4())
    async with client(app) as c:
        await c.get("/items/7", headers={"X-Correlation-ID": given})
        body = (await c.get("/metrics", headers={"Accept": "application/openmetrics-text"})).text
    exemplars = [s.exemplar for f in text_string_to_metric_families(body) if f.name == DURATION
                 for s in f.samples if s.exemplar is not None]
    assert any(e.labels == {"correlation_id": given} for e in exemplars)


TRACED_SCRIPT = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from promkit.instrument import MetricsRegistry
from promkit.instrument.middleware import HttpMetricsMiddleware

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("outer-asgi")

async def ok(request):
    return PlainTextResponse("ok")

def build(**options):
    registry = MetricsRegistry(CollectorRegistry())
    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(HttpMetricsMiddleware, registry=registry, **options)
    return registry, app

async def request(app, outer_span):
    scope = {"type": "http", "method": "GET", "path": "/", "root_path": "", "headers": [],
             "query_string": b"", "scheme": "http", "server": ("test", 80),
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    async def receive():
        return {"type": "http.request", "body": b""}
    answer = {}
    async def send(message):
        if message["type"] == "http.response.start":
            answer.update((k.lower(), v) for k, v in message["headers"])
    if outer_span:  # an outer OpenTelemetry ASGI middleware's server span
        with tracer.start_as_current_span("server") as span:
            await app(scope, receive, send)
        return answer[b"x-correlation-id"].decode(), span.get_span_context()
    await app(scope, receive, send)
    return answer[b"x-correlation-id"].decode(), None

def exemplar(registry):
    child = registry.histogram("http_server_request_duration_seconds").labels(
        "GET", "/", "200", "2xx")
    return next(e for e in child.get_exemplars() if e is not None).labels

registry, app = build()
cid, ctx = asyncio.run(request(app, outer_span=True))
assert exemplar(registry) == {"trace_id": "%032x" % ctx.trace_id,
                              "span_id": "%016x" % ctx.span_id}, exemplar(registry)
assert exporter.get_finished_spans()[-1].attributes["promkit.correlation_id"] == cid

registry, app = build()
cid, _ = asyncio.run(request(app, outer_span=False))  # tracing on, but no span to link
assert exemplar(registry) == {"correlation_id": cid}, exemplar(registry)

registry, app = build(exemplars=False)
cid, _ = asyncio.run(request(app, outer_span=True))
assert exporter.get_finished_spans()[-1].attributes["promkit.correlation_id"] == cid

# The request line carries the outer span's IDs (read once, with the exemplar's).
import io, json
from opentelemetry import context as otel_context
from promkit.instrument.logs import configure_logging
lines = io.StringIO()
configure_logging(service="svc", stream=lines)
registry, app = build()
cid, ctx = asyncio.run(request(app, outer_span=True))
line = json.loads(lines.getvalue().splitlines()[-1])
assert (line["correlation_id"], line["trace_id"], line["span_id"]) == (
    cid, "%032x" % ctx.trace_id, "%016x" % ctx.span_id), line

# An app that leaves another span current: the line reads the context again, as before.
other = trace.NonRecordingSpan(trace.SpanContext(7, 8, False))
async def leaky(request):
    otel_context.attach(trace.set_span_in_context(other))
    return PlainTextResponse("ok")
registry = MetricsRegistry(CollectorRegistry())
app = Starlette(routes=[Route("/", leaky)])
app.add_middleware(HttpMetricsMiddleware, registry=registry)
cid, ctx = asyncio.run(request(app, outer_span=True))
line = json.loads(lines.getvalue().splitlines()[-1])
assert (line["trace_id"], line["span_id"]) == ("%032x" % 7, "%016x" % 8), line
assert exemplar(registry) == {"trace_id": "%032x" % ctx.trace_id,
                              "span_id": "%016x" % ctx.span_id}, exemplar(registry)
print("ok")
"""


def test_an_outer_server_span_gets_the_id_and_gives_the_exemplar(tmp_path):
    # The global tracer provider is set once per process: a subprocess of its own.
    result = subprocess.run([sys.executable, "-c", TRACED_SCRIPT], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_metrics_only_configuration_records_duration_without_extras(registry):
    app, _ = make_app(registry, correlation=False, exemplars=False, track_in_flight=False)
    async with client(app) as c:
        response = await c.get("/items/1")
    assert "x-correlation-id" not in response.headers
    assert duration_count(registry, "GET", "/items/{item_id}", 200) == 1
    assert sample(registry, "http_server_response_body_size_bytes_count",
                  http_request_method="GET", http_route="/items/{item_id}") is None


def test_websocket_sessions_are_counted(registry):
    app, _ = make_app(registry)
    with TestClient(app) as tc, tc.websocket_connect("/ws/lobby") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        assert ws.receive_text() == "hi"
    labels = {"http_route": "/ws/{room}"}
    assert sample(registry, "websocket_server_active_connections", **labels) == 0
    assert sample(registry, "websocket_server_messages_total", direction="receive", **labels) == 1
    assert sample(registry, "websocket_server_messages_total", direction="transmit", **labels) == 2
    assert sample(registry, "websocket_server_closes_total", close_code="1000", **labels) == 1
    assert sample(registry, "websocket_server_session_duration_seconds_count", **labels) == 1


async def test_client_disconnect_mid_response_is_counted_not_raised(registry):
    async def endless(request):
        async def body():
            while True:
                yield b"chunk"
                await asyncio.sleep(0.01)

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/endless", endless)])
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent = []
    disconnect = asyncio.Event()

    async def receive():
        if messages:
            return messages.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if len(sent) >= 3:
            disconnect.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/endless", "raw_path": b"/endless", "query_string": b"",
             "root_path": "", "headers": [], "server": ("test", 80), "client": ("1.2.3.4", 1)}
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    assert sample(registry, "http_server_client_disconnects_total", http_request_method="GET",
                  http_route="/endless") == 1


def test_invalid_options_are_rejected_at_construction(registry):
    async def app(scope, receive, send):
        pass

    with pytest.raises(ValueError, match="must start with '/'"):
        HttpMetricsMiddleware(app, registry=registry, exclude_paths=["metrics"])
    with pytest.raises(ValueError, match="not a valid header name"):
        HttpMetricsMiddleware(app, registry=registry, correlation_header="X Bad\r\n")
