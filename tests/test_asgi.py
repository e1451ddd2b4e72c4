"""The /metrics ASGI app: negotiation, gzip, HEAD, methods, token, self-metric, concurrency."""

import gzip
import json

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import promkit.exporters._asgi as asgi_module
from promkit.exporters import choose_format, metrics_app
from promkit.instrument import MetricsRegistry

pytestmark = pytest.mark.anyio

# The Accept header Prometheus (2.x) sends when scraping.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TOKEN = "s3cret-scrape-token"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def registry(collector_registry) -> MetricsRegistry:
    registry = MetricsRegistry(collector_registry)
    orders = registry.counter("orders_total", "Orders placed.", ["channel"])
    orders.labels("web").inc(3, exemplar={"trace_id": TRACE_ID})
    registry.gauge("backlog", "Items waiting.", ["queue"]).labels("ocr").set(7)
    registry.histogram("work_seconds", "Work.", ["stage"], buckets=[0.1, 1],
                       unit="seconds").labels("ocr").observe(0.5, exemplar={"trace_id": TRACE_ID})
    return registry


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


def samples(families) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


async def raw_call(app, method: str = "GET", headers: list[tuple[bytes, bytes]] = (),
                   query: bytes = b"") -> tuple[dict, list[bytes]]:
    """Drive the ASGI app directly: (response.start message, body chunks)."""
    scope = {"type": "http", "method": method, "path": "/", "raw_path": b"/",
             "query_string": query, "headers": list(headers), "http_version": "1.1",
             "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
             "root_path": "", "asgi": {"version": "3.0"}}
    messages: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    return start, [m.get("body", b"") for m in messages[1:]]


# --------------------------------------------------------------- negotiation


async def test_default_is_prometheus_text(registry):
    async with client_for(metrics_app(registry)) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    parsed = samples(parse_text(response.text))
    assert parsed[("orders_total", (("channel", "web"),))] == 3
    assert parsed[("backlog", (("queue", "ocr"),))] == 7
    assert parsed[("work_seconds_bucket", (("le", "1.0"), ("stage", "ocr")))] == 1
    assert TRACE_ID not in response.text  # exemplars are OpenMetrics-only


async def test_prometheus_accept_header_gets_openmetrics_with_exemplars(registry):
    async with client_for(metrics_app(registry)) as client:
        response = await client.get("/", headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert response.text.endswith("# EOF\n")
    assert response.text.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(response.text)}  # strict parser
    web = next(s for s in families["orders"].samples if s.name == "orders_total")
    assert web.value == 3 and web.exemplar.labels == {"trace_id": TRACE_ID}
    bucket = next(s for s in families["work_seconds"].samples
                  if s.name == "work_seconds_bucket" and s.labels["le"] == "1.0")
    assert bucket.exemplar.labels == {"trace_id": TRACE_ID} and bucket.exemplar.value == 0.5


@pytest.mark.parametrize("how", ["accept", "query"])
async def test_json_snapshot_by_accept_header_or_query(registry, how):
    async with client_for(metrics_app(registry)) as client:
        if how == "accept":
            response = await client.get("/", headers={"Accept": "application/json"})
        else:
            response = await client.get("/", params={"format": "json"},
                                        headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    by_name = {m["name"]: m for m in response.json()["metrics"]}
    assert by_name["orders_total"]["samples"] == [{"labels": {"channel": "web"}, "value": 3.0}]
    work = by_name["work_seconds"]["samples"][0]
    assert work["buckets"] == {"0.1": 0, "1.0": 1, "+Inf": 1}
    assert (work["count"], work["sum"]) == (1, 0.5)


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (PROMETHEUS_ACCEPT, "", "openmetrics"),
        ("application/openmetrics-text; version=1.0.0", "", "openmetrics"),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "", "text"),
        ("application/json", "", "json"),
        ("", "", "text"),
        ("*/*", "", "text"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", "text"),
        # q=0 means "not acceptable".
        ("application/openmetrics-text;q=0, text/plain", "", "text"),
        # The highest q wins, wherever it is in the header.
        ("text/plain;q=0.2, application/json;q=0.9", "", "json"),
        # ?format= overrides the header.
        (PROMETHEUS_ACCEPT, "format=text", "text"),
        ("application/json", "format=openmetrics", "openmetrics"),
        ("application/json", "format=bogus", "json"),
    ],
)
def test_choose_format(accept, query, expected):
    assert choose_format(accept, query) == expected


