"""Reading generated dashboard JSON back: its PromQL queries and the metric names they use.

The dashboard tests use these to check that every name a panel queries is
defined (catalog, recording rule or Prometheus built-in) and to run every
query against a live Prometheus with the template variables filled in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Query", "dashboard_queries", "promql_metric_names", "substitute"]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it sits."""

    dashboard: str
    where: str
    """``panel <id> "<title>" target <refId>``, ``annotation "<name>"`` or ``variable <name>``."""
    expr: str
    instant: bool = False
    time_from: str | None = None
    legend: str = ""
    """The target's legend format (``{{label}}`` names labels the result should carry)."""

    def legend_labels(self) -> set[str]:
        return set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", self.legend))


def _panels(panels: list[Any]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(data: Mapping[str, Any], *, variables: bool = True) -> list[Query]:
    """Every panel target, annotation and (optionally) variable query of a dashboard."""
    uid = str(data.get("uid"))
    out: list[Query] = []
    for panel in _panels(list(data.get("panels") or [])):
        for target in panel.get("targets") or []:
            out.append(Query(uid, f'panel {panel.get("id")} "{panel.get("title")}" target '
                                  f'{target.get("refId")}', target["expr"],
                             bool(target.get("instant")), panel.get("timeFrom"),
                             str(target.get("legendFormat") or "")))
    for annotation in (data.get("annotations") or {}).get("list") or []:
        if annotation.get("expr"):
            out.append(Query(uid, f'annotation "{annotation.get("name")}"', annotation["expr"]))
    if variables:
        for var in (data.get("templating") or {}).get("list") or []:
            query = var.get("query")
            text = query.get("query") if isinstance(query, Mapping) else query
            if isinstance(text, str) and text:
                out.append(Query(uid, f"variable {var.get('name')}", text))
    return out


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_NAME = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
})
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$",
                           re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (``foo``, ``foo{...}``, ``{__name__="foo"}``).

    Also reads Grafana's ``label_values(selector, label)`` variable queries.
    Function names, keywords, label names in grouping clauses, numbers and
    durations are not names.
    """
    names: set[str] = set()
    match = _LABEL_VALUES.match(expr)
    if match:
        expr = match.group(1)
    for dunder in re.finditer(r'__name__\s*=\s*"([^"]+)"', expr):
        names.add(dunder.group(1))
    text = _STRING.sub('""', expr)
    previous = None
    while previous != text:
        previous = text
        text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for found in _NAME.finditer(text):
        name = found.group(1)
        if name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with ``$name`` / ``${name}`` replaced from ``values`` (longest names first)."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr
