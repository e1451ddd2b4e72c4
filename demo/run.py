"""The demo launcher: ``python -m demo.run`` (what ``make demo`` runs).

Generates the Prometheus and Alertmanager configs with ``promkit generate``,
starts Redis, Prometheus, Alertmanager, the fake external services, the
webhook receiver, the API, the worker and the queue exporter on loopback,
each in its own process group with its PID in the run directory, waits for
each to be ready, drives traffic and prints what to open.

Ctrl-C (SIGINT), SIGTERM or ``python -m demo.run --stop`` (``make
demo-stop``) stops every process it started, by PID, last started first:
SIGTERM, then SIGKILL after a bounded wait.

``--duration N`` runs N seconds, stops everything and exits 0 only if every
part came up, stayed up, and Prometheus scraped every target (``up == 1`` for
every job).

Each run starts from fresh data: the Prometheus and Alertmanager data, the
Redis directory and the API's SQLite file of the previous run are removed
(``--keep-data`` keeps them), and every fault knob starts off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo import settings
from demo.traffic import Traffic

STOP_TIMEOUT = 5.0          # seconds between SIGTERM and SIGKILL, per process
READY_TIMEOUT = 30.0        # seconds for each part to become ready
PROCESSES_FILE = "processes.json"
LAUNCHER_PID_FILE = "launcher.pid"
EXPECTED_JOBS = ("demo-api", "demo-worker", "demo-queues")
# What a run stores under the run directory; removed at start unless --keep-data.
DATA_DIRS = ("prometheus", "alertmanager", "redis")
DATA_FILES = ("demo-api.sqlite3",)


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


class DemoError(Exception):
    """Something the user must fix; printed without a traceback."""


# --------------------------------------------------------------------- processes


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_ours(pid: int, marker: str) -> bool:
    """The PID is alive and still runs the program we started (not a recycled PID)."""
    return _alive(pid) and marker in _cmdline(pid)


def _signal_group(pid: int, sig: int) -> None:
    # Each child leads its own process group (start_new_session), so the group
    # also reaches anything it forked.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_pid(pid: int, name: str, popen: subprocess.Popen[bytes] | None = None,
             timeout: float = STOP_TIMEOUT) -> str:
    """SIGCONT + SIGTERM the process group, wait up to ``timeout``, then SIGKILL it."""
    def gone() -> bool:
        if popen is not None:
            return popen.poll() is not None
        return not _alive(pid)

    how = "already stopped"
    if not gone():
        _signal_group(pid, signal.SIGCONT)     # a paused Redis must be able to exit
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not gone():
            time.sleep(0.05)
        how = "stopped"
        if not gone():
            how = "killed (SIGKILL after SIGTERM timed out)"
    # Also whatever a leader that already exited left in its group.
    _signal_group(pid, signal.SIGKILL)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout)
    else:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
    return how


@dataclass
class Part:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    marker: str                    # a substring of its command line, to recognise it later
    paused: bool = False
    expected_exit: bool = False    # a bounded job (promkit load), not a server

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class Supervisor:
    run_dir: Path
    env: dict[str, str]
    parts: list[Part] = field(default_factory=list)

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    def start(self, name: str, argv: list[str], marker: str | None = None,
              cwd: Path | None = None) -> Part:
        log_path = self.run_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:   # one run, one log
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     cwd=cwd or settings.REPO_ROOT, start_new_session=True)
        part = Part(name, argv, popen, log_path, marker or Path(argv[0]).name)
        self.parts.append(part)
        self._write_pids()
        return part

    def _write_pids(self) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        for part in self.parts:
            (self.pid_dir / f"{part.name}.pid").write_text(f"{part.pid}\n")
        listing = [{"name": p.name, "pid": p.pid, "marker": p.marker} for p in self.parts]
        tmp = self.run_dir / f".{PROCESSES_FILE}.tmp"
        tmp.write_text(json.dumps(listing, indent=1))
        os.replace(tmp, self.run_dir / PROCESSES_FILE)

    def stop_all(self) -> None:
        while self.parts:
            part = self.parts[-1]
            how = stop_pid(part.pid, part.name, part.popen)
            say(f"{part.name} (pid {part.pid}) {how}")
            with contextlib.suppress(OSError):
                (self.pid_dir / f"{part.name}.pid").unlink()
            self.parts.pop()
            self._write_pids()
        with contextlib.suppress(OSError):
            (self.run_dir / PROCESSES_FILE).unlink()


# ------------------------------------------------------------------------ checks


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
        if path:
            return path
    raise DemoError(f"{names[0]} is not installed; run ./scripts/ensure-debs.sh "
                    "(make demo does it for you)")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections in TIME_WAIT from a previous run don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(names: Iterable[str]) -> None:
    busy = [name for name in names if not _port_free(settings.port(name))]
    if busy:
        lines = [f"  {settings.PORTS[n][0]}={settings.port(n)} ({n}) is in use" for n in busy]
        raise DemoError("ports in use (is a demo already running? `make demo-stop`), "
                        "or set other ports:\n" + "\n".join(lines))


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


def _redis_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM) while starting up."""


