"""A small, dependency-free client for Prometheus's HTTP API (``/api/v1``).

Only what the report needs: instant and range queries, alerts, rules and
targets. Every call has a timeout. Failures raise :class:`PrometheusError`
with a one-line message; :attr:`PrometheusError.unreachable` tells a dead
server (or a wrong URL) from a query Prometheus refused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["PrometheusClient", "PrometheusError", "Sample", "Series"]


class PrometheusError(Exception):
    """A Prometheus API call failed; the message is one line, fit for a terminal."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One element of a range matrix: ``points`` are ``(unix seconds, value)``."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


class PrometheusClient:
    """Talks to one Prometheus server at ``url`` (e.g. ``http://127.0.0.1:9090``)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrometheusError(f"--prometheus {url!r} is not an http(s) URL")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        request = urllib.request.Request(self.url + path + query,
                                         headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _api_error(exc.read())
            unreachable = exc.code == 404 or (exc.code >= 500 and not detail)
            raise PrometheusError(
                f"Prometheus at {self.url} answered {exc.code} for {path}"
                + (f": {detail}" if detail else ""), unreachable=unreachable) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                reason = f"no answer within {self.timeout:g}s"
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}",
                                  unreachable=True) from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{self.url}{path} did not answer JSON; is this Prometheus?",
                                  unreachable=True) from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else None
            raise PrometheusError(f"Prometheus refused {path}: {error or 'unexpected answer'}")
        return payload.get("data")

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
        """An instant query; scalars come back as one sample with no labels."""
        params = {"query": expr, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        return parse_instant(data)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{step:g}", "timeout": f"{self.timeout:g}s"}
        return parse_range(self._get("/api/v1/query_range", params))

    def alerts(self) -> list[dict[str, Any]]:
        data = self._get("/api/v1/alerts")
        alerts = data.get("alerts", []) if isinstance(data, dict) else []
        return [a for a in alerts if isinstance(a, dict)]

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of every group (recording and alerting), flattened."""
        data = self._get("/api/v1/rules")
        groups = data.get("groups", []) if isinstance(data, dict) else []
        return [r for g in groups if isinstance(g, dict) for r in g.get("rules", [])
                if isinstance(r, dict)]

    def targets(self) -> list[dict[str, Any]]:
        data = self._get("/api/v1/targets", {"state": "active"})
        targets = data.get("activeTargets", []) if isinstance(data, dict) else []
        return [t for t in targets if isinstance(t, dict)]


def _api_error(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    if isinstance(payload, dict):
        return str(payload.get("error") or "").splitlines()[0] if payload.get("error") else ""
    return ""


def parse_instant(data: Any) -> list[Sample]:
    """Samples from the ``data`` of an instant query answer (vector or scalar)."""
    if not isinstance(data, dict):
        return []
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string") and isinstance(result, list) and len(result) == 2:
        return [Sample({}, _float(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        return []
    samples = []
    for item in result:
        value = item.get("value") if isinstance(item, dict) else None
        if isinstance(value, list) and len(value) == 2:
            samples.append(Sample(dict(item.get("metric") or {}), _float(value[1])))
    return samples


def parse_range(data: Any) -> list[Series]:
    """Series from the ``data`` of a range query answer (a matrix)."""
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        return []
    series = []
    for item in data.get("result") or []:
        if not isinstance(item, dict):
            continue
        points = [(_float(t), _float(v)) for t, v in item.get("values") or []]
        series.append(Series(dict(item.get("metric") or {}), points))
    return series
