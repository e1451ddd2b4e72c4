"""``rules/compat.yml``: peers' HTTP metric names and labels, recorded from promkit's series.

For dashboards and alerts written against starlette_exporter or
prometheus-fastapi-instrumentator (docs/migration.md). Each rule copies promkit's
series under the peer's name, renames the labels (``label_replace``, then
``sum without`` the old names) and adds the peer's constant labels, so every
output series is one target's counter (``job``, ``instance`` and ``service``
kept): ``rate()`` over it is as correct as over the peer's own series. Only the
peer's labels that promkit's labels determine are summed away (a status class
over its codes), never series of different targets.

The names are the peers' own, without the colons of ``level:metric:operations``
on purpose: an unchanged dashboard must find them. Every output carries
``promkit_compat="<peer>"``, so it never collides with the peer's own scraped
series while both run, and the two can be compared.

Histogram buckets: only the bounds the peer has and promkit's histogram has too
are recorded (:func:`shared_bounds`), so each recorded bucket equals the peer's;
the peer's other bounds have no series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from promkit.instrument.catalog import HTTP_BUCKETS
from promkit.instrument.middleware import UNMATCHED_ROUTE
from promkit.tools.generate._promql import bucket_le, num
from promkit.tools.generate.config import CompatRules, Config

__all__ = [
    "INSTRUMENTATOR_HIGHR_BUCKETS",
    "INSTRUMENTATOR_LOWR_BUCKETS",
    "STARLETTE_EXPORTER_BUCKETS",
    "compat_groups",
    "compat_rule_tests",
    "shared_bounds",
]

Rule = dict[str, Any]
Group = dict[str, Any]

STARLETTE_EXPORTER_BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5,
                              10.0)
"""starlette_exporter's default buckets (prometheus-client's ``Histogram.DEFAULT_BUCKETS``)."""
INSTRUMENTATOR_LOWR_BUCKETS = (0.1, 0.5, 1.0)
"""prometheus-fastapi-instrumentator's ``http_request_duration_seconds`` default buckets."""
INSTRUMENTATOR_HIGHR_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0,
                                2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0)
"""prometheus-fastapi-instrumentator's ``http_request_duration_highr_seconds`` buckets."""

_DURATION = "http_server_request_duration_seconds"
_METHOD, _ROUTE = "http_request_method", "http_route"
_CODE, _CLASS = "http_response_status_code", "http_response_status_class"


def shared_bounds(peer_buckets: Sequence[float]) -> tuple[float, ...]:
    """The peer's bucket bounds promkit's HTTP duration histogram has too (``+Inf`` always)."""
    return tuple(b for b in peer_buckets if b in HTTP_BUCKETS)


def _le_matcher(peer_buckets: Sequence[float]) -> str:
    les = [bucket_le(b) for b in shared_bounds(peer_buckets)] + ["+Inf"]
    return "|".join(le.replace(".", "\\\\.").replace("+", "\\\\+") for le in les)


def _selector(config: Config, metric: str, matchers: Mapping[str, str]) -> str:
    parts = [f'service="{config.service}"', *(
        f'{k}{v}' if v[:2] in ("!=", "=~", "!~") else f'{k}="{v}"' for k, v in matchers.items())]
    return f"{metric}{{{', '.join(parts)}}}"


def _renamed(inner: str, renames: Mapping[str, str], drop: Sequence[str]) -> str:
    """``inner`` with label ``old`` copied to ``new`` for each ``new: old``, then summed
    without the old names and ``drop`` (the labels the peer does not have)."""
    for new, old in renames.items():
        inner = f'label_replace(\n{_indent(inner)},\n  "{new}", "$1", "{old}", "(.*)"\n)'
    gone = ", ".join((*renames.values(), *drop))
    return f"sum without ({gone}) (\n{_indent(inner)}\n)"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _rule(name: str, expr: str, labels: Mapping[str, str]) -> Rule:
    return {"record": name, "expr": expr, "labels": dict(labels)}


def _histogram(config: Config, name: str, renames: Mapping[str, str], drop: Sequence[str],
               buckets: Sequence[float], labels: Mapping[str, str],
               matchers: Mapping[str, str], handler_none: bool = False) -> list[Rule]:
    """``name``'s ``_bucket`` (the shared bounds), ``_count`` and ``_sum`` from promkit's."""
    out = []
    for suffix in ("_bucket", "_count", "_sum"):
        extra = {"le": f'=~"{_le_matcher(buckets)}"'} if suffix == "_bucket" else {}
        expr = _renamed(_selector(config, _DURATION + suffix, {**matchers, **extra}),
                        renames, drop)
        out.append(_rule(name + suffix, _none_handler(expr) if handler_none else expr, labels))
    return out


