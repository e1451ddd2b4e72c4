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

from collections.abc import Mapping, Sequence
from typing import Any

from promkit.instrument.catalog import HTTP_BUCKETS
from promkit.instrument.middleware import UNMATCHED_ROUTE
from promkit.tools.generate._rules_slo import _bucket_le
from promkit.tools.generate.config import CompatRules, Config

__all__ = [
    "INSTRUMENTATOR_HIGHR_BUCKETS",
    "INSTRUMENTATOR_LOWR_BUCKETS",
    "STARLETTE_EXPORTER_BUCKETS",
    "compat_groups",
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
    les = [_bucket_le(b) for b in shared_bounds(peer_buckets)] + ["+Inf"]
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