def wait_ready(part: Part, check: Callable[[], bool], timeout: float = READY_TIMEOUT,
               stop: threading.Event | None = None) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if stop is not None and stop.is_set():
            raise Interrupted
        if not part.running():
            raise DemoError(f"{part.name} exited with code {part.popen.returncode} while "
                            f"starting; last lines of {part.log_path}:\n{part.log_tail()}")
        if check():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise DemoError(f"{part.name} was not ready within {timeout:.0f}s; last lines of "
                            f"{part.log_path}:\n{part.log_tail()}")
        time.sleep(0.1)


# ---------------------------------------------------------------------- generate


def _promkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "promkit", *args]


def generate(out: Path, config: Path, env: dict[str, str]) -> Path:
    """Run ``promkit generate``; returns the directory holding prometheus.yml."""
    if out.exists():
        shutil.rmtree(out)
    argv = _promkit("generate", "--config", str(config), "--out", str(out))
    result = subprocess.run(argv, capture_output=True, text=True, env=env,
                            cwd=settings.REPO_ROOT, timeout=120)
    if result.returncode != 0:
        raise DemoError(f"`promkit generate` failed (exit {result.returncode}):\n"
                        f"{result.stdout}{result.stderr}")
    found = sorted(out.rglob("prometheus.yml"))
    if not found:
        raise DemoError(f"`promkit generate --out {out}` wrote no prometheus.yml")
    return found[0].parent