# ----------------------------------------------------------------------- gzip


def big_registry(collector_registry, series: int) -> MetricsRegistry:
    registry = MetricsRegistry(collector_registry)
    hits = registry.counter("hits_total", "Hits.", ["k"], series_limit=series + 1)
    for i in range(series):
        hits.labels(f"series-{i}").inc(i)
    return registry


def without_self_timing(text: str) -> str:
    # The exposition-duration histogram changes with every scrape; drop it to compare bodies.
    return "".join(line + "\n" for line in text.splitlines()
                   if "promkit_exposition_duration" not in line)


async def test_gzip_when_accepted_and_body_is_large(collector_registry):
    app = metrics_app(big_registry(collector_registry, 200))
    async with client_for(app) as client:
        plain = await client.get("/", headers={"Accept-Encoding": "identity"})
        async with client.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert "content-encoding" not in plain.headers
    assert len(plain.content) >= 1024
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(raw) < len(plain.content)
    assert "accept-encoding" in response.headers["vary"]
    unzipped = gzip.decompress(raw).decode()
    assert without_self_timing(unzipped) == without_self_timing(plain.text)
    assert samples(parse_text(unzipped))[("hits_total", (("k", "series-199"),))] == 199


async def test_no_gzip_for_small_bodies_or_when_refused(collector_registry):
    small = MetricsRegistry(CollectorRegistry())
    start, body = await raw_call(metrics_app(small), headers=[(b"accept-encoding", b"gzip")])
    assert len(b"".join(body)) < 1024
    assert b"content-encoding" not in dict(start["headers"])

    big = metrics_app(big_registry(collector_registry, 200))
    start, body = await raw_call(big, headers=[(b"accept-encoding", b"gzip;q=0, identity")])
    assert b"content-encoding" not in dict(start["headers"])
    assert b"hits_total" in b"".join(body)


# ----------------------------------------------------------------- HEAD, POST