def _none_handler(expr: str) -> str:
    """instrumentator's ``handler="none"`` for requests no route matched."""
    return (f'label_replace(\n{_indent(expr)},\n'
            f'  "handler", "none", "handler", "{UNMATCHED_ROUTE}"\n)')


def _starlette_exporter(config: Config, spec: CompatRules) -> Group:
    prefix = spec.prefix or "starlette"
    labels = {"promkit_compat": spec.peer, "app_name": spec.app_name or "starlette"}
    renames = {"method": _METHOD, "path": _ROUTE, "status_code": _CODE}
    # starlette_exporter leaves out requests no route matched (filter_unhandled_paths).
    matched = {_ROUTE: f'!="{UNMATCHED_ROUTE}"'}
    rules = [
        _rule(f"{prefix}_requests_total",
              _renamed(_selector(config, f"{_DURATION}_count", matched), renames, (_CLASS,)),
              labels),
        *_histogram(config, f"{prefix}_request_duration_seconds", renames, (_CLASS,),
                    STARLETTE_EXPORTER_BUCKETS, labels, matched),
        _rule(f"{prefix}_requests_in_progress",
              _renamed(_selector(config, "http_server_active_requests", {}),
                       {"method": _METHOD}, ()), labels),
    ]
    return {"name": "promkit-compat-starlette-exporter", "rules": rules}


def _size(config: Config, name: str, source: str) -> list[Rule]:
    """instrumentator's request/response size summary: a count of every request and the sum
    of body sizes (0 for a route without any: the peer observes 0 without Content-Length)."""
    labels = {"promkit_compat": "instrumentator"}
    renames = {"handler": _ROUTE}
    count = _none_handler(_renamed(_selector(config, f"{_DURATION}_count", {}), renames,
                                   (_METHOD, _CODE, _CLASS)))
    total = _none_handler(_renamed(_selector(config, f"{source}_sum", {}), renames, (_METHOD,)))
    return [_rule(f"{name}_count", count, labels),
            _rule(f"{name}_sum", f"{total}\nor\n{count} * 0", labels)]


def _instrumentator(config: Config) -> Group:
    labels = {"promkit_compat": "instrumentator"}
    rules = [
        _rule("http_requests_total", _none_handler(_renamed(
            _selector(config, f"{_DURATION}_count", {}),
            {"method": _METHOD, "handler": _ROUTE, "status": _CLASS}, (_CODE,))), labels),
        *_histogram(config, "http_request_duration_seconds",
                    {"method": _METHOD, "handler": _ROUTE}, (_CODE, _CLASS),
                    INSTRUMENTATOR_LOWR_BUCKETS, labels, {}, handler_none=True),
        *_histogram(config, "http_request_duration_highr_seconds", {},
                    (_METHOD, _ROUTE, _CODE, _CLASS), INSTRUMENTATOR_HIGHR_BUCKETS, labels, {}),
        *_size(config, "http_request_size_bytes", "http_server_request_body_size_bytes"),
        *_size(config, "http_response_size_bytes", "http_server_response_body_size_bytes"),
    ]
    return {"name": "promkit-compat-instrumentator", "rules": rules}


def compat_groups(config: Config) -> list[Group]:
    """One rule group per peer of ``config.compat_rules`` (none: no groups)."""
    return [_starlette_exporter(config, spec) if spec.peer == "starlette_exporter"
            else _instrumentator(config) for spec in config.compat_rules]


# -- the generated promtool test (prometheus/tests/compat_test.yml) -------------------------

_TARGET = {"job": "api", "instance": "127.0.0.1:8000"}
# method, route, status code, class, requests, request body bytes, response body bytes
_TRAFFIC = (
    ("GET", "/items/{item_id}", "200", "2xx", 10, 0, 2000),
    ("GET", "/items/{item_id}", "404", "4xx", 2, 0, 40),
    ("POST", "/items", "201", "2xx", 4, 510, 80),
    ("GET", UNMATCHED_ROUTE, "404", "4xx", 3, 0, 27),
)


# Half the requests take _FAST seconds, the rest _SLOW: binary fractions, so that sums are
# exact in promtool and here alike.
_FAST, _SLOW = 0.03125, 0.375


