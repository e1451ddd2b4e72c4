"""Real servers for the integration tests: Prometheus, Alertmanager, Redis, ASGI apps.

Every server runs on 127.0.0.1 with a free port and its own temp directory,
in its own process group, with stdout/stderr in a log file (shown when it
fails to become ready). :meth:`ManagedProcess.stop` sends SIGTERM to the
group, waits a bounded time, then SIGKILLs it, so worker children
(gunicorn/uvicorn workers) never outlive a test. Configs are written as JSON,
which is valid YAML, so no YAML library is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

APPS_DIR = Path(__file__).resolve().parent.parent / "apps"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Debian package names, for skip messages.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "vmagent": "victoria-metrics",
}


class ServerError(RuntimeError):
    """A server failed to start or to answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str | None:
    """The path of ``name`` on PATH or in /usr/bin and /usr/sbin, or None."""
    return shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the server may not be up yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"{what} not reached within {timeout:.1f}s{detail}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ processes


@dataclass
class ManagedProcess:
    """A child process in its own process group, logging to ``log_path``."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, name: str, argv: Sequence[str], log_path: Path, *,
              env: Mapping[str, str] | None = None, cwd: Path | None = None) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
            )
        return cls(name, list(argv), proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> ServerError:
        return ServerError(f"{self.name}: {message}\n--- last log lines ({self.log_path}) ---\n"
                           f"{self.log_tail()}")

    def _signal_group(self, sig: int) -> None:
        # The group we created with start_new_session; it may be gone already.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL it."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        # Also catches workers left behind by a leader that already exited.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)


def http_ready(url: str, *, accept: Callable[[httpx.Response], bool] | None = None) -> bool:
    response = httpx.get(url, timeout=1.0)
    return accept(response) if accept else response.status_code == 200


def wait_http_ready(process: ManagedProcess, url: str, timeout: float, *,
                    accept: Callable[[httpx.Response], bool] | None = None) -> None:
    """Poll ``url`` until it answers (200, or ``accept``), failing fast if the process dies."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not process.running():
            raise process.fail(f"exited with code {process.proc.returncode} before {url} answered")
        try:
            if http_ready(url, accept=accept):
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise process.fail(f"{url} not ready within {timeout:.0f}s (last error: {last!r})")


# ----------------------------------------------------------------------------- Prometheus


def _target_job(target: str) -> tuple[str, str, str]:
    """(scheme, host:port, metrics_path) from ``host:port`` or a full URL."""
    if "://" not in target:
        return "http", target, "/metrics"
    parts = urlsplit(target)
    return parts.scheme, parts.netloc, parts.path or "/metrics"