def fast_config(base: Path, out: Path, alert_names: Iterable[str], *, alert_for: str | None,
                scrape_interval: str | None) -> Path:
    """A copy of the project config with shorter intervals and ``for`` durations.

    For watching alerts fire within a minute or two (and for the integration
    test): every alert gets ``alert_for``, scrapes and evaluations happen every
    ``scrape_interval``, and Alertmanager routes group and send within seconds.
    The generator still writes every file from it; nothing is hand-written.
    """
    import yaml

    data = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    if scrape_interval:
        data["scrape_interval"] = data["evaluation_interval"] = scrape_interval
    if alert_for:
        data["alert_for"] = {**{name: alert_for for name in alert_names},
                             **(data.get("alert_for") or {})}
        for route in data.get("routes") or []:
            route.setdefault("group_wait", "1s")
            route.setdefault("group_interval", "5s")
            route.setdefault("repeat_interval", "1h")
    out.write_text("# Derived by demo/run.py from " + str(base) + " (faster alerts).\n"
                   + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def alert_names(rules_dir: Path) -> list[str]:
    import yaml

    names: list[str] = []
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names += [r["alert"] for r in group.get("rules", []) if "alert" in r]
    return names


_HOSTPORT = re.compile(r"\b(?:127\.0\.0\.1|localhost):(\d{1,5})\b")


def retarget(text: str) -> str:
    """Point loopback default ports at the ports this run uses (env overrides)."""
    moved = {default: settings.port(name) for name, default in settings.DEFAULT_PORTS.items()}

    def sub(match: re.Match[str]) -> str:
        port = int(match.group(1))
        return f"127.0.0.1:{moved.get(port, port)}"

    return _HOSTPORT.sub(sub, text)


# Alertmanager integrations whose URL may come from a file: (list key, url key, file key).
_URL_FILES = (("webhook_configs", "url", "url_file"),
              ("discord_configs", "webhook_url", "webhook_url_file"),
              ("slack_configs", "api_url", "api_url_file"))


def local_alertmanager_config(path: Path, secrets_dir: Path) -> Path:
    """A runtime copy of the generated alertmanager.yml for this machine.

    Loopback ports follow the overrides. Every URL read from a file (a secret
    ntfy/Discord/Slack URL in production) is materialised in ``secrets_dir``
    pointing at the local receiver (``/<receiver name>``); Alertmanager 0.25
    reads only ``api_url_file`` itself, so the others are inlined as well.
    """
    import yaml

    data = yaml.safe_load(retarget(path.read_text(encoding="utf-8"))) or {}
    secrets_dir.mkdir(parents=True, exist_ok=True)
    for receiver in data.get("receivers") or []:
        for list_key, url_key, file_key in _URL_FILES:
            for entry in receiver.get(list_key) or []:
                if file_key not in entry:
                    continue
                local = settings.url("receiver", f"/{receiver.get('name', 'receiver')}")
                secret = secrets_dir / f"{receiver.get('name', 'receiver')}.url"
                secret.write_text(local + "\n", encoding="utf-8")
                secret.chmod(0o600)
                if file_key == "api_url_file":
                    entry[file_key] = str(secret)
                else:
                    del entry[file_key]
                    entry[url_key] = local
    out = path.parent / "alertmanager.local.yml"
    out.write_text("# Runtime copy for the local demo (written by demo/run.py).\n"
                   + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


# -------------------------------------------------------------------- Prometheus


def prometheus_targets(base: str) -> list[dict[str, Any]]:
    import httpx

    response = httpx.get(f"{base}/api/v1/targets", params={"state": "active"}, timeout=3.0)
    response.raise_for_status()
    return list(response.json()["data"]["activeTargets"])


def up_by_job(base: str) -> dict[str, float]:
    """``max by (job) (up)`` from Prometheus's query API (0 when any target is down)."""
    import httpx

    response = httpx.get(f"{base}/api/v1/query", params={"query": "min by (job) (up)"},
                         timeout=3.0)
    response.raise_for_status()
    return {r["metric"].get("job", ""): float(r["value"][1])
            for r in response.json()["data"]["result"]}


def all_scraped(base: str, jobs: Iterable[str]) -> tuple[bool, str]:
    try:
        up = up_by_job(base)
        targets = prometheus_targets(base)
    except Exception as exc:
        return False, f"Prometheus API not answering ({type(exc).__name__})"
    wanted = set(jobs) | {t["labels"].get("job", "") for t in targets}
    missing = sorted(j for j in wanted if up.get(j) != 1.0)
    if missing:
        detail = "; ".join(f"{t['labels'].get('job')} {t.get('scrapeUrl')}: {t.get('health')} "
                           f"{t.get('lastError') or ''}".strip()
                           for t in targets if t["labels"].get("job") in missing)
        return False, f"not up: {', '.join(missing)}" + (f" ({detail})" if detail else "")
    return True, f"up == 1 for {', '.join(sorted(wanted))}"


# ------------------------------------------------------------------------ launch


def child_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)   # each demo process serves its own metrics
    for name, (var, _default) in settings.PORTS.items():
        env[var] = str(settings.port(name))
    env["DEMO_RUN_DIR"] = str(run_dir)
    env["DEMO_FAULTS_FILE"] = str(settings.faults_path())
    env["PYTHONUNBUFFERED"] = "1"
    root = str(settings.REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class Options:
    duration: float
    config: Path
    prometheus: bool
    traffic: bool
    load: bool = False
    keep_data: bool = False
    alert_for: str | None = None
    scrape_interval: str | None = None


class Demo:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.run_dir = settings.run_dir().resolve()
        self.env = child_env(self.run_dir)
        self.sup = Supervisor(self.run_dir, self.env)
        self.stop_requested = threading.Event()
        self.interrupted = False
        self.owns_run_dir = False    # set once this launcher holds the run directory
        self.failures: list[str] = []
        self.prom_url = f"http://127.0.0.1:{settings.port('prometheus')}"
        self.am_url = f"http://127.0.0.1:{settings.port('alertmanager')}"
        self.api_url = f"http://127.0.0.1:{settings.port('api')}"
        self.receiver_url = f"http://127.0.0.1:{settings.port('receiver')}"
        self.traffic: Traffic | None = None
        self.load: Part | None = None
        self.redis: Part | None = None
        self.scraped_at: float | None = None
        self.seen_alerts = 0
        self.load_reported = False

    # -- set-up ----------------------------------------------------------------

    def prepare(self) -> None:
        launcher_pid = self.run_dir / LAUNCHER_PID_FILE
        with contextlib.suppress(OSError, ValueError):
            pid = int(launcher_pid.read_text())
            if pid != os.getpid() and _is_ours(pid, "demo.run"):
                raise DemoError(f"a demo is already running (launcher pid {pid}); "
                                "stop it with `make demo-stop`")
        leftovers = _listed_alive(self.run_dir)
        if leftovers:
            raise DemoError("processes of an earlier demo are still running ("
                            + ", ".join(f"{n} pid {p}" for n, p in leftovers)
                            + "); stop them with `make demo-stop`")
        names = [n for n in settings.PORTS
                 if self.options.prometheus or n not in ("prometheus", "alertmanager")]
        check_ports(names)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        launcher_pid.write_text(f"{os.getpid()}\n")
        self.owns_run_dir = True
        if self.options.keep_data:
            say(f"keeping the data of earlier runs in {os.path.relpath(self.run_dir)} "
                "(--keep-data)")
        else:
            self.remove_data()
        settings.write_faults({})

    def remove_data(self) -> None:
        """Start fresh: no samples, alert state or recipes left over from an earlier run."""
        removed = []
        for name in DATA_DIRS:
            path = self.run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(name + "/")
        for name in DATA_FILES:
            path = self.run_dir / name
            if path.exists():
                path.unlink()
                removed.append(name)
        if removed:
            say(f"fresh data: removed the previous run's {', '.join(removed)} "
                "(--keep-data keeps them)")

    def start_all(self) -> None:
        t0 = time.monotonic()
        py = sys.executable
        gen_dir: Path | None = None
        if self.options.prometheus:
            say("generating the Prometheus and Alertmanager configs (promkit generate)")
            gen_dir = generate(self.run_dir / "generated", self.options.config, self.env)
            if self.options.alert_for or self.options.scrape_interval:
                derived = fast_config(
                    self.options.config, self.run_dir / "promkit.fast.yaml",
                    alert_names(gen_dir / "rules"), alert_for=self.options.alert_for,
                    scrape_interval=self.options.scrape_interval)
                gen_dir = generate(self.run_dir / "generated", derived, self.env)
                say(f"faster alerts: for={self.options.alert_for or 'as generated'}, "
                    f"scrape/evaluation every {self.options.scrape_interval or 'as generated'} "
                    f"(config {os.path.relpath(derived)})")
            prom_yml = gen_dir / "prometheus.yml"
            prom_yml.write_text(retarget(prom_yml.read_text(encoding="utf-8")),
                                encoding="utf-8")

        redis_dir = self.run_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis = self._start(
            "redis", [_binary("redis-server"), "--port", str(settings.port("redis")),
                      "--bind", "127.0.0.1", "--dir", str(redis_dir), "--save", "",
                      "--appendonly", "no", "--protected-mode", "yes"],
            lambda: _redis_ok(settings.port("redis")))
        self._start("fake-services", [py, "-m", "demo.fake_services"],
                    lambda: _http_ok(f"http://127.0.0.1:{settings.port('fake_services')}"
                                     "/healthz"), marker="demo.fake_services")
        self._start("receiver", [py, "-m", "demo.receiver"],
                    lambda: _http_ok(f"{self.receiver_url}/healthz"), marker="demo.receiver")
        if gen_dir is not None:
            am_src = gen_dir / "alertmanager.yml"
            if am_src.exists():
                am_yml = local_alertmanager_config(am_src, self.run_dir / "secrets")
                self._start("alertmanager", [
                    _binary("prometheus-alertmanager", "alertmanager"),
                    f"--config.file={am_yml}",
                    f"--storage.path={self.run_dir / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{settings.port('alertmanager')}",
                    "--cluster.listen-address="],
                    lambda: _http_ok(f"{self.am_url}/-/ready"))
            else:
                self.failures.append(f"the generator wrote no alertmanager.yml in {gen_dir}")
            self._start("prometheus", [
                _binary("prometheus"),
                f"--config.file={gen_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{settings.port('prometheus')}",
                "--web.enable-lifecycle",
                "--enable-feature=exemplar-storage",
                # Alerts firing before the Alertmanager is discovered are re-sent
                # after this delay (default 1m).
                "--rules.alert.resend-delay=2s"],
                lambda: _http_ok(f"{self.prom_url}/-/ready"), cwd=gen_dir)
        self._start("api", [py, "-m", "demo.api"],
                    lambda: _http_ok(f"{self.api_url}/healthz"), marker="demo.api")
        self._start("worker", [py, "-m", "demo.worker"],
                    lambda: _http_ok(f"http://127.0.0.1:{settings.port('worker_metrics')}"
                                     "/metrics"), marker="demo.worker")
        self._start("queue-exporter", _promkit(
            "serve", "--port", str(settings.port("queue_exporter")),
            "--redis-url", settings.redis_url(), "--redis-queue", settings.QUEUE_SPEC),
            lambda: _http_ok(f"http://127.0.0.1:{settings.port('queue_exporter')}/metrics"),
            marker="promkit serve")
        say(f"all {len(self.sup.parts)} processes ready in {time.monotonic() - t0:.1f}s")

    def _start(self, name: str, argv: list[str], ready: Callable[[], bool],
               marker: str | None = None, cwd: Path | None = None) -> Part:
        part = self.sup.start(name, argv, marker, cwd)
        took = wait_ready(part, ready, stop=self.stop_requested)
        say(f"{name:<15} pid {part.pid:<7} ready in {took:.1f}s  (log: "
            f"{os.path.relpath(part.log_path)})")
        return part

    def start_traffic(self) -> None:
        if not self.options.traffic:
            return
        self.traffic = Traffic(self.api_url)
        self.traffic.start()
        say("driving steady traffic with the built-in loop (every flow: login, jobs, LLM, "
            "SQLite, WebSocket)")
        if not self.options.load:
            return
        # Opt-in (--load): a ramp to the breaking point is a stress test, not the healthy
        # traffic of a plain run. Bounded in time.
        seconds = min(self.options.duration or 120.0, 120.0)
        self.load = self.sup.start("load", _promkit(
            "load", "--url", self.api_url, "--users-start", "1", "--users-max", "8",
            "--step-seconds", str(max(seconds / 5, 2.0)), "--max-seconds", str(seconds),
            "--think-seconds", "0.2"), marker="promkit load")
        self.load.expected_exit = True
        say(f"`promkit load` ramps 1 -> 8 users for up to {seconds:.0f}s (summary in "
            f"{os.path.relpath(self.load.log_path)})")

    def banner(self) -> None:
        lines = [
            "",
            "promkit demo is running. Open:",
            f"  API                {self.api_url}/  (its metrics: {self.api_url}/metrics)",
            f"  worker metrics     http://127.0.0.1:{settings.port('worker_metrics')}/metrics",
            f"  queue exporter     http://127.0.0.1:{settings.port('queue_exporter')}/metrics",
        ]
        if self.options.prometheus:
            graph = (f"{self.prom_url}/graph?g0.expr=sum%20by%20(http_route)%20(rate("
                     "http_server_request_duration_seconds_count%5B1m%5D))&g0.tab=0")
            lines += [
                f"  Prometheus targets {self.prom_url}/targets",
                f"  Prometheus alerts  {self.prom_url}/alerts",
                f"  Prometheus graph   {graph}",
                f"  Alertmanager       {self.am_url}/#/alerts",
                f"  report             promkit report --prometheus {self.prom_url}",
            ]
        lines += [
            f"  webhooks received  {self.receiver_url}/received",
            "Failure knobs (watch the alerts fire):",
            f"  curl -X POST {self.api_url}/admin/faults -H 'content-type: application/json' "
            "-d '{\"error_rate\": 0.3}'",
            "  knobs: error_rate (0-1), error_route (\"/recipes\": only that route), latency_ms, "
            "stuck_worker, redis_outage, credential_stuffing; set back with "
            "{\"error_rate\": 0} etc.",
            f"Logs: {os.path.relpath(self.run_dir / 'logs')}/   "
            "Stop: Ctrl-C or `make demo-stop`",
            "",
        ]
        print("\n".join(lines), flush=True)

    # -- running ---------------------------------------------------------------

    def watch(self) -> None:
        """Until the duration ends or a stop is requested: keep an eye on everything."""
        deadline = (time.monotonic() + self.options.duration) if self.options.duration else None
        faults = settings.FaultReader(settings.faults_path(), interval=0.0)
        next_scrape_check = 0.0
        while not self.stop_requested.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            for part in self.sup.parts:
                if part is self.load and not part.running() and not self.load_reported:
                    self.load_reported = True
                    code = part.popen.returncode
                    say(f"`promkit load` finished (exit {code}); its summary:\n"
                        + part.log_tail(40))
                if not part.running() and not part.expected_exit:
                    self.failures.append(f"{part.name} exited unexpectedly with code "
                                         f"{part.popen.returncode}; see {part.log_path}")
                    say(self.failures[-1])
                    self.stop_requested.set()
            self._redis_outage(bool(faults.get()["redis_outage"]))
            now = time.monotonic()
            if self.options.prometheus and now >= next_scrape_check:
                next_scrape_check = now + 2.0
                if self.scraped_at is None:
                    ok, detail = all_scraped(self.prom_url, EXPECTED_JOBS)
                    if ok:
                        self.scraped_at = now
                        say(f"Prometheus scraped every target: {detail}")
                self._echo_alerts()
            self.stop_requested.wait(0.5)

    def _redis_outage(self, on: bool) -> None:
        """The redis_outage knob pauses the real Redis (SIGSTOP) until it is switched off."""
        part = self.redis
        if part is None or part.paused == on or not part.running():
            return
        _signal_group(part.pid, signal.SIGSTOP if on else signal.SIGCONT)
        part.paused = on
        say("redis_outage: Redis " + ("paused (SIGSTOP)" if on else "resumed (SIGCONT)"))

    def _echo_alerts(self) -> None:
        import httpx

        try:
            items = httpx.get(f"{self.receiver_url}/received",
                              params={"kind": "alertmanager"}, timeout=2.0).json()
        except Exception:
            return
        for item in items:
            if item["seq"] <= self.seen_alerts:
                continue
            self.seen_alerts = item["seq"]
            body = item["body"]
            names = sorted({a.get("labels", {}).get("alertname", "?")
                            for a in body.get("alerts", [])})
            say(f"Alertmanager notification ({body.get('status')}): {', '.join(names)}")

    def verify(self) -> bool:
        """Bounded mode's verdict: every part up, every target scraped."""
        for part in self.sup.parts:
            if not part.running() and not part.expected_exit:
                self.failures.append(f"{part.name} is not running at the end")
        if self.options.prometheus:
            ok, detail = all_scraped(self.prom_url, EXPECTED_JOBS)
            if ok:
                say(f"check: Prometheus scraped every target ({detail})")
            else:
                self.failures.append(f"Prometheus did not scrape every target: {detail}")
        return not self.failures

    def shutdown(self) -> None:
        if self.traffic is not None:
            self.traffic.close()
            say(f"traffic: {self.traffic.summary()}")
        if not self.owns_run_dir:      # another demo's files: leave them alone
            return
        self.sup.stop_all()
        with contextlib.suppress(OSError):
            (self.run_dir / LAUNCHER_PID_FILE).unlink()


def _listed_alive(run_dir: Path) -> list[tuple[str, int]]:
    try:
        listing = json.loads((run_dir / PROCESSES_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [(p["name"], int(p["pid"])) for p in listing
            if _is_ours(int(p["pid"]), str(p.get("marker", "")))]


def stop_running(run_dir: Path) -> int:
    """``make demo-stop``: stop the launcher, then anything it left, by the PID files."""
    stopped = 0
    launcher_pid = run_dir / LAUNCHER_PID_FILE
    with contextlib.suppress(OSError, ValueError):
        pid = int(launcher_pid.read_text())
        if _is_ours(pid, "demo.run") and pid != os.getpid():
            say(f"stopping the launcher (pid {pid}); it stops what it started")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                say(f"launcher {pid} still running after 60s: SIGKILL")
                os.kill(pid, signal.SIGKILL)
            stopped += 1
    try:
        listing = json.loads((run_dir / PROCESSES_FILE).read_text())
    except (OSError, ValueError):
        listing = []
    for entry in reversed(listing):
        pid, name = int(entry["pid"]), str(entry["name"])
        if _is_ours(pid, str(entry.get("marker", ""))):
            say(f"{name} (pid {pid}) {stop_pid(pid, name)}")
            stopped += 1
        with contextlib.suppress(OSError):
            (run_dir / "pids" / f"{name}.pid").unlink()
    for path in (run_dir / PROCESSES_FILE, launcher_pid):
        with contextlib.suppress(OSError):
            path.unlink()
    say("nothing was running" if not stopped else "stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                        help="run this long, stop everything, exit 0 only if every part came "
                             "up and every target was scraped (default 0: until Ctrl-C)")
    parser.add_argument("--config", type=Path, metavar="FILE", default=settings.CONFIG_PATH,
                        help="project config for `promkit generate` (default: its own, "
                             "demo/promkit.yaml)")
    parser.add_argument("--no-prometheus", action="store_true",
                        help="start the services without Prometheus and Alertmanager "
                             "(no generated config needed)")
    parser.add_argument("--no-traffic", action="store_true", help="drive no traffic")
    parser.add_argument("--load", action="store_true",
                        help="also run a short `promkit load` ramp (1 -> 8 users, at most "
                             "120 s) to find where the demo breaks: a stress test, so the "
                             "report shows its latency and errors")
    parser.add_argument("--no-load", action="store_true", help=argparse.SUPPRESS)  # the default
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the Prometheus, Alertmanager and SQLite data of the previous "
                             "run (default: start fresh; Redis runs without persistence)")
    parser.add_argument("--alert-for", metavar="DURATION",
                        help="generate every alert with this `for` (e.g. 30s) and Alertmanager "
                             "routes that notify within seconds, to watch alerts fire quickly")
    parser.add_argument("--scrape-interval", metavar="DURATION",
                        help="scrape and evaluate rules this often (e.g. 5s; default: the "
                             "config's)")
    parser.add_argument("--stop", action="store_true",
                        help="stop a running demo (what `make demo-stop` runs)")
    args = parser.parse_args(argv)
    if args.stop:
        return stop_running(settings.run_dir().resolve())
    if args.duration < 0:
        parser.error("--duration must be >= 0")
    if args.config is not None:
        args.config = args.config.resolve()
    demo = Demo(Options(args.duration, args.config, not args.no_prometheus,
                        not args.no_traffic, load=args.load and not args.no_load,
                        alert_for=args.alert_for, scrape_interval=args.scrape_interval,
                        keep_data=args.keep_data))

    def on_signal(signum: int, _frame: object) -> None:
        # Only a flag: start-up and the watch loop check it, so no child is ever
        # started without being recorded.
        if not demo.stop_requested.is_set():
            say(f"{signal.Signals(signum).name}: stopping everything")
        demo.interrupted = True
        demo.stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    ok = False
    try:
        try:
            demo.prepare()
            demo.start_all()
            if demo.stop_requested.is_set():
                raise Interrupted
            demo.start_traffic()
            demo.banner()
            demo.watch()
            if args.duration and not demo.stop_requested.is_set():
                ok = demo.verify()
            else:
                ok = not demo.failures
        except Interrupted:
            ok = not demo.failures
        except DemoError as exc:
            demo.failures.append(str(exc))
            print(f"demo: error: {exc}", file=sys.stderr, flush=True)
        finally:
            # A second Ctrl-C must not cut the clean-up short.
            for s in previous:
                signal.signal(s, signal.SIG_IGN)
            demo.shutdown()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.duration and demo.interrupted:
        say("interrupted before the end of --duration")
        return 130
    if not ok:
        for failure in demo.failures:
            print(f"demo: FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    say("all stopped" + (", every part came up and was scraped" if args.duration
                         and demo.options.prometheus else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
