"""The ``http_route`` label: the full template the app declared, on every supported framework.

Each pattern a Starlette or FastAPI app uses to declare routes, called in process.
These run at the declared floors (Starlette 0.37, FastAPI 0.110.1, where the
router does not put the matched route in the scope) and at the newest releases
(where FastAPI's include_router keeps routes without their prefix).
"""

import httpx
import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from promkit.exporters import metrics_app
from promkit.instrument.middleware import UNMATCHED_ROUTE, HttpMetricsMiddleware

DURATION_COUNT = "http_server_request_duration_seconds_count"


def series(registry):
    """{(method, route, status): count} of the duration histogram."""
    found = {}
    for metric in registry.collector_registry.collect():
        for s in metric.samples:
            if s.name == DURATION_COUNT:
                key = (s.labels["http_request_method"], s.labels["http_route"],
                       s.labels["http_response_status_code"])
                found[key] = s.value
    return found


def client(app, root_path=""):
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def text(request):
    return PlainTextResponse("ok")


async def echo_socket(websocket):
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


# ------------------------------------------------------------------------ Starlette


def starlette_app(registry, **options):
    sub_app = Starlette(routes=[Route("/hello/{name}", text)])
    app = Starlette(routes=[
        Route("/items/{item_id}", text),
        Route("/only-post", text, methods=["POST"]),
        Route("/same-endpoint/a", text),
        Route("/same-endpoint/b/{x}", text),
        Mount("/api", routes=[
            Route("/users/{user_id}", text),
            Route("/create", text, methods=["POST"]),
            Mount("/v2", routes=[Route("/orders/{order_id}", text)]),
        ]),
        Mount("/tenants/{tenant}", routes=[Route("/items/{item_id}", text)]),
        Mount("/sub", app=sub_app),
        Host("admin.example.com", app=Router(routes=[Route("/panel", text)])),
        WebSocketRoute("/ws/{room}", echo_socket),
        Mount("/live", routes=[WebSocketRoute("/feed/{topic}", echo_socket)]),
    ])
    app.add_middleware(HttpMetricsMiddleware, registry=registry, **options)
    return app


