"""Flows of ``promkit load``: the request sequences virtual users repeat, and the errors
that stop a run before it starts.

A flow is data (:class:`Flow` of :class:`FlowRequest`): the ``demo`` set drives the demo
API, and a JSON or YAML file can define others (the format is in
:mod:`promkit.tools.loadgen`'s docstring and docs/report.md). :func:`parse_flows`
validates one and names the flow and request at fault.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class LoadError(Exception):
    """A load run cannot start (bad URL, non-loopback target, bad limits)."""


class FlowError(LoadError):
    """A flow definition is invalid; the message names the flow and request."""


@dataclass(frozen=True)
class FlowRequest:
    method: str
    path: str
    json: Any = None
    expect: tuple[int, ...] = ()
    save: tuple[tuple[str, str], ...] = ()
    """``(variable, response JSON key)`` pairs; later paths use ``{variable}``."""
    until: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``(response JSON key, accepted values)``: repeat the request (a poll) until every
    key has one of its values, at most ``max_polls`` times, ``poll_seconds`` apart."""
    poll_seconds: float = 0.2
    max_polls: int = 50

    def ok(self, status: int) -> bool:
        return status in self.expect if self.expect else status < 400

    def reached(self, body: Any) -> bool:
        """Whether an answer's JSON body ends the polling."""
        return isinstance(body, dict) and all(
            str(body.get(key)) in values for key, values in self.until)


@dataclass(frozen=True)
class Flow:
    name: str
    weight: float
    requests: tuple[FlowRequest, ...]


DEMO_FLOWS: tuple[Flow, ...] = (
    Flow("browse", 4, (FlowRequest("GET", "/recipes"),
                       FlowRequest("GET", "/recipes?q=soup"))),
    Flow("login", 2, (FlowRequest("POST", "/login",
                                  {"username": "demo", "password": "demo-password"}),)),
    Flow("bad_login", 0.5, (FlowRequest("POST", "/login",
                                        {"username": "demo", "password": "wrong"},
                                        expect=(401,)),)),
    Flow("submit_job", 2, (FlowRequest("POST", "/jobs", {"pages": 2}, expect=(202,),
                                       save=(("job_id", "job_id"),)),
                           FlowRequest("GET", "/jobs/{job_id}",
                                       until=(("status", ("done", "failed")),)))),
    Flow("assist", 1, (FlowRequest("POST", "/assist", {"prompt": "Suggest a dinner."}),)),
)
"""The demo API's flows (demo/api.py): recipes, logins (one deliberately wrong), a job
submitted then polled until the worker finished it, and an LLM-backed call."""


def parse_flows(data: Any, where: str = "flows") -> tuple[Flow, ...]:
    """Flows from ``{"flows": [...]}`` or a bare list, validated."""
    if isinstance(data, Mapping):
        data = data.get("flows")
    if not isinstance(data, list) or not data:
        raise FlowError(f"{where}: expected a non-empty list of flows (or {{'flows': [...]}})")
    flows = []
    for i, raw in enumerate(data):
        at = f"{where}: flow {i}"
        if not isinstance(raw, Mapping):
            raise FlowError(f"{at}: must be a mapping with name, weight, requests")
        unknown = set(raw) - {"name", "weight", "requests"}
        if unknown:
            raise FlowError(f"{at}: unknown field(s) {sorted(unknown)}")
        name = str(raw.get("name") or f"flow{i}")
        at = f"{where}: flow {name!r}"
        weight = raw.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
                math.isfinite(weight) and weight >= 0):
            raise FlowError(f"{at}: weight must be a number >= 0, not {weight!r}")
        reqs = raw.get("requests")
        if not isinstance(reqs, list) or not reqs:
            raise FlowError(f"{at}: requests must be a non-empty list")
        flows.append(Flow(name, float(weight), tuple(_request(r, f"{at} request {j}")
                                                     for j, r in enumerate(reqs))))
    if not any(f.weight > 0 for f in flows):
        raise FlowError(f"{where}: every flow has weight 0")
    return tuple(flows)


def _request(raw: Any, at: str) -> FlowRequest:
    if not isinstance(raw, Mapping):
        raise FlowError(f"{at}: must be a mapping with method and path")
    unknown = set(raw) - {"method", "path", "json", "expect", "save", "until",
                          "poll_seconds", "max_polls"}
    if unknown:
        raise FlowError(f"{at}: unknown field(s) {sorted(unknown)}")
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        raise FlowError(f"{at}: method {method!r} is not one of {sorted(METHODS)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise FlowError(f"{at}: path must be a string starting with '/', not {path!r}")
    expect = raw.get("expect", [])
    if not isinstance(expect, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
        raise FlowError(f"{at}: expect must be a list of HTTP statuses, not {expect!r}")
    save = raw.get("save", {})
    if not isinstance(save, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in save.items()):
        raise FlowError(f"{at}: save must map variable names to response JSON keys")
    until = raw.get("until", {})
    if not isinstance(until, Mapping) or not all(
            isinstance(k, str) and (isinstance(v, str) or (
                isinstance(v, list) and v and all(isinstance(x, str) for x in v)))
            for k, v in until.items()):
        raise FlowError(f"{at}: until must map response JSON keys to a value or a list of "
                        f"values, not {until!r}")
    poll_seconds = raw.get("poll_seconds", 0.2)
    if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float)) or not (
            math.isfinite(poll_seconds) and 0 <= poll_seconds <= 60):
        raise FlowError(f"{at}: poll_seconds must be a number in [0, 60], not {poll_seconds!r}")
    max_polls = raw.get("max_polls", 50)
    if isinstance(max_polls, bool) or not isinstance(max_polls, int) or not (
            1 <= max_polls <= 10_000):
        raise FlowError(f"{at}: max_polls must be an integer in [1, 10000], not {max_polls!r}")
    return FlowRequest(method, path, raw.get("json"), tuple(expect), tuple(save.items()),
                       tuple((k, (v,) if isinstance(v, str) else tuple(v))
                             for k, v in until.items()), float(poll_seconds), max_polls)


def load_flows(spec: str) -> tuple[Flow, ...]:
    """``"demo"`` or the path of a JSON or YAML flow file."""
    if spec == "demo":
        return DEMO_FLOWS
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"cannot read --flows {spec!r}: {exc.strerror or exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FlowError(f"--flows {spec!r} does not parse: {first}") from None
    return parse_flows(data, spec)

