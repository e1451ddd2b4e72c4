"""Full route templates from the app's own routers (the one module that reads routing objects).

The middleware imports no framework. After the app has answered, the scope
says which route ran, differently on each version: Starlette 1.7+ leaves the
innermost matched route in ``scope["route"]`` (without the prefixes of the
Mounts above it); older Starlette leaves only ``scope["endpoint"]``; FastAPI's
lazy ``include_router`` (0.1xx) leaves the included route without its include
prefix, or nothing for plain Starlette routes and mounts. Neither value is
the template the app declared, so :class:`RouteTemplates` indexes the route
tree below the middleware once (Mounts, Hosts, sub-apps, included routers
expanded, every template with its prefixes) and maps the scope's route or
endpoint object to that template. A lookup is cached per route or endpoint
object; only an object used at several places (one endpoint on two paths,
one router included twice) or one the index does not know is resolved by
matching the path with the routers' own ``matches()``.

Everything is duck-typed (``routes``, ``path``, ``endpoint``, ``app``,
``matches``) and read only here. FastAPI's lazy include_router is read
through its ``effective_route_contexts()``; without it an included router
is skipped and its routes keep the template their own router gives them
(tested with a stand-in object).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["RouteTemplates", "find_router", "route_path"]

_CACHE_LIMIT = 10_000
_MAX_DEPTH = 32  # routers nest a few levels; this only stops a cycle
_NOT_FOUND: Any = object()  # a Mount or Host matched and nothing inside it did: a 404


def route_path(path: str, root_path: str) -> str:
    """``path`` without ``root_path`` (the ASGI path includes it; older servers left it out)."""
    if root_path and path.startswith(root_path):
        rest = path[len(root_path):]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


def find_router(app: Any) -> Any | None:
    """The first object with a ``routes`` list down the ``.app`` chain of middlewares."""
    for _ in range(64):
        if app is None:
            return None
        if isinstance(getattr(app, "routes", None), list):
            return app
        app = getattr(app, "app", None)
    return None


class _Node:
    """A route of the tree with its full template; ``children`` for Mounts and Hosts."""

    __slots__ = ("children", "label", "route")

    def __init__(self, route: Any, label: str | None, children: list[_Node] | None) -> None:
        self.route = route  # matched with its own matches(); None for an included router
        self.label = label  # the full template; None: no route matched (a Mount's 404)
        self.children = children


class _Index:
    """The route tree below one router, and its nodes by route and endpoint object."""

    def __init__(self, router: Any) -> None:
        self.by_route: dict[int, tuple[Any, list[_Node]]] = {}
        self.by_endpoint: dict[int, tuple[Any, list[_Node]]] = {}
        self.nodes = self._nodes(getattr(router, "routes", None) or [], "", 0)

    def _nodes(self, routes: Iterable[Any], prefix: str, depth: int) -> list[_Node]:
        nodes: list[_Node] = []
        if depth > _MAX_DEPTH:
            return nodes
        for route in routes:
            contexts = _included_route_contexts(route)
            if contexts is not None:
                # FastAPI's lazy include_router: one transparent group of effective routes,
                # each with the include prefixes in its path.
                group = []
                for original, effective in contexts:
                    group.append(self._node(effective, prefix, depth, also=original))
                nodes.append(_Node(None, None, group))
            else:
                nodes.append(self._node(route, prefix, depth))
        return nodes

    def _node(self, route: Any, prefix: str, depth: int, also: Any = None) -> _Node:
        path = getattr(route, "path", None)
        children = getattr(route, "routes", None)  # Mount and Host; [] for a mounted app
        if children and isinstance(path, str):  # a Mount of a router or an app with routes
            node = _Node(route, None, self._nodes(children, prefix + path, depth + 1))
            endpoint = getattr(route, "app", None)
        elif children is not None and path is None:  # a Host: no path of its own
            node = _Node(route, None, self._nodes(children, prefix, depth + 1))
            endpoint = getattr(route, "app", None)
        elif isinstance(path, str):  # a route, or a Mount of an app without routes
            node = _Node(route, prefix + path or "/", None)
            endpoint = getattr(route, "endpoint", None)
            if children is not None:
                endpoint = getattr(route, "app", None)  # a Mount's endpoint is its app
        else:
            return _Node(None, None, [])  # a route of a kind this module cannot read: skipped
        for table, key in ((self.by_route, route), (self.by_route, also),
                           (self.by_endpoint, endpoint)):
            if key is not None:
                table.setdefault(id(key), (key, []))[1].append(node)
        return node

    def match(self, scope: Mapping[str, Any]) -> _Node | None:
        found = _match(self.nodes, scope, 0)
        return None if found is None or found is _NOT_FOUND else found[0]


def _included_route_contexts(route: Any) -> list[tuple[Any, Any]] | None:
    # FastAPI >= 0.1xx keeps an included router as one route object
    # (fastapi.routing._IncludedRouter) and builds the prefixed routes lazily.
    # (original route, effective route: a prefixed copy or the context itself).
    effective = getattr(route, "effective_route_contexts", None)
    if effective is None or not callable(effective):
        return None
    try:
        pairs = []
        for context in effective():
            starlette_route = getattr(context, "starlette_route", None)
            pairs.append((getattr(context, "original_route", None),
                          starlette_route if starlette_route is not None else context))
        return pairs
    except Exception:  # a FastAPI this was not written for: label as its own router does
        return None


def _match(nodes: list[_Node], scope: Mapping[str, Any], depth: int) -> Any:
    """(node, full) of the route Starlette's router would pick, _NOT_FOUND or None."""
    partial = None
    for node in nodes:
        if node.route is None:  # an included router's routes are tried in line
            if node.children is None:
                continue
            found = _match(node.children, scope, depth + 1)
            if found is _NOT_FOUND or (found is not None and found[1]):
                return found
            if found is not None and partial is None:
                partial = found
            continue
        try:
            match, child_scope = node.route.matches(scope)
        except Exception:
            continue
        kind = getattr(match, "name", "NONE")
        if kind == "NONE":
            continue
        if node.children is not None and kind == "FULL":
            # The router commits to a Mount or Host that matched: a miss inside is a 404.
            if depth > _MAX_DEPTH:
                return _NOT_FOUND
            inner = _match(node.children, {**scope, **child_scope}, depth + 1)
            return _NOT_FOUND if inner is None or inner is _NOT_FOUND else inner
        if kind == "FULL":
            return node, True
        if partial is None:
            partial = node, False
    return partial