async def test_plain_routes_and_mounts_are_labelled_with_the_full_template(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        for path in ("/items/1", "/items/2", "/api/users/7", "/api/v2/orders/9",
                     "/tenants/acme/items/3", "/tenants/globex/items/4", "/sub/hello/ann"):
            assert (await c.get(path)).status_code == 200, path
        assert (await c.get("/panel", headers={"Host": "admin.example.com"})).status_code == 200
    assert series(registry) == {
        ("GET", "/items/{item_id}", "200"): 2,
        ("GET", "/api/users/{user_id}", "200"): 1,
        ("GET", "/api/v2/orders/{order_id}", "200"): 1,
        ("GET", "/tenants/{tenant}/items/{item_id}", "200"): 2,
        ("GET", "/sub/hello/{name}", "200"): 1,
        ("GET", "/panel", "200"): 1,
    }


async def test_one_endpoint_on_two_routes_keeps_each_template(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        await c.get("/same-endpoint/a")
        await c.get("/same-endpoint/b/1")
        await c.get("/same-endpoint/a")
    assert series(registry) == {("GET", "/same-endpoint/a", "200"): 2,
                                ("GET", "/same-endpoint/b/{x}", "200"): 1}


async def test_not_found_is_unmatched_at_the_top_and_under_a_mount(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        for path in ("/nope", "/api/nope", "/api/v2/nope", "/tenants/acme/nope", "/sub/nope"):
            assert (await c.get(path)).status_code == 404, path
    assert series(registry) == {("GET", UNMATCHED_ROUTE, "404"): 5}


async def test_method_not_allowed_keeps_the_route_template(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        assert (await c.get("/only-post")).status_code == 405
        assert (await c.get("/api/create")).status_code == 405
    assert series(registry) == {("GET", "/only-post", "405"): 1,
                                ("GET", "/api/create", "405"): 1}


async def test_slash_redirects_are_unmatched(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        assert (await c.get("/items/1/")).status_code == 307
        assert (await c.get("/api/users/7/")).status_code == 307
    assert series(registry) == {("GET", UNMATCHED_ROUTE, "307"): 2}


async def test_root_path_is_not_part_of_the_label_nor_of_exclusions(registry):
    # uvicorn --root-path /api: the scope's path includes the root path.
    app = starlette_app(registry)
    metrics_only = Starlette(routes=[Route("/metrics", metrics_app(registry)),
                                     Route("/items/{item_id}", text)])
    metrics_only.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with client(app, root_path="/prefix") as c:
        assert (await c.get("/prefix/items/1")).status_code == 200
        assert (await c.get("/prefix/api/users/7")).status_code == 200
        assert (await c.get("/prefix/nope")).status_code == 404
    async with client(metrics_only, root_path="/prefix") as c:
        assert (await c.get("/prefix/metrics")).status_code == 200
        assert (await c.get("/prefix/health")).status_code == 404  # excluded: not recorded
    assert series(registry) == {("GET", "/items/{item_id}", "200"): 1,
                                ("GET", "/api/users/{user_id}", "200"): 1,
                                ("GET", UNMATCHED_ROUTE, "404"): 1}


async def test_a_server_that_leaves_the_root_path_out_of_the_path_is_labelled_alike(registry):
    app = starlette_app(registry)
    scope_path = "/items/5"  # older servers: path without the root path
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": scope_path, "raw_path": scope_path.encode(),
             "query_string": b"", "root_path": "/prefix", "headers": [],
             "server": ("test", 80), "client": ("1.2.3.4", 1)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert series(registry) == {("GET", "/items/{item_id}", "200"): 1}


async def test_opaque_mounts_are_labelled_with_the_mount_path(registry, tmp_path):
    (tmp_path / "site.css").write_text("body {}")
    app = Starlette(routes=[
        Mount("/static", StaticFiles(directory=tmp_path)),
        Mount("/metrics", metrics_app(registry)),
    ])
    app.add_middleware(HttpMetricsMiddleware, registry=registry, exclude_paths=[])
    async with client(app) as c:
        assert (await c.get("/static/site.css")).status_code == 200
        assert (await c.get("/static/missing.css")).status_code == 404
        assert (await c.get("/metrics/")).status_code == 200
    assert series(registry) == {("GET", "/static", "200"): 1, ("GET", "/static", "404"): 1,
                                ("GET", "/metrics", "200"): 1}


async def test_routes_added_after_the_first_request_are_found(registry):
    app = starlette_app(registry)
    async with client(app) as c:
        await c.get("/items/1")
        app.router.routes.append(Route("/late/{thing}", text))
        assert (await c.get("/late/1")).status_code == 200
    assert series(registry)[("GET", "/late/{thing}", "200")] == 1


async def test_middleware_on_a_mounted_sub_app_labels_relative_to_that_app(registry):
    # The parent's mount is the sub-app's root path: out of the label, like a proxy's prefix.
    sub_app = Starlette(routes=[Route("/items/{item_id}", text)])
    sub_app.add_middleware(HttpMetricsMiddleware, registry=registry)
    app = Starlette(routes=[Mount("/v2", app=sub_app)])
    async with client(app) as c:
        assert (await c.get("/v2/items/1")).status_code == 200
        assert (await c.get("/v2/nope")).status_code == 404
    assert series(registry) == {("GET", "/items/{item_id}", "200"): 1,
                                ("GET", UNMATCHED_ROUTE, "404"): 1}


def test_websocket_routes_carry_the_full_template(registry):
    app = starlette_app(registry)
    with TestClient(app) as tc:
        for path in ("/ws/lobby", "/live/feed/news"):
            with tc.websocket_connect(path) as ws:
                assert ws.receive_text() == "hi"
    for route in ("/ws/{room}", "/live/feed/{topic}"):
        assert registry.collector_registry.get_sample_value(
            "websocket_server_closes_total", {"http_route": route, "close_code": "1000"}) == 1


# -------------------------------------------------------------------------- FastAPI


def fastapi_app(registry, static_dir):
    users = APIRouter()

    @users.get("/")
    def list_users():
        return []

    @users.get("/{user_id}")
    def get_user(user_id: int):
        return {"id": user_id}

    @users.post("/{user_id}/avatar")
    def set_avatar(user_id: int):
        return {}

    items = APIRouter(prefix="/items")

    @items.get("/")
    def list_items():
        return []

    @items.get("/{item_id}")
    def get_item(item_id: int):
        return {"id": item_id}

    deep = APIRouter()

    @deep.get("/things/{thing_id}")
    def get_thing(thing_id: str):
        return {}

    @deep.websocket("/stream/{topic}")
    async def stream(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    async def plain(request):
        return PlainTextResponse("plain")

    items.include_router(deep, prefix="/deep")
    items.mount("/files", Router(routes=[Route("/{name}", plain)]))

    app = FastAPI()
    app.include_router(users, prefix="/api/v1/users")
    app.include_router(items, prefix="/api/v1")
    app.add_route("/plain", plain)
    app.mount("/static", StaticFiles(directory=static_dir))
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    return app


@pytest.fixture
def static_dir(tmp_path):
    (tmp_path / "app.js").write_text("1;")
    return tmp_path


async def test_fastapi_include_prefixes_are_in_the_label(registry, static_dir):
    app = fastapi_app(registry, static_dir)
    async with client(app) as c:
        assert (await c.get("/api/v1/users/")).status_code == 200
        assert (await c.get("/api/v1/users/5")).status_code == 200
        assert (await c.get("/api/v1/items/")).status_code == 200
        assert (await c.get("/api/v1/items/3")).status_code == 200
        assert (await c.get("/api/v1/items/deep/things/x")).status_code == 200
    assert series(registry) == {
        ("GET", "/api/v1/users/", "200"): 1,
        ("GET", "/api/v1/users/{user_id}", "200"): 1,
        ("GET", "/api/v1/items/", "200"): 1,
        ("GET", "/api/v1/items/{item_id}", "200"): 1,
        ("GET", "/api/v1/items/deep/things/{thing_id}", "200"): 1,
    }


async def test_fastapi_405_and_422_under_an_included_router_keep_the_template(
        registry, static_dir):
    app = fastapi_app(registry, static_dir)
    async with client(app) as c:
        assert (await c.get("/api/v1/users/abc")).status_code == 422
        assert (await c.get("/api/v1/users/5/avatar")).status_code == 405
        assert (await c.get("/api/v1/nothing/here")).status_code == 404
    assert series(registry) == {
        ("GET", "/api/v1/users/{user_id}", "422"): 1,
        ("GET", "/api/v1/users/{user_id}/avatar", "405"): 1,
        ("GET", UNMATCHED_ROUTE, "404"): 1,
    }


async def test_fastapi_add_route_and_static_files_are_labelled(registry, static_dir):
    app = fastapi_app(registry, static_dir)
    async with client(app) as c:
        assert (await c.get("/plain")).status_code == 200
        assert (await c.get("/static/app.js")).status_code == 200
        assert (await c.get("/static/none.js")).status_code == 404
    assert series(registry) == {("GET", "/plain", "200"): 1, ("GET", "/static", "200"): 1,
                                ("GET", "/static", "404"): 1}


async def test_fastapi_mount_inside_an_included_router(registry, static_dir):
    app = fastapi_app(registry, static_dir)
    async with client(app) as c:
        response = await c.get("/api/v1/items/files/report.txt")
    if response.status_code == 404:
        # FastAPI before the lazy include_router drops a router's mounts on include:
        # the app answers 404, and the label says no route matched.
        assert series(registry) == {("GET", UNMATCHED_ROUTE, "404"): 1}
    else:
        assert response.text == "plain"
        assert series(registry) == {("GET", "/api/v1/items/files/{name}", "200"): 1}


async def test_fastapi_one_router_included_twice_keeps_both_prefixes(registry):
    router = APIRouter()

    @router.get("/status/{check}")
    def status(check: str):
        return {}

    app = FastAPI()
    app.include_router(router, prefix="/v1")
    app.include_router(router, prefix="/v2")
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with client(app) as c:
        for path in ("/v1/status/db", "/v2/status/db", "/v2/status/cache"):
            assert (await c.get(path)).status_code == 200
    assert series(registry) == {("GET", "/v1/status/{check}", "200"): 1,
                                ("GET", "/v2/status/{check}", "200"): 2}


def test_fastapi_websocket_under_an_included_router(registry, static_dir):
    app = fastapi_app(registry, static_dir)
    with TestClient(app) as tc, tc.websocket_connect("/api/v1/items/deep/stream/news") as ws:
        assert ws.receive_text() == "hi"
    assert registry.collector_registry.get_sample_value(
        "websocket_server_closes_total",
        {"http_route": "/api/v1/items/deep/stream/{topic}", "close_code": "1000"}) == 1


async def test_route_lookups_are_cached_not_matched_per_request(registry, monkeypatch):
    # Once a route (or, on Starlette < 1.7, its endpoint) has been seen, its template
    # is a dictionary lookup: no index rebuild, no matching against the routers.
    from promkit.instrument import _routes

    calls = {"index": 0, "match": 0}
    real_index, real_match = _routes._Index, _routes._match

    class CountedIndex(real_index):
        def __init__(self, router):
            calls["index"] += 1
            super().__init__(router)

    def counted_match(*args):
        calls["match"] += 1
        return real_match(*args)

    monkeypatch.setattr(_routes, "_Index", CountedIndex)
    monkeypatch.setattr(_routes, "_match", counted_match)

    async def user(request):
        return PlainTextResponse("user")

    async def item(request):
        return PlainTextResponse("item")

    app = Starlette(routes=[Route("/items/{item_id}", item),
                            Mount("/api", routes=[Route("/users/{user_id}", user)])])
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with client(app) as c:
        for path in ("/items/1", "/api/users/1", "/api/nope"):
            await c.get(path)
        warm = dict(calls)
        for i in range(20):
            for path in (f"/items/{i}", f"/api/users/{i}", f"/api/nope{i}", f"/nope/{i}"):
                await c.get(path)
    assert calls == warm and warm["index"] == 1
    assert series(registry)[("GET", "/api/users/{user_id}", "200")] == 21