async def test_head_gives_headers_and_no_body(collector_registry):
    app = metrics_app(big_registry(collector_registry, 50))
    start, body = await raw_call(app, "HEAD")
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-type"] == b"text/plain; version=0.0.4; charset=utf-8"
    assert int(headers[b"content-length"]) > 2000  # the size a GET body would have
    assert b"".join(body) == b""
    # Gzip negotiation applies to HEAD too, so the headers match what GET would send.
    start, body = await raw_call(app, "HEAD", headers=[(b"accept-encoding", b"gzip")])
    assert dict(start["headers"])[b"content-encoding"] == b"gzip"
    assert b"".join(body) == b""
    async with client_for(app) as client:
        response = await client.head("/")
    assert response.status_code == 200 and response.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_get_405_with_allow(registry, method):
    async with client_for(metrics_app(registry)) as client:
        response = await client.request(method, "/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert "orders" not in response.text


# ---------------------------------------------------------------------- token


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "],
)
async def test_missing_or_wrong_token_gets_401_and_no_data(registry, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client_for(metrics_app(registry, token=TOKEN)) as client:
        for params in ({}, {"format": "json"}, {"format": "openmetrics"}):
            response = await client.get("/", headers=headers, params=params)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            for leak in ("orders", "backlog", "work_seconds", "promkit", "# HELP", "{"):
                assert leak not in response.text
    start, body = await raw_call(metrics_app(registry, token=TOKEN), "HEAD")
    assert start["status"] == 401 and b"".join(body) == b""


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_right_token_gets_the_metrics(registry, scheme):
    async with client_for(metrics_app(registry, token=TOKEN)) as client:
        response = await client.get("/", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200
    assert samples(parse_text(response.text))[("orders_total", (("channel", "web"),))] == 3


@pytest.mark.parametrize("token", ["", "   "])
def test_empty_token_is_refused_at_construction(registry, token):
    with pytest.raises(ValueError, match="token is empty"):
        metrics_app(registry, token=token)


# --------------------------------------------------------------- self-metric


async def test_exposition_duration_is_recorded_per_format(registry):
    get = registry.collector_registry.get_sample_value
    app = metrics_app(registry, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client_for(app) as client:
        await client.get("/", headers=auth)
        await client.get("/", headers={**auth, "Accept": PROMETHEUS_ACCEPT})
        await client.get("/", headers={**auth, "Accept": PROMETHEUS_ACCEPT})
        await client.get("/", headers=auth, params={"format": "json"})
        await client.get("/")  # 401: not a rendered exposition
        await client.post("/", headers=auth)  # 405: neither
    name = "promkit_exposition_duration_seconds_count"
    assert get(name, {"format": "text"}) == 1
    assert get(name, {"format": "openmetrics"}) == 2
    assert get(name, {"format": "json"}) == 1
    assert get("promkit_exposition_duration_seconds_sum", {"format": "openmetrics"}) > 0


# --------------------------------------------------------------- concurrency


async def test_concurrent_requests_run_between_chunks_of_a_large_scrape(
    collector_registry, monkeypatch
):
    series = 10_000
    registry = big_registry(collector_registry, series)
    chunks_done = 0
    real_render_text = asgi_module.render_text

    def counting_render_text(reg, chunk_series):
        nonlocal chunks_done
        for chunk in real_render_text(reg, chunk_series):
            chunks_done += 1
            yield chunk

    monkeypatch.setattr(asgi_module, "render_text", counting_render_text)
    total_chunks = len(list(real_render_text(registry, 256)))
    assert total_chunks > 10
    seen_mid_scrape: list[int] = []
    scrape_done = anyio.Event()

    async def tiny_request_loop():
        # Stands in for the app's other requests: it only needs the loop for a moment.
        while not scrape_done.is_set():
            if 0 < chunks_done < total_chunks:
                seen_mid_scrape.append(chunks_done)
            await anyio.sleep(0)

    async with client_for(metrics_app(registry)) as client:
        async def scrape():
            try:
                return await client.get("/")
            finally:
                scrape_done.set()

        result: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(tiny_request_loop)
            result.append(await scrape())

    assert result[0].status_code == 200
    parsed = samples(parse_text(result[0].text))
    assert parsed[("hits_total", (("k", f"series-{series - 1}"),))] == series - 1
    # The other coroutine ran while the scrape was half done, many times over.
    assert seen_mid_scrape, "the event loop was blocked for the whole render"
    assert len(set(seen_mid_scrape)) > total_chunks // 2


# The JSON snapshot's chunked rendering: tests/test_json_chunks.py.


# ------------------------------------------------------------------ mounting


def starlette_app(registry: MetricsRegistry) -> Starlette:
    async def home(request):
        return PlainTextResponse("home")

    return Starlette(routes=[
        Route("/", home),
        Route("/exact-metrics", metrics_app(registry)),
        Mount("/metrics", metrics_app(registry)),
    ])


async def test_mounted_in_starlette(registry):
    async with client_for(starlette_app(registry)) as client:
        mounted = await client.get("/metrics/", headers={"Accept": PROMETHEUS_ACCEPT})
        # Starlette redirects /metrics to /metrics/ for a Mount; Prometheus follows redirects.
        redirected = await client.get("/metrics", follow_redirects=True)
        as_json = await client.get("/metrics/?format=json")
        exact = await client.get("/exact-metrics")  # a Route serves the path as is
        home = await client.get("/")
    assert mounted.status_code == 200 and mounted.text.endswith("# EOF\n")
    assert samples(parse_openmetrics(mounted.text))[("orders_total", (("channel", "web"),))] == 3
    assert redirected.status_code == 200 and redirected.history[0].status_code == 307
    assert "orders_total" in redirected.text
    assert as_json.headers["content-type"] == "application/json"
    assert exact.status_code == 200 and not exact.history and "orders_total" in exact.text
    assert home.text == "home"


async def test_lifespan_when_served_as_the_top_level_app(registry):
    app = metrics_app(registry)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    with anyio.fail_after(5):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_json_body_is_strict_json(registry):
    registry.gauge("reading", "A reading.").set(float("nan"))
    body = "".join(asgi_module.render_json_chunks(registry, 1))
    value = json.loads(body, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    reading = next(m for m in value["metrics"] if m["name"] == "reading")
    assert reading["samples"][0]["value"] == "NaN"