def _bucket_count(requests: int, bound: float) -> int:
    """Cumulative count at ``bound`` (the fast half from le=0.05, all from le=0.5)."""
    return requests if bound >= _SLOW else (requests // 2 if bound >= _FAST else 0)


def _seconds(requests: int) -> float:
    return requests // 2 * _FAST + (requests - requests // 2) * _SLOW


def _series(name: str, labels: Mapping[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _input(config: Config) -> list[dict[str, str]]:
    svc = {"service": config.service, **_TARGET}
    out: list[tuple[str, dict[str, str], float]] = []
    by_route: dict[tuple[str, str], tuple[int, int]] = {}
    for method, route, code, klass, n, request_bytes, response_bytes in _TRAFFIC:
        labels = {**svc, _METHOD: method, _ROUTE: route, _CODE: code, _CLASS: klass}
        out.append((f"{_DURATION}_count", labels, n))
        out.append((f"{_DURATION}_sum", labels, _seconds(n)))
        for bound in (*HTTP_BUCKETS, math.inf):
            le = "+Inf" if bound == math.inf else bucket_le(bound)
            out.append((f"{_DURATION}_bucket", {**labels, "le": le}, _bucket_count(n, bound)))
        seen = by_route.get((method, route), (0, 0))
        by_route[(method, route)] = (seen[0] + request_bytes, seen[1] + response_bytes)
    for (method, route), (request_bytes, response_bytes) in by_route.items():
        labels = {**svc, _METHOD: method, _ROUTE: route}
        if request_bytes:  # promkit records a request's size only when it is known
            out.append(("http_server_request_body_size_bytes_sum", labels, request_bytes))
        out.append(("http_server_response_body_size_bytes_sum", labels, response_bytes))
    out.append(("http_server_active_requests", {**svc, _METHOD: "GET"}, 1))
    return [{"series": _series(name, labels), "values": f"{num(value)}x3"}
            for name, labels, value in out]


def _expected(config: Config, spec: CompatRules) -> dict[str, dict[str, float]]:
    """What the peer would export for :data:`_TRAFFIC`: ``{name: {series: value}}``."""
    base = {"service": config.service, **_TARGET, "promkit_compat": spec.peer}
    out: dict[str, dict[str, float]] = {}

    def add(name: str, labels: Mapping[str, str], value: float) -> None:
        key = _series(name, {**base, **labels})
        out.setdefault(name, {})
        out[name][key] = out[name].get(key, 0) + value

    def durations(name: str, labels: Mapping[str, str], n: int, buckets: Sequence[float]) -> None:
        add(f"{name}_count", labels, n)
        add(f"{name}_sum", labels, _seconds(n))
        for bound in (*shared_bounds(buckets), math.inf):
            le = "+Inf" if bound == math.inf else bucket_le(bound)
            add(f"{name}_bucket", {**labels, "le": le}, _bucket_count(n, bound))

    if spec.peer == "starlette_exporter":
        prefix, app = spec.prefix or "starlette", spec.app_name or "starlette"
        for method, route, code, _, n, _, _ in _TRAFFIC:
            if route == UNMATCHED_ROUTE:
                continue  # filter_unhandled_paths
            labels = {"method": method, "path": route, "status_code": code, "app_name": app}
            add(f"{prefix}_requests_total", labels, n)
            durations(f"{prefix}_request_duration_seconds", labels, n,
                      STARLETTE_EXPORTER_BUCKETS)
        add(f"{prefix}_requests_in_progress", {"method": "GET", "app_name": app}, 1)
        return out
    for method, route, _, klass, n, request_bytes, response_bytes in _TRAFFIC:
        handler = "none" if route == UNMATCHED_ROUTE else route
        add("http_requests_total", {"method": method, "status": klass, "handler": handler}, n)
        durations("http_request_duration_seconds", {"method": method, "handler": handler}, n,
                  INSTRUMENTATOR_LOWR_BUCKETS)
        durations("http_request_duration_highr_seconds", {}, n, INSTRUMENTATOR_HIGHR_BUCKETS)
        for what, size in (("request", request_bytes), ("response", response_bytes)):
            add(f"http_{what}_size_bytes_count", {"handler": handler}, n)
            add(f"http_{what}_size_bytes_sum", {"handler": handler}, size)
    return out


def compat_rule_tests(config: Config) -> dict[str, Any]:
    """``promtool test rules`` cases for ``rules/compat.yml``: promkit's series for a known
    traffic mix in, every peer-named series the peer would have exported for it out."""
    tests = []
    for spec in config.compat_rules:
        expected = _expected(config, spec)
        tests.append({
            "name": f"{spec.peer}: peer-named series from promkit's",
            "interval": "1m",
            "input_series": _input(config),
            "promql_expr_test": [
                {"expr": name, "eval_time": "1m",
                 "exp_samples": [{"labels": series, "value": value}
                                 for series, value in sorted(samples.items())]}
                for name, samples in sorted(expected.items())],
        })
    return {"rule_files": ["../rules/compat.yml"], "evaluation_interval": "1m", "tests": tests}