def prometheus_config(targets: Iterable[str] = (), *, job: str = "app",
                      scrape_interval: str = "1s", evaluation_interval: str = "1s",
                      scrape_timeout: str | None = None, rule_files: Iterable[str | Path] = (),
                      alertmanagers: Iterable[str] = (),
                      scrape_configs: Iterable[Mapping[str, Any]] = (),
                      external_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Prometheus config dict.

    ``targets`` are ``host:port`` (path ``/metrics``) or URLs such as
    ``http://127.0.0.1:8000/custom/metrics``; targets sharing scheme and path
    go into one scrape config of job ``job`` (a suffix is added when several
    paths are used). ``scrape_configs`` are appended verbatim.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        scheme, hostport, path = _target_job(target)
        groups.setdefault((scheme, path), []).append(hostport)
    configs: list[dict[str, Any]] = []
    for i, ((scheme, path), hosts) in enumerate(groups.items()):
        configs.append({
            "job_name": job if i == 0 else f"{job}_{i}",
            "scheme": scheme,
            "metrics_path": path,
            "static_configs": [{"targets": hosts}],
        })
    configs.extend(dict(c) for c in scrape_configs)
    global_cfg: dict[str, Any] = {"scrape_interval": scrape_interval,
                                  "evaluation_interval": evaluation_interval}
    if scrape_timeout:
        global_cfg["scrape_timeout"] = scrape_timeout
    if external_labels:
        global_cfg["external_labels"] = dict(external_labels)
    config: dict[str, Any] = {"global": global_cfg, "scrape_configs": configs}
    rules = [str(r) for r in rule_files]
    if rules:
        config["rule_files"] = rules
    ams = list(alertmanagers)
    if ams:
        config["alerting"] = {"alertmanagers": [{
            "static_configs": [{"targets": [_target_job(a)[1] for a in ams]}],
        }]}
    return config


class PrometheusAPIError(RuntimeError):
    pass


class PrometheusClient:
    """A small client for Prometheus's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=5.0)

    def close(self) -> None:
        self.http.close()

    def _api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=dict(params or {}))
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusAPIError(f"{path} {params}: {body.get('errorType')}: "
                                     f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``).

        A scalar or string result comes back as a one-element list with an
        empty ``metric``.
        """
        data = self._api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of ``expr``, or None when it returns nothing.

        Raises when the result has more than one series.
        """
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusAPIError(f"{expr!r} returned {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def values(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of ``expr`` keyed by its label set."""
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
                 timeout: float = 15.0, interval: float = 0.25) -> list[dict[str, Any]]:
        """Re-run ``expr`` until ``predicate(result)`` holds (default: non-empty).

        Returns the result; raises TimeoutError with the last result otherwise.
        """
        check = predicate or bool
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        error: BaseException | None = None
        while True:
            try:
                result = self.query(expr)
                error = None
                if check(result):
                    return result
            except (httpx.HTTPError, PrometheusAPIError) as exc:
                error = exc
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{expr!r}: condition not met within {timeout:.1f}s; "
                                   f"last result {result!r}" + (f", error {error!r}" if error
                                                               else ""))
            time.sleep(interval)

    def wait_for_value(self, expr: str, predicate: Callable[[float], bool],
                       timeout: float = 15.0) -> float:
        """Like :meth:`wait_for` for a single-series ``expr``; returns its value."""
        result = self.wait_for(
            expr, lambda r: len(r) == 1 and predicate(float(r[0]["value"][1])), timeout)
        return float(result[0]["value"][1])

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """``/api/v1/targets`` active (or dropped) targets."""
        data = self._api("targets", {"state": state})
        key = "activeTargets" if state == "active" else "droppedTargets"
        return list(data.get(key, []))

    def wait_for_targets_up(self, count: int | None = None, timeout: float = 15.0) -> list[
            dict[str, Any]]:
        """Wait until every active target (at least ``count``) reports health "up"."""
        def check() -> list[dict[str, Any]] | None:
            targets = self.targets()
            enough = len(targets) >= (count if count is not None else 1)
            if enough and all(t["health"] == "up" for t in targets):
                return targets
            return None
        try:
            result: list[dict[str, Any]] = wait_until(check, timeout, 0.2, "targets up")
        except TimeoutError:
            states = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets()]
            raise TimeoutError(f"targets not up within {timeout:.1f}s: {states}") from None
        return result

    def rules(self) -> list[dict[str, Any]]:
        return list(self._api("rules")["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._api("alerts")["alerts"])

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return list(self._api("query_exemplars", {"query": expr, "start": start, "end": end}))

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus has discovered (and sends alerts to)."""
        return [a["url"] for a in self._api("alertmanagers")["activeAlertmanagers"]]

    def label_values(self, label: str) -> list[str]:
        return list(self._api(f"label/{label}/values"))


@dataclass
class PrometheusServer:
    """A running Prometheus; ``client`` talks to its HTTP API."""

    process: ManagedProcess
    port: int
    workdir: Path
    config_path: Path
    config: dict[str, Any]
    client: PrometheusClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = PrometheusClient(self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Convenience pass-throughs, so tests can write prometheus.query(...).
    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.client.query(expr)

    def value(self, expr: str) -> float | None:
        return self.client.value(expr)

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
                 timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.client.wait_for(expr, predicate, timeout)

    def wait_for_value(self, expr: str, predicate: Callable[[float], bool],
                       timeout: float = 15.0) -> float:
        return self.client.wait_for_value(expr, predicate, timeout)

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        return self.client.targets(state)

    def reload(self, config: dict[str, Any] | None = None, timeout: float = 10.0) -> None:
        """Rewrite the config (if given) and POST ``/-/reload`` (``--web.enable-lifecycle``)."""
        if config is not None:
            self.config = config
            self.config_path.write_text(json.dumps(config, indent=2))
        response = self.client.http.post("/-/reload", timeout=timeout)
        if response.status_code != 200:
            raise self.process.fail(f"reload failed: {response.status_code} {response.text}")

    def stop(self) -> None:
        self.client.close()
        self.process.stop()


def start_prometheus(workdir: Path, config: dict[str, Any], *, binary: str,
                     features: Iterable[str] = (), extra_args: Iterable[str] = (),
                     ready_timeout: float = 20.0) -> PrometheusServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2))
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        # Alerts firing before the Alertmanager is discovered (discovery applies
        # at most every 5 s) are re-sent after this delay; the default is 1 m.
        "--rules.alert.resend-delay=1s",
        "--log.level=info",
    ]
    feats = list(features)
    if feats:
        argv.append("--enable-feature=" + ",".join(feats))
    argv.extend(extra_args)
    process = ManagedProcess.start("prometheus", argv, workdir / "prometheus.log", cwd=workdir)
    server = PrometheusServer(process, port, workdir, config_path, config)
    try:
        wait_http_ready(process, f"{server.url}/-/ready", ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------- Alertmanager


DEFAULT_ALERTMANAGER_CONFIG: dict[str, Any] = {
    "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s",
              "repeat_interval": "1h"},
    "receivers": [{"name": "null"}],
}


@dataclass
class AlertmanagerServer:
    process: ManagedProcess
    port: int
    workdir: Path
    config_path: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=5.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as Prometheus's alerting config wants it."""
        return f"127.0.0.1:{self.port}"

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``; keyword filters become ``filter=name="value"`` matchers."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        response = self.http.get("/api/v2/alerts", params=params)
        response.raise_for_status()
        return list(response.json())

    def wait_for_alerts(self, predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
                        timeout: float = 20.0, **filters: str) -> list[dict[str, Any]]:
        check = predicate or bool
        result: list[dict[str, Any]] = wait_until(
            lambda: (lambda a: a if check(a) else None)(self.alerts(**filters)),
            timeout, 0.25, f"alertmanager alerts {filters or ''}")
        return result

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.http.post("/api/v2/alerts", json=alerts).raise_for_status()

    def reload(self) -> None:
        self.http.post("/-/reload").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.process.stop()


def start_alertmanager(workdir: Path, config: Mapping[str, Any] | str | None, *, binary: str,
                       extra_args: Iterable[str] = (),
                       ready_timeout: float = 20.0) -> AlertmanagerServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "alertmanager.yml"
    if config is None:
        config = DEFAULT_ALERTMANAGER_CONFIG
    config_path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=info",
        *extra_args,
    ]
    process = ManagedProcess.start("alertmanager", argv, workdir / "alertmanager.log", cwd=workdir)
    server = AlertmanagerServer(process, port, workdir, config_path)
    try:
        wait_http_ready(process, f"{server.url}/-/ready", ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


# ----------------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    process: ManagedProcess
    port: int
    workdir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def ping(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` client (needs the redis package)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def stop(self) -> None:
        self.process.stop()


def start_redis(workdir: Path, *, binary: str, extra_args: Iterable[str] = (),
                ready_timeout: float = 10.0) -> RedisServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes",
            *extra_args]
    process = ManagedProcess.start("redis-server", argv, workdir / "redis.log", cwd=workdir)
    server = RedisServer(process, port, workdir)

    def ready() -> bool:
        if not process.running():
            raise process.fail(f"exited with code {process.proc.returncode}")
        return server.ping()

    try:
        wait_until(ready, ready_timeout, 0.05, "redis PING")
    except TimeoutError as exc:
        server.stop()
        raise process.fail(str(exc)) from None
    except BaseException:
        server.stop()
        raise
    return server


# ------------------------------------------------------------------------------- ASGI apps


@dataclass
class AppServer:
    """An ASGI app served by uvicorn or gunicorn in a subprocess."""

    process: ManagedProcess
    port: int
    workdir: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's main process (the supervisor or gunicorn arbiter with workers)."""
        return self.process.pid

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """One request on a new connection (so multi-worker servers spread them)."""
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("follow_redirects", True)
        return httpx.get(self.url + path, **kwargs)

    def stop(self) -> None:
        self.process.stop()


def app_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an app subprocess: ours, tests/apps on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ)
    for key in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        env.pop(key, None)  # never inherit a multiprocess dir by accident
    paths = [str(APPS_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_app(workdir: Path, app: str, *, server: str = "uvicorn", workers: int | None = None,
              env: Mapping[str, str] | None = None, extra_args: Iterable[str] = (),
              ready_path: str = "/", ready_timeout: float = 20.0,
              ready: Callable[[httpx.Response], bool] | None = None) -> AppServer:
    """Run ``module:attr`` (importable from tests/apps) with uvicorn or gunicorn.

    ``server="gunicorn"`` uses ``uvicorn.workers.UvicornWorker``. Readiness:
    ``ready_path`` answers with any status below 500 (or ``ready(response)``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if server == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning"]
        if workers is not None:
            argv += ["--workers", str(workers)]
    elif server == "gunicorn":
        argv = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
                "--worker-class", "uvicorn.workers.UvicornWorker",
                "--workers", str(workers or 1), "--log-level", "warning",
                "--graceful-timeout", "3", "--worker-tmp-dir", str(workdir)]
    else:
        raise ValueError(f"server must be 'uvicorn' or 'gunicorn', not {server!r}")
    argv.extend(extra_args)
    full_env = app_env(env)
    process = ManagedProcess.start(f"{server} {app}", argv, workdir / f"{server}.log",
                                   env=full_env, cwd=workdir)
    app_server = AppServer(process, port, workdir, full_env)
    try:
        wait_http_ready(process, app_server.url + ready_path, ready_timeout,
                        accept=ready or (lambda r: r.status_code < 500))
    except BaseException:
        app_server.stop()
        raise
    return app_server
