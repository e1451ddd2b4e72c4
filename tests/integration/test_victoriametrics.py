"""VictoriaMetrics as the central store, fed and ruled by the same generated files as Prometheus.

Everything real, on loopback, from Debian's ``victoria-metrics`` package (1.79):

- a promkit-instrumented app (tests/apps/report_app.py) answering 200s and 500s,
  running timed stages and external calls;
- a Prometheus agent with the generated ``agent.yml`` (only the remote-write URL
  points at VictoriaMetrics) scraping it and remote-writing everything;
- VictoriaMetrics single-node, storing into a temp dir;
- vmalert with the generated ``rules/*.yml`` querying VictoriaMetrics, writing
  the recording rules' outputs (and ``ALERTS``) back into it, and notifying an
  Alertmanager started with the generated ``alertmanager.yml``;
- ``promkit report --prometheus <VictoriaMetrics URL> --json`` as a subprocess.

Smaller tests: ``vmalert -dryRun`` on the committed rules, and vmagent (instead
of the Prometheus agent) reading the generated ``agent.yml``.

Two VictoriaMetrics behaviours shape the waits (docs/scaling.md has both):
it answers queries about "now" as of ``-search.latencyOffset`` ago (30 s by
default; 1 s here), and a query that ran before a series existed keeps missing
that series for up to ~10 s (measured). So the test polls with a matcher that
changes on every poll (:func:`_fresh`), and starts vmalert once the raw series
are stored. The alert it waits for, TargetDown of a second target where nothing
listens, reads raw ``up``: an alert on a recording rule's output would wait
those ~10 s once more (vmalert's first evaluation queried the output before it
existed).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools.generate import generate
from promkit.tools.generate.config import Config, config_from_mapping, load_config
from promkit.tools.generate.remote_write import AgentOptions, write_agent

from ._servers import (
    REPO_ROOT,
    AlertmanagerServer,
    AppServer,
    ManagedProcess,
    PrometheusClient,
    free_port,
    wait_http_ready,
)
from .conftest import require_binary

SERVICE = "vmdemo"
JOB = "vmdemo-api"
ALERT = "TargetDown"
COMMITTED_RULES = sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml"))


def _config(*addresses: str) -> Config:
    demo = load_config(DEMO_CONFIG)
    return config_from_mapping({
        "service": SERVICE,
        "scrape_interval": "1s",
        "evaluation_interval": "1s",
        "targets": [{"job": JOB, "targets": list(addresses)}],
        "slos": [{"name": s.name, "type": s.type, "objective": s.objective, "window": s.window,
                  **({"threshold_seconds": s.threshold_seconds}
                     if s.threshold_seconds is not None else {})} for s in demo.slos],
        "budgets": {"cpu_hours_per_month": 100},
        "alert_for": {ALERT: "2s"},
        # Nothing listens on the discard port: Alertmanager holds the alert, which is
        # what the test reads back (a notification would wait group_wait, 30 s).
        "receivers": [{"name": "default", "type": "webhook", "url": "http://127.0.0.1:9/x"}],
        "routes": [{"receiver": "default"}],
    }, source="vm-test")


_polls = itertools.count()


def _fresh(selector: str) -> str:
    """``name{...}`` plus a matcher no series has and no earlier query used.

    VictoriaMetrics 1.79 caches which series a selector matched; a poll that ran
    before the series arrived would hide it from the same selector for ~10 s.
    """
    return selector[:-1] + f', promkit_poll!="{next(_polls)}"}}'


def _wait(what: str, check: Callable[[], Any], timeout: float,
          detail: Callable[[], str]) -> Any:
    """Call ``check`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not within {timeout:.0f}s; {detail()}")
        time.sleep(0.2)


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    """Servers this module starts itself (the conftest has no fixture for them), stopped last
    first."""
    started: list[ManagedProcess] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.stop()


def _start(processes: list[ManagedProcess], name: str, argv: list[str], workdir: Path,
           ready_url: str) -> ManagedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    process = ManagedProcess.start(name, argv, workdir / f"{name}.log", cwd=workdir)
    processes.append(process)
    wait_http_ready(process, ready_url, 20)
    return process


def _start_victoriametrics(processes: list[ManagedProcess], binary: str, workdir: Path) -> str:
    """VictoriaMetrics single-node storing under ``workdir``; returns its URL. It answers
    about "now" as of 1 s ago (the default, 30 s, would slow every wait here)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _start(processes, "victoria-metrics", [
        binary, f"-storageDataPath={workdir / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1d", "-search.latencyOffset=1s", "-loggerLevel=WARN",
    ], workdir, f"{url}/health")
    return url


def _drive(app: AppServer, stop: threading.Event) -> None:
    # One request in four fails.
    while not stop.is_set():
        for path in ("/ok", "/ok", "/job", "/fail"):
            with contextlib.suppress(httpx.HTTPError):  # keep driving through hiccups
                app.get(path)
        stop.wait(0.05)


def _vmalert_check(binary: str, rules: list[Path]) -> subprocess.CompletedProcess[str]:
    """vmalert's own check: parses the files and every expression with MetricsQL and every
    annotation template, then exits."""
    return subprocess.run([binary, "-dryRun", *(f"-rule={r}" for r in rules)],
                          capture_output=True, text=True, timeout=30)


def test_vmalert_accepts_every_committed_rule(tmp_path: Path) -> None:
    vmalert = require_binary("vmalert")
    assert [r.name for r in COMMITTED_RULES] == ["alerts.yml", "recording.yml", "slo.yml"]
    check = _vmalert_check(vmalert, COMMITTED_RULES)
    assert check.returncode == 0, check.stderr[-3000:]
    # The check has teeth: an expression MetricsQL cannot parse fails it, naming the rule.
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "job:x:rate5m", "expr": "sum(rate(x[5m]) by"}]}]}))
    refused = _vmalert_check(vmalert, [*COMMITTED_RULES, broken])
    assert refused.returncode != 0
    assert '"job:x:rate5m"' in refused.stderr


def test_vmagent_scrapes_with_the_generated_agent_config(
        tmp_path: Path, uvicorn_app: Callable[..., AppServer],
        processes: list[ManagedProcess]) -> None:
    """vmagent takes the scrape jobs and external labels of agent.yml; its remote-write URL
    is a flag, so it must be told to skip the file's remote_write section."""
    vm_binary = require_binary("victoria-metrics")
    vmagent_binary = require_binary("vmagent")
    app = uvicorn_app("report_app:app", ready_path="/ok")
    vm_url = _start_victoriametrics(processes, vm_binary, tmp_path / "vm")
    write_agent(_config(app.address), tmp_path,
                AgentOptions(remote_write_url="http://unused.example/api/v1/write",
                             cluster="site-b", replica="vmagent-1"))
    agent_yml = tmp_path / "prometheus" / "agent" / "agent.yml"
    strict = subprocess.run([vmagent_binary, f"-promscrape.config={agent_yml}",
                             "-promscrape.config.dryRun"],
                            capture_output=True, text=True, timeout=30)
    assert strict.returncode != 0 and "remote_write" in strict.stderr

    port = free_port()
    vmagent = _start(processes, "vmagent", [
        vmagent_binary, f"-promscrape.config={agent_yml}",
        "-promscrape.config.strictParse=false", f"-remoteWrite.url={vm_url}/api/v1/write",
        f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent' / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=WARN",
    ], tmp_path / "vmagent", f"http://127.0.0.1:{port}/health")
    vm = PrometheusClient(vm_url)
    (up,) = _wait("up from vmagent in VictoriaMetrics",
                  lambda: vm.query(_fresh(f'up{{service="{SERVICE}"}}')), 15, vmagent.log_tail)
    assert up["metric"] == {"__name__": "up", "service": SERVICE, "job": JOB,
                            "instance": app.address, "cluster": "site-b",
                            "replica": "vmagent-1"}
    assert up["value"][1] == "1"


def test_agent_to_victoriametrics_with_vmalert_alertmanager_and_report(
        tmp_path: Path, uvicorn_app: Callable[..., AppServer],
        alertmanager: Callable[..., AlertmanagerServer],
        processes: list[ManagedProcess]) -> None:
    started = time.monotonic()
    vm_binary = require_binary("victoria-metrics")
    vmalert_binary = require_binary("vmalert")
    agent_binary = require_binary("prometheus")
    app = uvicorn_app("report_app:app", ready_path="/ok")
    stop = threading.Event()
    driver = threading.Thread(target=_drive, args=(app, stop), daemon=True)
    driver.start()
    try:
        _run_stack(tmp_path, app, alertmanager, processes, vm_binary, vmalert_binary,
                   agent_binary)
    finally:
        stop.set()
        driver.join(5)
    print(f"VictoriaMetrics stack test: {time.monotonic() - started:.1f}s")


def _run_stack(tmp_path: Path, app: AppServer, alertmanager: Callable[..., AlertmanagerServer],
               processes: list[ManagedProcess], vm_binary: str, vmalert_binary: str,
               agent_binary: str) -> None:
    dead = f"127.0.0.1:{free_port()}"  # a second target where nothing listens
    config = _config(app.address, dead)
    out = tmp_path / "generated"
    generate(config, out, dashboards=False)
    rules = sorted((out / "prometheus" / "rules").glob("*.yml"))
    # Every group at vmalert's 1s interval (the month-to-date group's own 1m would
    # leave its rules unevaluated for up to a minute; its expressions read no interval).
    for path in rules:
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            group.pop("interval", None)
        path.write_text(yaml.safe_dump(data))

    vm_url = _start_victoriametrics(processes, vm_binary, tmp_path / "vm")
    vm = PrometheusClient(vm_url)

    # The agent, with the generated agent.yml as written (only the URL is VictoriaMetrics').
    write_agent(config, out, AgentOptions(remote_write_url=f"{vm_url}/api/v1/write"))
    agent_port = free_port()
    agent = _start(processes, "prometheus-agent", [
        agent_binary, "--enable-feature=agent",
        f"--config.file={out / 'prometheus' / 'agent' / 'agent.yml'}",
        f"--storage.agent.path={tmp_path / 'agent' / 'data'}",
        f"--web.listen-address=127.0.0.1:{agent_port}", "--log.level=warn",
    ], tmp_path / "agent", f"http://127.0.0.1:{agent_port}/-/ready")
    # Started while the agent waits for its first target discovery (~5 s).
    am = alertmanager((out / "prometheus" / "alertmanager.yml").read_text())

    # Raw series arrive with the labels the agent scraped them with, plus its own.
    raw = f'http_server_request_duration_seconds_count{{service="{SERVICE}"}}'
    up = f'up{{service="{SERVICE}"}}'

    def stored() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        series, ups = vm.query(_fresh(raw)), vm.query(_fresh(up))
        routes = {s["metric"].get("http_route") for s in series}
        return (series, ups) if routes >= {"/ok", "/job", "/fail"} and len(ups) == 2 else None

    series, ups = _wait("raw series of every route and both targets' up in VictoriaMetrics",
                        stored, 25, agent.log_tail)
    labels = series[0]["metric"]
    assert (labels["service"], labels["job"], labels["instance"]) == (SERVICE, JOB,
                                                                     app.address)
    assert (labels["cluster"], labels["replica"]) == ("local", "0")
    assert {(s["metric"]["instance"], s["value"][1]) for s in ups} == {(app.address, "1"),
                                                                      (dead, "0")}

    # vmalert: the generated rules against VictoriaMetrics, outputs written back into it.
    vmalert_port = free_port()
    vmalert_url = f"http://127.0.0.1:{vmalert_port}"
    vmalert = _start(processes, "vmalert", [
        vmalert_binary, *(f"-rule={r}" for r in rules),
        f"-datasource.url={vm_url}", f"-remoteWrite.url={vm_url}",
        f"-notifier.url={am.url}", f"-external.url={vmalert_url}",
        f"-httpListenAddr=127.0.0.1:{vmalert_port}",
        "-evaluationInterval=1s", "-remoteWrite.flushInterval=1s", "-loggerLevel=WARN",
    ], tmp_path / "vmalert", f"{vmalert_url}/health")

    # Recording and SLO rules' outputs are queryable in VictoriaMetrics, aggregated to
    # `service` (the agent's cluster/replica and the instance are summed away).
    requests = f'service:http_requests:rate5m{{service="{SERVICE}"}}'
    errors = f'service:http_errors:rate5m{{service="{SERVICE}"}}'
    events = f'slo:sli_events:rate5m{{service="{SERVICE}", slo="api-availability"}}'

    def recorded() -> list[list[dict[str, Any]]] | None:
        outputs = [vm.query(_fresh(q)) for q in (requests, errors, events)]
        return outputs if all(outputs) else None

    [rate], [error_rate], [slo_events] = _wait("rule outputs in VictoriaMetrics", recorded,
                                               20, vmalert.log_tail)
    assert rate["metric"] == {"__name__": "service:http_requests:rate5m", "service": SERVICE}
    ratio = float(error_rate["value"][1]) / float(rate["value"][1])
    assert 0.1 < ratio < 0.5, ratio  # one request in four fails
    assert float(slo_events["value"][1]) == pytest.approx(float(rate["value"][1]), rel=0.5)

    # The alert fires in vmalert and reaches the generated Alertmanager.
    (fired,) = am.wait_for_alerts(timeout=20, alertname=ALERT)
    assert {k: fired["labels"][k] for k in ("service", "severity", "job", "instance")} == {
        "service": SERVICE, "severity": "critical", "job": JOB, "instance": dead}
    assert fired["annotations"]["summary"] == f"{JOB} target {dead} is down"
    assert fired["status"]["state"] == "active"
    assert fired["generatorURL"].startswith(vmalert_url)

    # Every generated rule evaluates under MetricsQL without an error.
    groups = httpx.get(f"{vmalert_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    failing = [(g["name"], r["name"], r["lastError"]) for g in groups for r in g["rules"]
               if r["lastError"]]
    assert failing == [] and sum(len(g["rules"]) for g in groups) > 150

    # The report reads the firing alert from the ALERTS series vmalert wrote back.
    firing = f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}'
    _wait("ALERTS firing in VictoriaMetrics", lambda: vm.query(_fresh(firing)), 10,
          lambda: str(vm.query(_fresh('ALERTS{service="vmdemo"}'))))
    report = subprocess.run(
        [sys.executable, "-m", "promkit", "report", "--prometheus", vm_url, "--since", "5m",
         "--json"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert report.returncode == 0, report.stderr
    _check_report(json.loads(report.stdout), app.address, dead)


def _check_report(data: dict[str, Any], live: str, dead: str) -> None:
    """The five questions answered from VictoriaMetrics, with the numbers the traffic implies."""
    assert data["schema"] == "promkit.report/v1" and data["status"] == "issues"
    assert data["query_errors"] == {}  # MetricsQL took every query of the report

    # 1. Is it healthy? Both targets (from `up`), the firing alert, the availability SLO.
    health = data["health"]
    assert [(t["job"], t["instance"], t["up"]) for t in health["targets"]] == [
        (JOB, dead, False), (JOB, live, True)]
    assert (health["targets_up"], health["targets_down"]) == (1, 1)
    alert = next(a for a in health["alerts"] if a["name"] == ALERT)
    assert alert["state"] == "firing" and alert["labels"]["instance"] == dead
    # One line for the fact: the firing alert is merged into the down target's finding.
    assert any(i["kind"] == "target_down" and i["subject"] == f"{JOB} {dead}"
               and ALERT in i["alerts"] for i in data["issues"])
    availability = next(s for s in health["slos"] if s["type"] == "availability")
    assert 0.6 < availability["sli"] < 0.9 and availability["error_budget_remaining"] < 0

    # 2. Where does the time go? Every route and stage, with a p95.
    routes = {r["route"]: r for r in data["latency"]["routes"]}
    assert set(routes) == {"/ok", "/job", "/fail"}
    assert all(r["requests"] > 0 and 0 < r["p95_seconds"] < 1 for r in routes.values())
    assert {s["stage"] for s in data["latency"]["stages"]} == {"fetch", "ocr"}

    # 3. What fails and why?
    failing = {r["route"]: r["error_ratio"] for r in data["failures"]["routes"]}
    assert failing["/fail"] == 1 and failing["/ok"] == 0
    assert [(s["stage"], s["error_code"]) for s in data["failures"]["stages"]] == [
        ("ocr", "OcrTimeout")]
    (external,) = data["failures"]["external"]
    assert external["service"] == "ocr-provider" and 0 < external["error_ratio"] < 0.5

    # 4. What does it cost? CPU time of the process this month.
    assert data["cost"]["cpu"]["used_hours"] > 0

    # 5. What will it need? The trends of traffic, memory and disk.
    trends = {t["name"]: t for t in data["trends"]["series"]}
    assert trends["request_rate"]["current"] > 1
    assert trends["rss"]["current"] > 10e6
    assert 0 < trends["disk"]["current"] < 1
