"""Many hosts: a Prometheus agent remote-writes to a central Prometheus that runs the rules.

Two real Prometheus servers on loopback. The central one runs with
``--web.enable-remote-write-receiver`` and the generated recording rules; it
scrapes nothing of the app. The agent runs ``--enable-feature=agent`` with the
config of ``promkit generate-agent`` (``agent.yml``), scrapes an instrumented
app (tests/apps/report_app.py) and remote-writes to the central one.

Recording rules run centrally: an agent has no query engine and evaluates no
rules (agent mode refuses ``rule_files``), so the rules are loaded where the
raw series land, as in docs/scaling.md.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from promkit.tools.generate._yaml import dump_yaml
from promkit.tools.generate.config import config_from_mapping
from promkit.tools.generate.remote_write import AgentOptions, agent_config, write_agent
from promkit.tools.generate.rules import all_rule_groups

from ._servers import AppServer, ManagedProcess, PrometheusServer, free_port, wait_http_ready
from .conftest import require_binary

SERVICE = "demo"
JOB = "demo-api"
CLUSTER = "site-a"
REPLICA = "agent-1"
RAW = f'http_server_request_duration_seconds_count{{service="{SERVICE}"}}'
RULE_OUTPUT = f'service:http_requests:rate5m{{service="{SERVICE}"}}'


def _project(address: str) -> dict[str, object]:
    return {
        "service": SERVICE,
        "scrape_interval": "1s",
        "evaluation_interval": "1s",
        "targets": [{"job": JOB, "targets": [address]}],
    }


@pytest.fixture
def agent_binary() -> str:
    return require_binary("prometheus")


def _drive(app: AppServer, rounds: int) -> None:
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for _ in range(rounds):
            client.get("/ok")
            client.get("/job")
        client.get("/fail")


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def test_agent_remote_writes_raw_series_and_central_rules_run(
        prometheus: Callable[..., PrometheusServer], uvicorn_app: Callable[..., AppServer],
        agent_binary: str, agent_process: list[ManagedProcess], tmp_path: Path) -> None:
    started = time.monotonic()
    app = uvicorn_app("report_app:app", ready_path="/ok")
    config = config_from_mapping(_project(app.address), source="test")

    # The central store: receives remote writes and evaluates the generated rules.
    rules = tmp_path / "rules" / "recording.yml"
    rules.parent.mkdir()
    rules.write_text(dump_yaml({"groups": all_rule_groups(config)["recording.yml"]}))
    central = prometheus(rule_files=[rules], evaluation_interval="1s",
                         extra_args=["--web.enable-remote-write-receiver"])

    # The agent: the generated agent.yml, as written to disk by the generator.
    out = tmp_path / "generated"
    options = AgentOptions(remote_write_url=f"{central.url}/api/v1/write",
                           cluster=CLUSTER, replica=REPLICA)
    write_agent(config, out, options)
    agent_yml = out / "prometheus" / "agent" / "agent.yml"
    promtool = shutil.which("promtool")
    if promtool is not None:
        check = subprocess.run([promtool, "check", "config", "--agent", str(agent_yml)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    workdir = tmp_path / "agent"
    port = free_port()
    agent = ManagedProcess.start("prometheus-agent", [
        agent_binary, "--enable-feature=agent", f"--config.file={agent_yml}",
        f"--storage.agent.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ], workdir / "agent.log", cwd=tmp_path)
    agent_process.append(agent)
    wait_http_ready(agent, f"http://127.0.0.1:{port}/-/ready", 20)

    # Agents answer no queries: there is nothing to evaluate rules against.
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up"})
    assert answer.status_code != 200 or answer.json().get("status") != "success"

    # Traffic across several scrapes, until every route's raw series shows up centrally
    # (one scrape may land between two requests of a round, so wait for all three).
    deadline = time.monotonic() + 45
    raw: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        _drive(app, 5)
        raw = central.query(RAW)
        if {s["metric"].get("http_route") for s in raw  # type: ignore[attr-defined]
                } >= {"/ok", "/job", "/fail"}:
            break
        time.sleep(0.5)
    assert raw, f"no {RAW} arrived centrally\n{agent.log_tail()}"
    for series in raw:
        labels = series["metric"]
        assert isinstance(labels, dict)
        assert labels["service"] == SERVICE
        assert labels["job"] == JOB
        assert labels["instance"] == app.address
        assert labels["cluster"] == CLUSTER
        assert labels["replica"] == REPLICA
    routes = {s["metric"]["http_route"] for s in raw if isinstance(s["metric"], dict)}
    assert {"/ok", "/job", "/fail"} <= routes

    up = central.query(f'up{{job="{JOB}"}}')
    assert [(s["metric"]["instance"], s["value"][1]) for s in up] == [(app.address, "1")]

    # The rule output exists centrally and counts requests (rate > 0 needs two
    # samples of a rising counter, so keep driving while waiting).
    stage_rule = f'service_stage:job_stage_runs:rate5m{{service="{SERVICE}"}}'

    def rule_ready() -> bool:
        # Rule groups are evaluated independently: wait for both outputs checked below.
        _drive(app, 3)
        value = central.value(RULE_OUTPUT)
        stages = {s["metric"].get("stage") for s in central.query(stage_rule)}
        return value is not None and value > 0 and stages >= {"fetch", "ocr"}

    deadline = time.monotonic() + 30
    while not rule_ready():
        assert time.monotonic() < deadline, (
            f"{RULE_OUTPUT} / {stage_rule} never there centrally; "
            f"rules: {central.client.rules()}")
        time.sleep(0.5)
    output = central.query(RULE_OUTPUT)
    assert len(output) == 1
    # sum by (service): the agent's cluster/replica are aggregated away, service stays.
    assert output[0]["metric"] == {"__name__": "service:http_requests:rate5m",
                                   "service": SERVICE}
    assert {s["metric"]["stage"] for s in central.query(stage_rule)} >= {"fetch", "ocr"}
    assert time.monotonic() - started < 90


def test_agent_config_has_no_rules_and_keeps_scrape_jobs() -> None:
    config = config_from_mapping(_project("127.0.0.1:8000"), source="test")
    body = agent_config(config, AgentOptions(
        remote_write_url="http://central:9090/api/v1/write", drop_metrics="python_gc_.*"))
    assert "rule_files" not in body and "alerting" not in body
    assert body["scrape_configs"][0]["static_configs"][0]["labels"] == {"service": SERVICE}
    remote = body["remote_write"][0]
    assert remote["write_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "python_gc_.*", "action": "drop"}]
    assert body["global"]["external_labels"] == {"cluster": "local", "replica": "0"}