class RouteTemplates:
    """The full template of the route that served a request, for one middleware.

    ``router`` is the router the middleware wraps (found down its ``.app``
    chain); None when there is none to find, and the scope's router is used.
    ``by_route`` maps the id of a route object the router left in the scope to
    its template (``unmatched`` when no route matched); the middleware reads it
    first. The objects are kept alive alongside, so an id found there is that
    object's: no other object can have it meanwhile.
    """

    def __init__(self, router: Any | None, unmatched: str) -> None:
        self._router = router
        self._unmatched = unmatched
        self._index: _Index | None = None
        self._index_router: Any = None
        # Objects not in the index even after a rebuild (a parent's Mount left in the
        # scope of a mounted app's middleware, an app that routes on its own): matched.
        self._unknown: dict[int, Any] = {}
        self._rebuilt_for: dict[int, Any] = {}  # objects whose match failed once: rebuilt
        self.by_route: dict[int, str] = {}
        self._by_endpoint: dict[int, str] = {}
        self._alive: list[Any] = []  # the objects whose ids key the two dicts above

    def template(self, scope: MutableMapping[str, Any], path: str) -> str:
        """The template of the request that ran in ``scope`` (``unmatched``: no route matched).

        ``path`` is the request path relative to the router (root path removed).
        """
        route = scope.get("route")
        if route is not None:
            cached = self.by_route.get(id(route))
            if cached is not None:
                return cached
        router = self._router if self._router is not None else scope.get("router")
        if router is None:  # no router to read: the route's own path, as the scope gives it
            return (_own_path(route) if route is not None else None) or self._unmatched
        if self._index is None or self._index_router is not router:
            self._rebuild(router)
        endpoint = scope.get("endpoint")
        if route is not None:
            nodes = self._known(router, route, endpoint=False)
            if nodes is not None and len(nodes) == 1 and nodes[0].children is None:
                return self._remember(self.by_route, route, self._label(nodes[0]))
            # A Mount or Host (the router inside did not say which route ran), a route
            # used at two places, or an unknown one: the endpoint is the innermost match.
        if endpoint is not None:
            cached = self._by_endpoint.get(id(endpoint))
            if cached is not None:
                return cached
            nodes = self._known(router, endpoint, endpoint=True)
            if nodes is not None:
                if len(nodes) == 1:
                    # A Mount's app left as the endpoint: nothing inside matched (None).
                    return self._remember(self._by_endpoint, endpoint, self._label(nodes[0]))
                return self._match_among(endpoint, scope, path, router, endpoint=True)
        if route is None and endpoint is None:
            return self._unmatched  # nothing matched: a 404 or a slash redirect
        assert self._index is not None
        node = self._index.match(_match_scope(scope, path))
        if node is None and route is not None and getattr(route, "routes", None) is None:
            # A route that ran where the index cannot see (a router this module cannot
            # read): its own template. A Mount left from above this router: unmatched.
            return _own_path(route) or self._unmatched
        return self._label(node)

    def _match_among(self, key: Any, scope: MutableMapping[str, Any], path: str,
                     router: Any, *, endpoint: bool) -> str:
        # One object at several places: the one the path matches, as the router would.
        for _ in range(2):
            assert self._index is not None
            table = self._index.by_endpoint if endpoint else self._index.by_route
            nodes = table[id(key)][1]
            matched = self._index.match(_match_scope(scope, path))
            if matched is not None and any(node is matched for node in nodes):
                return self._label(matched)
            if self._rebuilt_for.get(id(key)) is key:
                break
            # The router found it here, the index did not: a route added since?
            if len(self._rebuilt_for) < _CACHE_LIMIT:
                self._rebuilt_for[id(key)] = key
            self._rebuild(router)
            if self._known(router, key, endpoint=endpoint) is None:
                return self._unmatched
        # The path matches none of the object's places (a router this module did not
        # index ran it): no place can be told from another, so no route is named.
        return self._unmatched

    def _label(self, node: _Node | None) -> str:
        if node is None or node.label is None:
            return self._unmatched
        return node.label

    def _known(self, router: Any, key: Any, *, endpoint: bool) -> list[_Node] | None:
        for attempt in range(2):
            assert self._index is not None
            table = self._index.by_endpoint if endpoint else self._index.by_route
            found = table.get(id(key))
            if found is not None and found[0] is key:
                return found[1]
            unknown = self._unknown.get(id(key))
            if attempt or (unknown is not None and unknown is key):
                break
            self._rebuild(router)  # a route added since the index was built?
        if len(self._unknown) < _CACHE_LIMIT:
            self._unknown[id(key)] = key
        return None

    def _rebuild(self, router: Any) -> None:
        self._index, self._index_router = _Index(router), router
        self.by_route.clear()
        self._by_endpoint.clear()
        self._alive = []

    def _remember(self, table: dict[int, str], key: Any, label: str) -> str:
        if len(table) < _CACHE_LIMIT:
            self._alive.append(key)  # before its id is published
            table[id(key)] = label
        return label


def _own_path(route: Any) -> str | None:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


def _match_scope(scope: Mapping[str, Any], path: str) -> dict[str, Any]:
    # What the routers' matches() read, at the router's own level.
    return {"type": scope.get("type", "http"), "path": path, "root_path": "",
            "method": scope.get("method", "GET"), "headers": scope.get("headers", []),
            "path_params": {}}
