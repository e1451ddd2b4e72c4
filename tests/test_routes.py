"""RouteTemplates (instrument/_routes.py) alone: the compat paths the frameworks do not reach."""

from types import SimpleNamespace

from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router

from promkit.instrument._routes import RouteTemplates, find_router, route_path

UNMATCHED = "__unmatched__"


async def item(request):
    return PlainTextResponse("item")


class IncludedRouterStandIn:
    """What FastAPI's lazy include_router leaves in ``router.routes``: one object whose
    ``effective_route_contexts()`` yields each route with its prefixed copy."""

    def __init__(self, prefix, routes):
        self.prefix, self.routes_inside = prefix, routes

    def effective_route_contexts(self):
        for route in self.routes_inside:
            yield SimpleNamespace(original_route=route,
                                  starlette_route=Route(self.prefix + route.path, route.endpoint))


def scope_after(route, path):
    # What the router leaves in the scope once the route ran (Starlette 1.7+ / FastAPI).
    return {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [],
            "route": route, "endpoint": route.endpoint}


def test_an_included_router_is_read_through_its_effective_routes():
    original = Route("/items/{item_id}", item)
    router = Router(routes=[IncludedRouterStandIn("/api/v1", [original])])
    templates = RouteTemplates(router, UNMATCHED)
    assert templates.template(scope_after(original, "/api/v1/items/3"), "/api/v1/items/3") \
        == "/api/v1/items/{item_id}"


def test_without_the_effective_routes_an_included_route_keeps_its_own_template():
    class OlderOrNewerInclude:  # a FastAPI this module was not written for
        def effective_route_contexts(self):
            raise AttributeError("include_context")

    original = Route("/items/{item_id}", item)
    router = Router(routes=[OlderOrNewerInclude()])
    templates = RouteTemplates(router, UNMATCHED)
    assert templates.template(scope_after(original, "/api/v1/items/3"), "/api/v1/items/3") \
        == "/items/{item_id}"


def test_a_mount_left_in_the_scope_from_above_this_router_is_unmatched():
    inner = Router(routes=[Route("/items/{item_id}", item)])
    parent_mount = Mount("/v2", app=inner)
    scope = {"type": "http", "method": "GET", "path": "/nope", "root_path": "/v2",
             "headers": [], "route": parent_mount, "endpoint": inner}
    assert RouteTemplates(inner, UNMATCHED).template(scope, "/nope") == UNMATCHED


def test_without_a_router_the_scope_route_path_or_unmatched():
    templates = RouteTemplates(None, UNMATCHED)
    route = Route("/items/{item_id}", item)
    assert templates.template(scope_after(route, "/items/1"), "/items/1") == "/items/{item_id}"
    assert templates.template({"type": "http", "path": "/x"}, "/x") == UNMATCHED


def test_find_router_follows_the_middleware_chain():
    router = Router(routes=[])
    outer = SimpleNamespace(app=SimpleNamespace(app=router))
    assert find_router(outer) is router
    assert find_router(SimpleNamespace(app=None)) is None


def test_route_path_removes_the_root_path_only_at_a_segment_boundary():
    assert route_path("/api/items", "/api") == "/items"
    assert route_path("/api", "/api") == "/"
    assert route_path("/apiary", "/api") == "/apiary"
    assert route_path("/items", "/api") == "/items"  # servers that leave it out of the path
    assert route_path("/items", "") == "/items"
