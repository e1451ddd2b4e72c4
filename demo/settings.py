"""Ports, addresses and the shared fault switches of the demo.

Every port has a default (the one the generated ``prometheus.yml`` scrapes)
and an environment variable that overrides it. The launcher resolves them
once and passes the resolved values to every process it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = REPO_ROOT / "demo" / "promkit.yaml"
"""The demo's project config: ``promkit generate --config`` of the demo stack."""

# name -> (environment variable, default port). The defaults are the demo's
# fixed ports: the generated prometheus.yml and alertmanager.yml use them.
PORTS: dict[str, tuple[str, int]] = {
    "api": ("DEMO_API_PORT", 8000),
    "worker_metrics": ("DEMO_WORKER_METRICS_PORT", 9464),
    "queue_exporter": ("DEMO_QUEUE_EXPORTER_PORT", 9465),
    "redis": ("DEMO_REDIS_PORT", 6390),
    "prometheus": ("DEMO_PROMETHEUS_PORT", 9090),
    "alertmanager": ("DEMO_ALERTMANAGER_PORT", 9093),
    "receiver": ("DEMO_RECEIVER_PORT", 9099),
    "fake_services": ("DEMO_FAKE_SERVICES_PORT", 9098),
}

DEFAULT_PORTS: dict[str, int] = {name: port for name, (_env, port) in PORTS.items()}

QUEUE = "ocr"                 # the Redis list the API fills and the worker drains
QUEUE_SPEC = f"list:{QUEUE}"  # as `promkit serve --redis-queue` takes it
FAULT_KEYS = ("error_rate", "error_route", "latency_ms", "stuck_worker", "redis_outage",
              "credential_stuffing")
NO_FAULTS: dict[str, Any] = {"error_rate": 0.0, "error_route": "", "latency_ms": 0,
                             "stuck_worker": False, "redis_outage": False,
                             "credential_stuffing": False}


def port(name: str) -> int:
    env, default = PORTS[name]
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"demo: {env}={value!r} is not a port number") from None
    if not 0 < number < 65536:
        raise SystemExit(f"demo: {env}={number} is not a port number (1-65535)")
    return number


def host() -> str:
    """The address the demo's own servers bind (loopback; 0.0.0.0 in containers)."""
    return os.environ.get("DEMO_BIND_HOST", "127.0.0.1")


def peer_host() -> str:
    """The address the demo's processes use to reach each other."""
    return os.environ.get("DEMO_PEER_HOST", "127.0.0.1")


def url(name: str, path: str = "") -> str:
    return f"http://{peer_host()}:{port(name)}{path}"


def redis_url() -> str:
    return os.environ.get("DEMO_REDIS_URL") or f"redis://{peer_host()}:{port('redis')}/0"


def run_dir() -> Path:
    return Path(os.environ.get("DEMO_RUN_DIR") or REPO_ROOT / ".run" / "demo")


def faults_path() -> Path:
    return Path(os.environ.get("DEMO_FAULTS_FILE") or run_dir() / "faults.json")


def clean_faults(data: Any) -> dict[str, Any]:
    """Validate fault switches; raises ValueError naming the bad one."""
    if not isinstance(data, dict):
        raise ValueError("faults must be a JSON object")
    unknown = sorted(set(data) - set(FAULT_KEYS))
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {list(FAULT_KEYS)}")
    out: dict[str, Any] = {}
    if "error_rate" in data:
        rate = data["error_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError("error_rate must be a number from 0 to 1")
        out["error_rate"] = float(rate)
    if "error_route" in data:
        route = data["error_route"]
        if not isinstance(route, str) or (route and not route.startswith("/")) or len(route) > 200:
            raise ValueError("error_route must be a route template such as \"/recipes\", "
                             "or \"\" for every route")
        out["error_route"] = route
    if "latency_ms" in data:
        ms = data["latency_ms"]
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 30_000:
            raise ValueError("latency_ms must be a number from 0 to 30000")
        out["latency_ms"] = float(ms)
    for key in ("stuck_worker", "redis_outage", "credential_stuffing"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ValueError(f"{key} must be true or false")
            out[key] = data[key]
    return out


def write_faults(faults: dict[str, Any], path: Path | None = None) -> None:
    """Replace the faults file atomically (readers never see half a file)."""
    path = path or faults_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".faults-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**NO_FAULTS, **faults}, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class FaultReader:
    """Reads the faults file at most every ``interval`` seconds (cheap on hot paths)."""

    path: Path
    interval: float = 0.5
    _at: float = 0.0
    _mtime: float = -1.0
    _faults: dict[str, Any] | None = None

    def get(self, fresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if not fresh and self._faults is not None and now - self._at < self.interval:
            return self._faults
        self._at = now
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime or self._faults is None:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._faults = {**NO_FAULTS, **clean_faults(data)}
                self._mtime = mtime
        except (OSError, ValueError):
            self._faults = dict(NO_FAULTS)
        return self._faults
